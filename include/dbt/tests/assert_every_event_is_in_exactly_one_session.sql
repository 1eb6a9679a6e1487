{#
    Every event has a session_id, and it names exactly one row of
    analytics.sessions (sessions.session_id is also tested unique). Returns
    the events that break this. With var('test_scope') 'new_rows', the events the
    latest run wrote (macros/tests/new_rows.sql): a merged session rewrites its events.
#}

select
    events.event_id,
    events.session_id
from {{ trackway.new_rows(ref('events'), 'transformed_at') }} as events
left join {{ ref('sessions') }} as sessions
    on events.session_id = sessions.session_id
where sessions.session_id is null
