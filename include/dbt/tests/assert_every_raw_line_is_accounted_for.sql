{#
    Nothing is silently dropped: every raw line is in events_rejected (by
    its lineage) or its messageId is in events (itself or as a duplicate
    of the kept copy). Returns the lines that are in neither.
#}

select
    raw_rows.source_object,
    raw_rows.line_number,
    raw_rows.load_id,
    raw_rows.message_id
from {{ source('raw', 'events_raw') }} as raw_rows
left join {{ ref('events_rejected') }} as rejected
    on
        raw_rows.source_object = rejected.source_object
        and raw_rows.line_number = rejected.line_number
        and raw_rows.load_id = rejected.load_id
left join {{ ref('events') }} as events
    on raw_rows.message_id = events.event_id
where
    rejected.source_object is null
    and events.event_id is null
