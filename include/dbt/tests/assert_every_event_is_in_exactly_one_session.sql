{#
    Every event has a session_id, and it names exactly one row of
    analytics.sessions (sessions.session_id is also tested unique). Returns
    the events that break this.
#}

select
    events.event_id,
    events.session_id
from {{ ref('events') }} as events
left join {{ ref('sessions') }} as sessions
    on events.session_id = sessions.session_id
where sessions.session_id is null
