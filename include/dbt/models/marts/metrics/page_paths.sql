{#
    analytics.page_paths: how people move between pages, per session start
    day (UTC). Each session's page calls, in order (occurred_at, then
    event_id), give one 'entry' transition (to the first page), one 'next'
    transition per page to the page after it, and one 'exit' transition
    (from the last page). Top entry pages, exit pages and next pages are
    sums over days of `sessions` / `transitions` by type.

    Incremental by day: the days of sessions written since this table's last
    run (and of page events rewritten since, e.g. re-sessionized) are
    recomputed whole, from the page events of those days' sessions only.
#}

{{ config(
    materialized='incremental',
    unique_key=trackway.group_unique_key(
        'session_date', ['session_date', 'transition_type', 'from_page_path', 'to_page_path']
    ),
    incremental_strategy=trackway.incremental_strategy(),
    on_schema_change='fail',
    post_hook=["{{ trackway.delete_superseded_rows('session_date') }}"],
) }}

with
{%- if is_incremental() %}

    touched_days as (

        select s.session_date as touched_date
        from {{ ref('sessions') }} as s
        where s.transformed_at > (select max(p.transformed_at) from {{ this }} as p)
        union all
        select e.event_date as touched_date
        from {{ ref('events') }} as e
        where
            e.transformed_at > (select max(p.transformed_at) from {{ this }} as p)
            and e.event_type = 'page'

    ),
{%- endif %}

day_sessions as (

    select
        session_id,
        session_date,
        started_at,
        ended_at
    from {{ ref('sessions') }}
    {%- if is_incremental() %}
        where session_date in (select t.touched_date from touched_days as t)
    {%- endif %}

),

pages as (

    select
        day_sessions.session_id,
        day_sessions.session_date,
        coalesce(page_events.page_path, '(not set)') as page_path,
        row_number() over (
            partition by page_events.session_id order by page_events.occurred_at, page_events.event_id
        ) as nth_page,
        lead(coalesce(page_events.page_path, '(not set)')) over (
            partition by page_events.session_id order by page_events.occurred_at, page_events.event_id
        ) as next_page_path
    from {{ ref('events') }} as page_events
    inner join day_sessions on page_events.session_id = day_sessions.session_id
    {%- if is_incremental() %}
        -- Every event of a session lies within its [started_at, ended_at]: the scan of
        -- analytics.events skips all other history (DuckDB zone maps).
        where
            page_events.event_type = 'page'
            and page_events.occurred_at between (select min(d.started_at) from day_sessions as d) and (
                select max(d.ended_at) from day_sessions as d
            )
    {%- else %}
        where page_events.event_type = 'page'
    {%- endif %}

),

transitions as (

    select
        session_date,
        session_id,
        'entry' as transition_type,
        cast(null as {{ dbt.type_string() }}) as from_page_path,
        page_path as to_page_path
    from pages
    where nth_page = 1

    union all

    select
        session_date,
        session_id,
        case when next_page_path is null then 'exit' else 'next' end as transition_type,
        page_path as from_page_path,
        next_page_path as to_page_path
    from pages

)

select
    session_date,
    transition_type,
    from_page_path,
    to_page_path,
    count(*) as transitions,
    count(distinct session_id) as sessions,
    current_timestamp as transformed_at
from transitions
group by session_date, transition_type, from_page_path, to_page_path
