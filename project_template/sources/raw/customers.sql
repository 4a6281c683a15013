-- @description Customers as exported every night from the shop's CRM.
-- @location data/customers.csv
-- @owner crm-team@example.com
-- @tags raw

CREATE TABLE raw.customers (
    customer_id BIGINT,     -- the CRM's customer number
    first_name  VARCHAR,
    last_name   VARCHAR,
    email       VARCHAR,    -- as typed by the customer: mixed case, not validated
    signup_date DATE,
    country     VARCHAR     -- ISO 3166-1 alpha-2 country code
)

-- @assert unique(customer_id)
-- @assert not_null(customer_id, first_name, signup_date)
