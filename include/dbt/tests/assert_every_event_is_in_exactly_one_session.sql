{#
    Every event has a session_id, and it names exactly one row of
    analytics.sessions (sessions.session_id is also tested unique). Returns
    the events that break this. With var('test_scope') 'new_rows', the events the
    latest run wrote (macros/tests/new_rows.sql): a merged session rewrites its events.
    Only the sessions those events name are read, so DuckDB hashes the new
    events' session ids rather than all of analytics.sessions.
#}

with tested_events as (

    select
        event_id,
        session_id
    from {{ trackway.new_rows(ref('events'), 'transformed_at') }} as events  -- noqa: AL05

),

named_sessions as (

    select session_id
    from {{ ref('sessions') }}
    where session_id in (select tested_events.session_id from tested_events)

)

select
    tested_events.event_id,
    tested_events.session_id
from tested_events
left join named_sessions
    on tested_events.session_id = named_sessions.session_id
where named_sessions.session_id is null
