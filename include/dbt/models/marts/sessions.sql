{#
    analytics.sessions: one row per session of analytics.events.

    Incremental: each run recomputes, from all of their events, only the
    sessions that hold an event analytics.events wrote since this table's
    last run (new events, re-sessionized or re-stitched ones). A derived
    session that a late event merged into another, or whose start moved,
    gets a new id; the post-hook deletes the old row, which no event points
    to any more.
#}

{{ config(
    materialized='incremental',
    unique_key='session_id',
    incremental_strategy=trackway.incremental_strategy(),
    on_schema_change='fail',
    indexes=trackway.sessions_indexes(),
    partition_by=trackway.bigquery_partition_by('session_date'),
    merge_prunes_partitions=true,
    cluster_by=trackway.bigquery_cluster_by(['person_id']),
    post_hook=["{{ trackway.delete_absorbed_sessions() }}"],
) }}

with
{%- if is_incremental() %}

    written as (

        select
            session_id,
            occurred_at
        from {{ ref('events') }}
        where transformed_at > (select max(s.transformed_at) from {{ this }} as s)

    ),

    touched as (

        select distinct session_id from written

    ),

    -- Every event of a touched session is one written since this table's
    -- last run, or one it already counted, inside the session's stored
    -- [started_at, ended_at]. Bounding occurred_at by both lets the scan of
    -- analytics.events skip all other history (DuckDB zone maps), so the
    -- cost follows the touched sessions, not all events ever kept.
    touched_extent as (

        select
            min(extents.first_at) as first_at,
            max(extents.last_at) as last_at
        from (
            select
                min(written.occurred_at) as first_at,
                max(written.occurred_at) as last_at
            from written
            union all
            select
                min(stored.started_at) as first_at,
                max(stored.ended_at) as last_at
            from {{ this }} as stored
            where stored.session_id in (select touched.session_id from touched)
        ) as extents

    ),
{%- endif %}

session_events as (

    select
        *,
        row_number() over (partition by session_id order by occurred_at, event_id) as nth_event,
        row_number() over (
            partition by session_id, event_type = 'page' order by occurred_at, event_id
        ) as nth_page,
        row_number() over (
            partition by session_id, event_type = 'page' order by occurred_at desc, event_id desc
        ) as nth_page_from_end
    from {{ ref('events') }}
    {%- if is_incremental() %}
        where
            session_id in (select touched.session_id from touched)
            and occurred_at between (select e.first_at from touched_extent as e) and (
                select e.last_at from touched_extent as e
            )
    {%- endif %}

),

identity_map as (

    select * from {{ ref('identity_map') }}

),

sessions as (

    select
        session_id,
        max(session_id_source) as session_id_source,
        max(case when nth_event = 1 then anonymous_id end) as first_anonymous_id,
        max(anonymous_id) as any_anonymous_id,
        max(user_id) as seen_user_id,
        max(case when nth_event = 1 then person_id end) as person_id,
        min(occurred_at) as started_at,
        max(occurred_at) as ended_at,
        count(*) as events,
        sum(case when event_type = 'page' then 1 else 0 end) as page_views,
        max(case when event_type = 'page' and nth_page = 1 then page_path end) as landing_page_path,
        max(case when event_type = 'page' and nth_page_from_end = 1 then page_path end) as exit_page_path,
        max(case when nth_event = 1 then referrer end) as referrer,
        max(case when nth_event = 1 then utm_source end) as utm_source,
        max(case when nth_event = 1 then utm_medium end) as utm_medium,
        max(case when nth_event = 1 then utm_campaign end) as utm_campaign,
        max(case when nth_event = 1 then utm_term end) as utm_term,
        max(case when nth_event = 1 then utm_content end) as utm_content,
        max(case when nth_event = 1 then user_agent end) as user_agent
    from session_events
    group by session_id

)

select
    sessions.session_id,
    sessions.session_id_source,
    coalesce(sessions.first_anonymous_id, sessions.any_anonymous_id) as anonymous_id,
    -- The user this device is known to be, applied retroactively: its
    -- first identify/alias link, else a userId seen in the session.
    coalesce(device.user_id, sessions.seen_user_id) as user_id,
    sessions.person_id,
    sessions.started_at,
    sessions.ended_at,
    ({{ trackway.epoch_us('sessions.ended_at') }} - {{ trackway.epoch_us('sessions.started_at') }}) / 1000000.0
        as duration_seconds,
    sessions.events,
    sessions.page_views,
    sessions.landing_page_path,
    sessions.exit_page_path,
    sessions.referrer,
    sessions.utm_source,
    sessions.utm_medium,
    sessions.utm_campaign,
    sessions.utm_term,
    sessions.utm_content,
    sessions.user_agent,
    {{ trackway.utc_date('sessions.started_at') }} as session_date,
    current_timestamp as transformed_at
from sessions
left join identity_map as device
    on coalesce(sessions.first_anonymous_id, sessions.any_anonymous_id) = device.anonymous_id
