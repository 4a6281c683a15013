-- @assert orders_match_payments: (SELECT sum(amount) FROM marts.orders) = (SELECT sum(amount) FROM staging.payments)
-- @assert lifetime_value_matches_revenue: (SELECT sum(lifetime_value) FROM marts.customers) = (SELECT sum(revenue) FROM marts.revenue_daily)

/* @assert every_payment_reaches_an_order:
SELECT p.payment_id, p.order_id, p.amount
FROM staging.payments AS p
LEFT JOIN marts.orders AS o USING (order_id)
WHERE o.order_id IS NULL
*/

/* @assert order_counts_match:
SELECT c.customer_id, c.order_count, count(o.order_id) AS orders_in_mart
FROM marts.customers AS c
LEFT JOIN marts.orders AS o USING (customer_id)
GROUP BY c.customer_id, c.order_count
HAVING c.order_count <> count(o.order_id)
*/
