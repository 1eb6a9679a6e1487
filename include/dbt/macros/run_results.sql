{#
    Run as an on-run-end hook: every dbt invocation appends what it built and tested
    to audit.dbt_results, in the warehouse itself. `trackway health` reads it for the
    last successful build and the last failing tests, without asking Airflow
    (a dead scheduler must show up as stale, not as silence; docs/runbook.md).
#}
{% macro results_relation() -%}
    {{ trackway.dataset_prefix() }}audit.dbt_results
{%- endmacro %}

{% macro record_run_results(results) -%}
    {%- if execute and results -%}
        {%- set schema = trackway.dataset_prefix() ~ 'audit' -%}
        {% do adapter.create_schema(api.Relation.create(database=target.database, schema=schema)) %}
        {%- set create -%}
            create table if not exists {{ trackway.results_relation() }} (
                invocation_id {{ dbt.type_string() }},
                unique_id {{ dbt.type_string() }},
                resource_type {{ dbt.type_string() }},
                status {{ dbt.type_string() }},
                failures {{ dbt.type_bigint() }},
                execution_seconds {{ dbt.type_float() }},
                message {{ dbt.type_string() }},
                finished_at {{ dbt.type_timestamp() }}
            )
        {%- endset -%}
        {% do run_query(create) %}
        {%- set rows = [] -%}
        {%- for result in results if result.node.resource_type in ('model', 'test', 'unit_test', 'seed', 'snapshot') -%}
            {%- do rows.append(
                "('" ~ trackway.results_text(invocation_id) ~ "', '"
                ~ trackway.results_text(result.node.unique_id) ~ "', '"
                ~ trackway.results_text(result.node.resource_type) ~ "', '"
                ~ trackway.results_text(result.status) ~ "', "
                ~ (result.failures if result.failures is number else 'null') ~ ", "
                ~ (result.execution_time | round(3)) ~ ", '"
                ~ trackway.results_text(result.message) ~ "', "
                ~ dbt.current_timestamp() ~ ")"
            ) -%}
        {%- endfor -%}
        {%- if rows -%}
            {% do run_query(
                "insert into " ~ trackway.results_relation()
                ~ " (invocation_id, unique_id, resource_type, status, failures, execution_seconds, message, finished_at)"
                ~ " values " ~ rows | join(", ")
            ) %}
        {%- endif -%}
    {%- endif -%}
    select 1 as recorded
{%- endmacro %}

{# Text safe inside a single-quoted literal on every warehouse: no quotes, backslashes or newlines; 500 characters. #}
{% macro results_text(value) -%}
    {{- (value | string)[:500] | replace("\\", "/") | replace("'", "`") | replace("\n", " ") | replace("\r", " ") -}}
{%- endmacro %}
