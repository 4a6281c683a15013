-- @description Revenue per day with orders, with running totals for the month and the year.
-- @tags finance, daily
-- @owner finance-data@example.com

WITH daily AS (
    SELECT
        order_date,
        count(*)                                    AS order_count,
        count(*) FILTER (WHERE status = 'returned') AS returned_order_count,
        sum(revenue)                                AS revenue
    FROM marts.orders
    GROUP BY ALL
)

SELECT
    order_date AS revenue_date,
    order_count,
    returned_order_count,
    revenue,                                                   -- in dollars, returns excluded
    sum(revenue) OVER (
        PARTITION BY date_trunc('month', order_date)
        ORDER BY order_date
    )          AS month_to_date_revenue,
    sum(revenue) OVER (
        PARTITION BY date_trunc('year', order_date)
        ORDER BY order_date
    )          AS year_to_date_revenue                          -- running total since 1 January
FROM daily

-- @assert unique(revenue_date)
-- @assert not_null(revenue_date, order_count, revenue)
-- @assert revenue >= 0
-- @assert month_to_date_revenue <= year_to_date_revenue
-- @assert sum(revenue) = (SELECT sum(revenue) FROM marts.orders)
-- @warn avg(revenue) between 10 and 1000
