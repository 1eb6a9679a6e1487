{#
    Use a model's custom schema verbatim (staging, intermediate, analytics)
    instead of dbt's default "<target_schema>_<custom>", so analysts always
    find the mart at analytics.events whatever the profile's schema is.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ trackway.dataset_prefix() }}{{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}


{# BigQuery datasets carry the prefix of TRACKWAY_WAREHOUSE_URL=bigquery://project/<prefix> ("<prefix>_analytics"). #}
{% macro dataset_prefix() -%}
    {%- set prefix = env_var('TRACKWAY_BQ_DATASET_PREFIX', '') if target.type == 'bigquery' else '' -%}
    {{- prefix ~ '_' if prefix else '' -}}
{%- endmacro %}
