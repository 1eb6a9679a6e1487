{#
    Use a model's custom schema verbatim (staging, intermediate, analytics)
    instead of dbt's default "<target_schema>_<custom>", so analysts always
    find the mart at analytics.events whatever the profile's schema is.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
