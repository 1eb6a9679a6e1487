{#
    One row per tracking plan violation of each event in analytics.events,
    unnested from the verdict recorded with the event where it was validated
    (adr/0029): the collector's `_trackwayPlan`, or the loader's for records
    of other systems' files (raw.events_raw.plan_verdict). Nothing is
    validated here, so a run costs in proportion to its batch, whatever the
    size of the plan; an event nothing judged (no plan, mode allow) has none.

    Only the copy analytics.events kept (the first received) counts: a
    duplicate's verdict never adds rows. Incremental by (event_id,
    violation_index): a row read again inside the lookback replaces itself.
#}

{{ config(
    materialized='incremental',
    unique_key=['event_id', 'violation_index'],
    incremental_strategy=trackway.incremental_strategy(),
    on_schema_change='fail',
) }}

with verdicts as (

    select
        message_id,
        source_object,
        line_number,
        loaded_at,
        {{ trackway.try_json_object('plan_verdict') }} as verdict
    from {{ ref('stg_events') }}
    where plan_verdict is not null

),

kept as (

    select
        events.event_id,
        events.event_name,
        events.source_id,
        events.received_at,
        events.event_date,
        verdicts.verdict
    from verdicts
    inner join {{ ref('events') }} as events
        on
            verdicts.message_id = events.event_id
            and verdicts.source_object = events.source_object
            and verdicts.line_number = events.line_number
    -- the kept copy of a batch event was loaded with the batch: prunes analytics.events by loaded_at
    where events.loaded_at >= (select min(batch.loaded_at) from verdicts as batch)

),

unnested as (

    {{ trackway.plan_violations_unnested('kept', 'verdict') }}

)

select
    event_id,
    event_name,
    event_version,
    source_id,
    received_at,
    event_date,
    plan_version,
    -- a verdict's violations in a stable order (the same for a rerun and a full refresh)
    row_number() over (partition by event_id order by kind, property) - 1 as violation_index,
    kind,
    property
from unnested
