-- @description Customers, one row each, with tidy names, lower-case e-mails and a country code.
-- @materialized view
-- @tags staging
-- @owner data-team@example.com

SELECT
    customer_id,
    trim(first_name)   AS first_name,
    trim(last_name)    AS last_name,
    lower(trim(email)) AS email,         -- lower-cased; not validated by the CRM
    signup_date,                         -- the day the customer created an account
    upper(country)     AS country_code   -- ISO 3166-1 alpha-2
FROM raw.customers

-- @assert unique(customer_id)
-- @assert not_null(customer_id, first_name, signup_date)
-- @assert length(country_code) = 2
-- @warn valid_email: email LIKE '%_@_%._%' tolerate 5%
