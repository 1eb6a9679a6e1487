{#
    Tracking plan violations by event, version, source, kind and property:
    how many, first and last seen, one example event. From
    intermediate.plan_violation_rows, that is from the verdicts recorded
    where events were validated (adr/0029).
#}

select
    event_name,
    event_version,
    source_id,
    kind,
    property,
    count(*) as violation_count,
    min(received_at) as first_seen,
    max(received_at) as last_seen,
    min(event_id) as example_event_id
from {{ ref('plan_violation_rows') }}
group by event_name, event_version, source_id, kind, property
