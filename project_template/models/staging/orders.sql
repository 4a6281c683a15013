-- @description Orders placed since the start date, one row each.
-- @tags staging
-- @owner data-team@example.com

SELECT
    order_id,
    customer_id,
    order_date,
    lower(status) AS status   -- placed, shipped, completed or returned
FROM raw.orders
WHERE order_date >= DATE '{{ var("start_date") }}'

-- @assert unique(order_id)
-- @assert not_null(order_id, customer_id, order_date)
-- @assert accepted_values(status, 'placed', 'shipped', 'completed', 'returned')
-- @assert references(customer_id, staging.customers.customer_id)
