{#
    Helpers for the models generated from the tracking plan (include/dbt/models/plan/,
    written by trackway.plan.dbtgen; never edit those by hand).
#}

{#
    accepted_values that quotes its values safely: plan enums may hold quotes,
    backslashes or anything else, and dbt's built-in test pastes them in unescaped.
#}
{% test plan_accepted_values(model, column_name, values) %}
    select {{ column_name }} as value
    from {{ model }}
    where
        {{ column_name }} is not null
        and cast({{ column_name }} as {{ dbt.type_string() }}) not in (
            {%- for value in values %}
            {{ "'" ~ (value | string | replace("'", "''")) ~ "'" }}{{ "," if not loop.last }}
            {%- endfor %}
        )
{% endtest %}
