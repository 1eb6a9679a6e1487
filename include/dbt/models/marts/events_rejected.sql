{#
    analytics.events_rejected: every raw line that could not become an event,
    with why, so bad input is visible to analysts and can be fixed and
    reprocessed from raw instead of vanishing. Incremental: each run adds
    the batch's rejected lines, keyed by their raw lineage, so a line read
    again inside the lookback replaces itself and is never counted twice.
#}

{{ config(
    materialized='incremental',
    unique_key=['source_object', 'line_number', 'load_id'],
    incremental_strategy=trackway.incremental_strategy(),
    on_schema_change='fail',
) }}

with rejected as (

    select * from {{ ref('int_events_validated') }}
    where reject_reason is not null

)

select
    source_object,
    line_number,
    load_id,
    loaded_at,
    reject_reason,
    reject_detail,
    message_id,
    event_type,
    user_id,
    anonymous_id,
    received_at_text as received_at,
    parse_error,
    raw
from rejected
