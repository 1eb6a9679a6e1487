{#
    What a data test reads: all of a table, or only the rows the latest run wrote (adr/0034).

    var('test_scope'):
      * 'all' (the default): every test reads whole tables; the daily events_audit DAG,
        `trackway transform build` and CI run so;
      * 'new_rows': the hourly events_transform: a test of an incremental model reads
        only its newest rows, so the hourly build costs what it wrote, not all history.

    "Newest rows" of a relation, by the column its model is written with:
      * transformed_at (set once per write): the rows of the latest write;
      * loaded_at (raw.events_raw, analytics.events_rejected): the rows loaded within
        var('raw_lookback_minutes') of the newest, which is what the latest run read.
    A relation with neither column, or a model that is not incremental, is always read whole.
    Uniqueness stays complete: a new row cannot repeat an older key, because each incremental
    model replaces rows by its unique_key (delete+insert, merge), and the test of the new rows
    finds repeats among them; on PostgreSQL the unique indexes enforce the same.
#}
{% macro new_rows(relation, column) -%}
    {%- set scope = var('test_scope') -%}
    {%- if scope not in ('all', 'new_rows') -%}
        {{ exceptions.raise_compiler_error("var('test_scope') must be 'all' or 'new_rows', got " ~ scope) }}
    {%- endif -%}
    {%- if scope == 'all' or column is none -%}
        {{ return(relation) }}
    {%- endif -%}
    {%- if column == 'transformed_at' -%}
        {%- set since = "(select max(newest.transformed_at) from " ~ relation ~ " as newest)" -%}
    {%- else -%}
        {%- set since = "(select max(newest." ~ column ~ ") from " ~ relation ~ " as newest) - "
            ~ trackway.interval_minutes(var('raw_lookback_minutes')) -%}
    {%- endif -%}
    {{ return("(select * from " ~ relation ~ " where " ~ column ~ " >= " ~ since ~ ")") }}
{%- endmacro %}


{#
    The column that tells a tested node's newest rows (see new_rows), or none: an
    incremental model's transformed_at, else its loaded_at; a source's loaded_at.
#}
{% macro new_rows_column(node_id) -%}
    {%- set node = graph.nodes.get(node_id) or graph.sources.get(node_id) -%}
    {%- if node is none
        or (node.resource_type == 'model' and node.config.materialized != 'incremental') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- for column in ['transformed_at', 'loaded_at'] if column in node.columns -%}
        {{ return(column) }}
    {%- endfor -%}
    {{ return(none) }}
{%- endmacro %}


{#
    dbt's `where` config, with one placeholder of our own: where: __new_rows__ (set for every
    data test in dbt_project.yml) reads the tested relation through new_rows. Any other
    `where` behaves as in dbt.
#}
{% macro get_where_subquery(relation) -%}
    {%- if config.get('where') != '__new_rows__' -%}
        {{ return(adapter.dispatch('get_where_subquery', 'dbt')(relation)) }}
    {%- endif -%}
    {%- set tested = model.attached_node or (model.depends_on.nodes | first) -%}
    {%- set filtered = trackway.new_rows(relation, trackway.new_rows_column(tested)) -%}
    {{ return(filtered if filtered == relation else filtered ~ " as dbt_subquery") }}
{%- endmacro %}
