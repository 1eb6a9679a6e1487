{#
    The tracking plan's part of the transform (adr/0019): violations come from
    the verdict recorded with each event where it was validated, unnested here.
#}


{#
    The rows of `relation` times the violations in its JSON verdict column
    (trackway.plan.verdict): event_id, event_name, event_version, source_id,
    received_at, event_date, plan_version, violation_index, kind, property.
    A verdict whose `violations` is not an array, or an element without a
    kind, gives no row (only Trackway writes verdicts; this keeps a damaged
    one from failing the build).
#}
{% macro plan_violations_unnested(relation, verdict) -%}
    {{ return(adapter.dispatch('plan_violations_unnested', 'trackway')(relation, verdict)) }}
{%- endmacro %}

{% macro default__plan_violations_unnested(relation, verdict) -%}{{ trackway._unsupported_adapter('plan_violations_unnested') }}{%- endmacro %}

{% macro duckdb__plan_violations_unnested(relation, verdict) -%}
select
    r.event_id,
    r.event_name,
    json_extract_string(r.{{ verdict }}, '$.eventVersion') as event_version,
    r.source_id,
    r.received_at,
    r.event_date,
    json_extract_string(r.{{ verdict }}, '$.plan') as plan_version,
    cast(v.key as bigint) as violation_index,
    json_extract_string(v.value, '$.kind') as kind,
    json_extract_string(v.value, '$.property') as property
from {{ relation }} as r, json_each(r.{{ verdict }}, '$.violations') as v
where
    json_type(r.{{ verdict }}, '$.violations') = 'ARRAY'
    and json_extract_string(v.value, '$.kind') is not null
{%- endmacro %}

{% macro postgres__plan_violations_unnested(relation, verdict) -%}
select
    r.event_id,
    r.event_name,
    r.{{ verdict }} ->> 'eventVersion' as event_version,
    r.source_id,
    r.received_at,
    r.event_date,
    r.{{ verdict }} ->> 'plan' as plan_version,
    v.ordinality - 1 as violation_index,
    v.value ->> 'kind' as kind,
    v.value ->> 'property' as property
from {{ relation }} as r
cross join lateral jsonb_array_elements(
    case when jsonb_typeof(r.{{ verdict }} -> 'violations') = 'array' then r.{{ verdict }} -> 'violations' end
) with ordinality as v (value, ordinality)
where v.value ->> 'kind' is not null
{%- endmacro %}

{% macro bigquery__plan_violations_unnested(relation, verdict) -%}
select
    r.event_id,
    r.event_name,
    json_value(r.{{ verdict }}, '$.eventVersion') as event_version,
    r.source_id,
    r.received_at,
    r.event_date,
    json_value(r.{{ verdict }}, '$.plan') as plan_version,
    violation_index,
    json_value(v, '$.kind') as kind,
    json_value(v, '$.property') as property
from {{ relation }} as r, unnest(json_query_array(r.{{ verdict }}, '$.violations')) as v with offset as violation_index
where json_value(v, '$.kind') is not null
{%- endmacro %}
