{#
    Nothing is silently dropped: every raw line is in events_rejected (by
    its lineage) or its message is in events (itself or as a duplicate of
    the kept copy), from the same source: as its messageId or its
    source-scoped id (macros/event_ids.sql). A line whose messageId is in
    events only for another source went missing. Returns the lines that are
    in neither. With var('test_scope') 'new_rows', the raw lines the latest run read
    (macros/tests/new_rows.sql), looked up in all of events and events_rejected.
#}

with raw_rows as (

    select
        source_object,
        line_number,
        load_id,
        message_id,
        {{ trackway.nullif_blank('source_id') }} as source_id
    from {{ trackway.new_rows(source('raw', 'events_raw'), 'loaded_at') }} as raw_lines  -- noqa: AL05

),

-- Hashing only the few lines not found by messageId (rejects and
-- source-scoped ids), not every raw line on every build.
not_found_as_sent as (

    select raw_rows.*
    from raw_rows
    left join {{ ref('events_rejected') }} as rejected
        on
            raw_rows.source_object = rejected.source_object
            and raw_rows.line_number = rejected.line_number
            and raw_rows.load_id = rejected.load_id
    left join {{ ref('events') }} as events
        on
            raw_rows.message_id = events.event_id
            and raw_rows.source_id is not distinct from events.source_id
    where
        rejected.source_object is null
        and events.event_id is null

)

select
    not_found_as_sent.source_object,
    not_found_as_sent.line_number,
    not_found_as_sent.load_id,
    not_found_as_sent.message_id,
    not_found_as_sent.source_id
from not_found_as_sent
left join {{ ref('events') }} as events
    on
        {{ trackway.source_scoped_event_id('not_found_as_sent.source_id', 'not_found_as_sent.message_id') }}
        = events.event_id
where events.event_id is null
