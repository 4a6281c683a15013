-- @description Payments from the payment provider; an order can be paid in several parts.
-- @location data/payments.csv
-- @owner payments-team@example.com
-- @tags raw

CREATE TABLE raw.payments (
    payment_id     BIGINT,
    order_id       BIGINT,
    payment_method VARCHAR,  -- credit_card, bank_transfer, coupon or gift_card
    amount_cents   BIGINT    -- in cents
)

-- @assert unique(payment_id)
-- @assert not_null(payment_id, order_id, payment_method, amount_cents)
-- @assert row_count() > 0
