{#
    Helpers for the analytics_x views (models/plan/x/, written by trackway.plan.xgen from the
    plan's `references:`; never edit those by hand). docs/app-data.md explains them.
#}

{#
    ", <alias>.<column> as <prefix>__<column>" for every column of an app table, read from the
    warehouse when the view is built (so a column the product adds arrives at the next build);
    dlt's own columns (_dlt_load_id, _dlt_id) are left out. A missing table stops the build
    with what to do: the view would otherwise say that nothing resolves.
#}
{% macro x_columns(relation, alias, prefix) -%}
    {%- if execute -%}
        {%- set columns = adapter.get_columns_in_relation(relation) -%}
        {%- if not columns -%}
            {{ exceptions.raise_compiler_error(
                "analytics_x: " ~ relation ~ " does not exist (or has no columns). The tracking plan references it: "
                ~ "declare the product database in the sources file (kind: database) and run the app_sync DAG "
                ~ "(docs/app-data.md)"
            ) }}
        {%- endif -%}
        {%- for column in columns if not column.name.startswith('_dlt_') -%}
            , {{ alias }}.{{ adapter.quote(column.name) }} as {{ adapter.quote(prefix ~ '__' ~ column.name) }}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}


{#
    dbt's relationships test, over the view's own join: values of `column_name` for which no row
    of `to` was found (`resolved`, the joined row's key, is null). The join compares the value
    and the key as text, so an integer id in the plan and a text id in the product still match.
#}
{% test x_relationships(model, column_name, resolved, to) %}
    select {{ column_name }} as value, '{{ to }}' as referenced
    from {{ model }}
    where {{ column_name }} is not null and {{ adapter.quote(resolved) }} is null
{% endtest %}


{#
    One row, failing the test, when more than var('x_max_unresolved_share') of the values of
    `column_name` find no application row: a renamed id, a sync that stopped, a table emptied.
#}
{% test x_unresolved_share(model, column_name, resolved) %}
    {%- set max_share = var('x_max_unresolved_share') -%}
    with counted as (
        select
            count({{ column_name }}) as refs,
            sum(case when {{ column_name }} is not null and {{ adapter.quote(resolved) }} is null then 1 else 0 end)
                as unresolved
        from {{ model }}
    )

    select refs, unresolved, cast(unresolved as {{ dbt.type_float() }}) / refs as unresolved_share
    from counted
    where refs > 0 and cast(unresolved as {{ dbt.type_float() }}) / refs > {{ max_share }}
{% endtest %}
