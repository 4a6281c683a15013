-- @description Payments in dollars, one row per payment; an order can have several.
-- @tags staging
-- @owner data-team@example.com

SELECT
    payment_id,
    order_id,
    lower(payment_method)                  AS payment_method,
    {{ cents_to_dollars('amount_cents') }} AS amount   -- in dollars
FROM raw.payments

-- @assert unique(payment_id)
-- @assert not_null(payment_id, order_id, payment_method, amount)
-- @assert positive_amounts: amount > 0
-- @assert references(payment_method, ref.payment_methods.payment_method)
-- @assert references(order_id, staging.orders.order_id)
