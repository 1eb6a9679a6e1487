{#
    Per day (UTC), event and source: events, events with at least one
    tracking plan violation, and the compliance rate.
#}

with volume as (

    select
        event_date,
        event_name,
        source_id,
        count(*) as events
    from {{ ref('events') }}
    group by event_date, event_name, source_id

),

violating as (

    select
        event_date,
        event_name,
        source_id,
        count(distinct event_id) as events_with_violations
    from {{ ref('plan_violation_rows') }}
    group by event_date, event_name, source_id

)

select
    volume.event_date,
    volume.event_name,
    volume.source_id,
    volume.events,
    coalesce(violating.events_with_violations, 0) as events_with_violations,
    cast(
        volume.events - coalesce(violating.events_with_violations, 0)
        as {{ 'float64' if target.type == 'bigquery' else 'double precision' }}
    )
    / volume.events as compliance_rate
from volume
left join violating
    on
        volume.event_date = violating.event_date
        and volume.event_name = violating.event_name
        and volume.source_id is not distinct from violating.source_id
