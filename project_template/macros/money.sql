{# Money is stored in cents in the raw data and reported in dollars. #}
{% macro cents_to_dollars(column, scale=2) -%}
    CAST(({{ column }}) / 100.0 AS DECIMAL(12, {{ scale }}))
{%- endmacro %}
