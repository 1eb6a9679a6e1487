{#
    Generic test: no two rows share the same values in `columns`.
    (dbt_utils has one; this project avoids package downloads.)
#}
{% test unique_combination(model, columns) %}

select
    {{ columns | join(', ') }},
    count(*) as copies
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
