{#
    One row per (source_id, messageId) among this batch's valid lines.
    Segment clients retry and objects can be re-sent, so the same message
    arrives several times; the first copy received wins: first loaded into
    the warehouse, then first received by the collector, then position.
    Load time comes first so that the rule is the same within a run and
    across runs (an earlier run has only seen earlier loads), which is what
    makes a --full-refresh equal to any sequence of incremental runs.
    Invalid copies are left to events_rejected and never shadow a valid one.

    Duplicates are per source, as in Segment: a messageId names a message
    within its source only, so a low-trust source (a browser's public write
    key) cannot make another source's message a "duplicate" by sending its
    messageId first. source_rank orders the sources that sent one messageId
    by the same rule; int_events_new gives the first of them the messageId
    as event_id (macros/event_ids.sql).
#}

{%- set first_copy_order = 'order by loaded_at, received_at, source_object, line_number' %}

with valid as (

    select * from {{ ref('int_events_validated') }}
    where reject_reason is null

),

ranked as (

    select
        *,
        row_number() over (partition by source_id, message_id {{ first_copy_order }}) as copy_rank,
        count(*) over (partition by source_id, message_id) as copies_received
    from valid

),

first_copies as (

    select * from ranked
    where copy_rank = 1

)

select
    *,
    row_number() over (partition by message_id {{ first_copy_order }}) as source_rank
from first_copies
