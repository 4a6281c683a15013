-- @description Orders as exported every night from the web shop.
-- @location data/orders.csv
-- @owner shop-team@example.com
-- @tags raw

CREATE TABLE raw.orders (
    order_id    BIGINT,
    customer_id BIGINT,
    order_date  DATE,
    status      VARCHAR     -- placed, shipped, completed or returned
)

-- @assert unique(order_id)
-- @assert not_null(order_id, customer_id, order_date, status)
-- @assert row_count() > 0
