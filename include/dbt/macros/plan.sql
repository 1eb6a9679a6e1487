{#
    The tracking plan's part of the transform (adr/0029): violations come from
    the verdict recorded with each event where it was validated, unnested here.
#}


{#
    The rows of `relation` times the violations in its JSON verdict column
    (trackway.plan.verdict): event_id, event_name, event_version, source_id,
    received_at, event_date, plan_version, kind, property.
    A verdict whose `violations` is not an array, or an element without a
    kind, gives no row (only Trackway writes verdicts; this keeps a damaged
    one from failing the build).
#}
{% macro plan_violations_unnested(relation, verdict) -%}
    {{ return(adapter.dispatch('plan_violations_unnested', 'trackway')(relation, verdict)) }}
{%- endmacro %}

{% macro default__plan_violations_unnested(relation, verdict) -%}{{ trackway._unsupported_adapter('plan_violations_unnested') }}{%- endmacro %}

{% macro _plan_violation_select(event_version, plan_version, kind, property) -%}
select
    r.event_id,
    r.event_name,
    {{ event_version }} as event_version,
    r.source_id,
    r.received_at,
    r.event_date,
    {{ plan_version }} as plan_version,
    {{ kind }} as kind,
    {{ property }} as property
{%- endmacro %}

{% macro duckdb__plan_violations_unnested(relation, verdict) -%}
{%- set v = 'r.' ~ verdict -%}
{{ trackway._plan_violation_select(
    "json_extract_string(" ~ v ~ ", '$.eventVersion')", "json_extract_string(" ~ v ~ ", '$.plan')",
    "json_extract_string(e.value, '$.kind')", "json_extract_string(e.value, '$.property')",
) }}
from {{ relation }} as r, json_each({{ v }}, '$.violations') as e
where
    json_type({{ v }}, '$.violations') = 'ARRAY'
    and json_extract_string(e.value, '$.kind') is not null
{%- endmacro %}

{% macro postgres__plan_violations_unnested(relation, verdict) -%}
{%- set v = 'r.' ~ verdict -%}
{{ trackway._plan_violation_select(
    v ~ " ->> 'eventVersion'", v ~ " ->> 'plan'", "e.value ->> 'kind'", "e.value ->> 'property'",
) }}
from {{ relation }} as r
cross join lateral jsonb_array_elements(
    case when jsonb_typeof({{ v }} -> 'violations') = 'array' then {{ v }} -> 'violations' end
) as e (value)
where e.value ->> 'kind' is not null
{%- endmacro %}

{% macro bigquery__plan_violations_unnested(relation, verdict) -%}
{%- set v = 'r.' ~ verdict -%}
{{ trackway._plan_violation_select(
    "json_value(" ~ v ~ ", '$.eventVersion')", "json_value(" ~ v ~ ", '$.plan')",
    "json_value(e, '$.kind')", "json_value(e, '$.property')",
) }}
from {{ relation }} as r,
    unnest(case when json_type(json_query({{ v }}, '$.violations')) = 'array' then json_query_array({{ v }}, '$.violations') end) as e
where json_value(e, '$.kind') is not null
{%- endmacro %}
