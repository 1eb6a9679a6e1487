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
    on rejected.source_object = raw_rows.source_object
    and rejected.line_number = raw_rows.line_number
    and rejected.load_id = raw_rows.load_id
left join {{ ref('events') }} as events
    on events.event_id = raw_rows.message_id
where rejected.source_object is null
    and events.event_id is null
