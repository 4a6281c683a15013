-- @description One row per customer, with order counts, first and last order and lifetime value.
-- @materialized table
-- @tags finance, daily
-- @owner finance-data@example.com

SELECT
    c.customer_id,
    c.first_name,
    c.last_name,
    c.email,
    c.country_code,
    c.signup_date,
    count(o.order_id)                                      AS order_count,           -- returned orders included
    count(o.order_id) FILTER (WHERE o.status = 'returned') AS returned_order_count,
    min(o.order_date)                                      AS first_order_date,      -- NULL if no orders yet
    max(o.order_date)                                      AS last_order_date,
    coalesce(sum(o.revenue), 0)                            AS lifetime_value         -- revenue kept, in dollars
FROM staging.customers AS c
LEFT JOIN marts.orders AS o USING (customer_id)
GROUP BY ALL

-- @assert unique(customer_id)
-- @assert not_null(customer_id, order_count, lifetime_value)
-- @assert row_count() > 0
-- @assert lifetime_value >= 0
-- @assert first_order_date >= signup_date
-- @assert returned_order_count <= order_count
-- @assert sum(lifetime_value) = (SELECT sum(p.amount) FROM staging.payments AS p JOIN staging.orders AS o USING (order_id) WHERE o.status <> 'returned')
-- @warn most_customers_ordered: count(first_order_date) >= 0.8 * row_count()
-- @warn row_count() >= 0.9 * prev(row_count())
-- @warn anomaly(avg(lifetime_value))
