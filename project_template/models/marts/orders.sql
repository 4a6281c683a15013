-- @description One row per order, with the amount paid by each payment category.
-- @tags finance, daily
-- @owner finance-data@example.com

WITH categorized_payments AS (
    SELECT
        p.order_id,
        pm.category,
        p.amount
    FROM staging.payments AS p
    JOIN ref.payment_methods AS pm USING (payment_method)
),

order_payments AS (
    SELECT
        order_id,
        sum(amount) FILTER (WHERE category = 'card')    AS card_amount,
        sum(amount) FILTER (WHERE category = 'bank')    AS bank_amount,
        sum(amount) FILTER (WHERE category = 'voucher') AS voucher_amount,
        sum(amount)                                     AS amount
    FROM categorized_payments
    GROUP BY order_id
)

SELECT
    o.order_id,
    o.customer_id,
    o.order_date,
    o.status,
    coalesce(op.card_amount, 0)    AS card_amount,     -- paid by credit card, in dollars
    coalesce(op.bank_amount, 0)    AS bank_amount,     -- paid by bank transfer, in dollars
    coalesce(op.voucher_amount, 0) AS voucher_amount,  -- paid with coupons and gift cards, in dollars
    coalesce(op.amount, 0)         AS amount,          -- total paid, in dollars
    CASE
        WHEN o.status = 'returned' THEN 0
        ELSE coalesce(op.amount, 0)
    END                            AS revenue          -- what the shop keeps: nothing for a returned order
FROM staging.orders AS o
LEFT JOIN order_payments AS op USING (order_id)

-- @assert unique(order_id)
-- @assert not_null(order_id, customer_id, order_date, status, amount, revenue)
-- @assert amount >= 0
-- @assert amount = card_amount + bank_amount + voucher_amount
-- @assert revenue > 0 where status <> 'returned'
-- @assert references(customer_id, staging.customers.customer_id)

/* @assert no_orders_before_signup:
SELECT o.order_id, o.order_date, c.signup_date
FROM {{ this }} AS o
JOIN staging.customers AS c USING (customer_id)
WHERE o.order_date < c.signup_date
*/
