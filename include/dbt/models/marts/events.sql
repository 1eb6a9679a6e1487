{#
    analytics.events: one typed row per Segment message, built incrementally.

    Each run writes:
      * the batch's new messages (int_events_new); a later copy of a
        message already here never adds or replaces a row;
      * existing events whose derived session changed: a new event of a
        device re-sessionizes the device's sessions within the inactivity gap
        of it (a late event can merge two sessions or extend one);
      * existing events whose person changed (analytics.identity_map rows
        written since this table's last run): retroactive stitching.
    Rows are replaced by event_id (delete+insert), so the run's cost follows
    the new data and the sessions and people it touches, not all history.

    Sessions: an event with a client session id (var('session_id_paths'))
    is in that session. Otherwise sessions are derived per device
    (anonymous_id, else user_id): ordered by occurred_at, a gap longer than
    var('session_inactivity_minutes') starts a new session. A derived id is
    md5(device | start in epoch microseconds): stable across reruns, and the
    same a --full-refresh computes.
#}

{{ config(
    materialized='incremental',
    unique_key='event_id',
    incremental_strategy=trackway.incremental_strategy(),
    on_schema_change='fail',
    indexes=trackway.events_indexes(),
    partition_by=trackway.bigquery_partition_by('event_date'),
    merge_prunes_partitions=true,
    cluster_by=trackway.bigquery_cluster_by(['event_name', 'person_id']),
) }}

{%- set gap = trackway.interval_minutes(var('session_inactivity_minutes')) %}
{%- set device_id = trackway.device_id() %}
{%- set columns = [
    'event_id', 'event_type', 'event_name', 'page_name', 'user_id', 'anonymous_id', 'source_id',
    'occurred_at', 'original_timestamp', 'sent_at', 'received_at', 'loaded_at',
    'page_url', 'page_path', 'page_title', 'referrer', 'page_search',
    'utm_source', 'utm_medium', 'utm_campaign', 'utm_term', 'utm_content',
    'user_agent', 'ip', 'locale', 'library_name', 'library_version', 'group_id', 'previous_id',
    'properties', 'traits', 'context', 'experiments', 'event_date', 'source_object', 'line_number',
] %}

with new_events as (

    -- int_events_new has left out the messages already here; the final
    -- select checks again (see there).
    select * from {{ ref('int_events_new') }}

),

{% if is_incremental() %}

    touched_devices as (

        select
            {{ device_id }} as device_id,
            min(occurred_at) - {{ gap }} as reach_from,
            max(occurred_at) + {{ gap }} as reach_to
        from new_events
        where client_session_id is null
        group by 1

    ),

    -- Derived sessions within the gap of a new event: an event of such a
    -- session lies in [first new - gap, last new + gap] (a session cannot
    -- straddle that window without one, as its gaps are <= the cut-off).
    touched_sessions as (

        select distinct existing.session_id
        from {{ this }} as existing
        inner join touched_devices
            on
                {{ trackway.device_id('existing') }} = touched_devices.device_id
                and existing.occurred_at between touched_devices.reach_from and touched_devices.reach_to
        where
            existing.session_id_source = 'derived'
            and existing.occurred_at between
            (select min(t.reach_from) from touched_devices as t)
            and (select max(t.reach_to) from touched_devices as t)

    ),

    -- The time span of the touched sessions, read from two narrow columns:
    -- bounding the wide read below by it lets DuckDB skip every row group
    -- outside it (zone maps), so the read follows the sessions, not history.
    touched_extent as (

        select
            min(occurred_at) as first_at,
            max(occurred_at) as last_at
        from {{ this }}
        where session_id in (select touched_sessions.session_id from touched_sessions)

    ),

    resessioned as (

        select
            {{ columns | join(', ') }},
            false as from_batch,
            session_id as previous_session_id,
            person_id as previous_person_id
        from {{ this }}
        where
            session_id in (select touched_sessions.session_id from touched_sessions)
            and occurred_at between (select e.first_at from touched_extent as e) and (
                select e.last_at from touched_extent as e
            )

    ),

    restitched_ids as (

        select anonymous_id as id from {{ ref('identity_map') }}
        where transformed_at > (select max(t.transformed_at) from {{ this }} as t)

    ),

    restitched as (

        select
            {{ columns | join(', ') }},
            session_id,
            session_id_source,
            -- always rewritten: their person changed
            false as from_batch,
            cast(null as {{ dbt.type_string() }}) as previous_session_id,
            cast(null as {{ dbt.type_string() }}) as previous_person_id
        from {{ this }}
        where
            (
                anonymous_id in (select restitched_ids.id from restitched_ids)
                or user_id in (select restitched_ids.id from restitched_ids)
            )
            and session_id not in (select touched_sessions.session_id from touched_sessions)

    ),

{% endif %}

derived_pool as (

    select
        {{ columns | join(', ') }},
        true as from_batch,
        cast(null as {{ dbt.type_string() }}) as previous_session_id,
        cast(null as {{ dbt.type_string() }}) as previous_person_id
    from new_events
    where client_session_id is null
    {%- if is_incremental() %}
        union all
        select * from resessioned
    {%- endif %}

),

gaps as (

    select
        *,
        {{ device_id }} as device_id,
        case
            when
                lag(occurred_at) over (partition by {{ device_id }} order by occurred_at, event_id) is null
                or occurred_at
                > lag(occurred_at) over (partition by {{ device_id }} order by occurred_at, event_id) + {{ gap }}
                then 1
            else 0
        end as starts_session
    from derived_pool

),

numbered as (

    select
        *,
        sum(starts_session) over (
            partition by device_id order by occurred_at, event_id rows between unbounded preceding and current row
        ) as session_number
    from gaps

),

sessionized as (

    select
        {{ columns | join(', ') }},
        {{ trackway.hash_id([
            'device_id',
            trackway.epoch_us('min(occurred_at) over (partition by device_id, session_number)'),
        ]) }} as session_id,
        'derived' as session_id_source,
        from_batch,
        previous_session_id,
        previous_person_id
    from numbered

    union all

    select
        {{ columns | join(', ') }},
        client_session_id as session_id,
        'client' as session_id_source,
        true as from_batch,
        cast(null as {{ dbt.type_string() }}) as previous_session_id,
        cast(null as {{ dbt.type_string() }}) as previous_person_id
    from new_events
    where client_session_id is not null

    {%- if is_incremental() %}
        union all
        select * from restitched
    {%- endif %}

),

identity_map as (

    select
        anonymous_id,
        person_id
    from {{ ref('identity_map') }}

),

written as (

    select
        {% for column in columns[:6] -%}
            sessionized.{{ column }},
        {% endfor -%}
        sessionized.session_id,
        sessionized.session_id_source,
        coalesce(
            by_user.person_id, sessionized.user_id, by_device.person_id, sessionized.anonymous_id
        ) as person_id,
        {% for column in columns[6:] -%}
            sessionized.{{ column }},
        {% endfor -%}
        sessionized.from_batch,
        sessionized.previous_session_id,
        sessionized.previous_person_id
    from sessionized
    left join identity_map as by_user on sessionized.user_id = by_user.anonymous_id
    left join identity_map as by_device on sessionized.anonymous_id = by_device.anonymous_id

)

select
    {% for column in columns[:6] -%}
        {{ column }},
    {% endfor -%}
    session_id,
    session_id_source,
    person_id,
    {% for column in columns[6:] -%}
        {{ column }},
    {% endfor -%}
    -- set by the collector's sampling (docs/privacy.md); 1 for every unsampled event
    {{ trackway.sample_rate('context') }} as sample_rate,
    current_timestamp as transformed_at
from written
{%- if is_incremental() %}
    where
        -- The batch's new messages. int_events_new left out those already
        -- here; checked again so that a retried task, or a run of this model
        -- alone, can never replace a row with a later copy. Checked here, at
        -- the end, and not where the batch is read: PostgreSQL estimated that
        -- anti-join at one row and planned every join after it as nested
        -- loops (44 s instead of 2 s in benchmarks/bench_transform.py).
        (from_batch and not exists (select 1 from {{ this }} as already where already.event_id = written.event_id))
        -- Existing events: written again only when their session or person
        -- changed, so a session that keeps growing (a device active across
        -- runs) costs its new events, not all of its events, on every run.
        or (
            not from_batch
            and (
                previous_session_id is null
                or session_id != previous_session_id
                or person_id is distinct from previous_person_id
            )
        )
{%- endif %}
