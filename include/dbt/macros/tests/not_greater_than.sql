{#
    Generic test: `column_name` is never greater than the expression `other` on the same row
    (NULLs pass), e.g. a funnel step never holds more people than the step before it.
#}
{% test not_greater_than(model, column_name, other) %}

select *
from {{ model }}
where {{ column_name }} > {{ other }}

{% endtest %}
