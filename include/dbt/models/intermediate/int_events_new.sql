{{ config(materialized='table') }}

{#
    The events of this batch that analytics.events does not hold yet, typed
    as analytics.events shows them (before sessions and people are added).
    A message already in analytics.events is a duplicate however late it
    arrives: it never makes a second row and never replaces the first.
#}

{#- var('dedupe_against_events') is false only in unit tests, which mock their inputs. -#}
{%- set previous_events = trackway.previous_events_relation()
    if var('dedupe_against_events', true) and not flags.FULL_REFRESH else none %}

with events as (

    select * from {{ ref('int_events_deduplicated') }}

),

client_timed as (

    select
        *,
        coalesce(original_timestamp_at, timestamp_at) as client_timestamp_at
    from events

),

timed as (

    select
        *,
        -- Segment's skew correction when the client's clock can be
        -- calibrated against sentAt, else the client's time, else arrival.
        case
            when sent_at is not null and client_timestamp_at is not null
                then {{ trackway.skew_corrected('received_at', 'sent_at', 'client_timestamp_at') }}
            else coalesce(client_timestamp_at, received_at)
        end as occurred_at
    from client_timed

),

final as (

    select
        message_id as event_id,
        event_type,
        case event_type
            when 'track' then track_event
            when 'page' then 'Page Viewed'
            when 'screen' then 'Screen Viewed'
            when 'identify' then 'Identify'
            when 'group' then 'Group'
            when 'alias' then 'Alias'
        end as event_name,
        case when event_type in ('page', 'screen') then page_name end as page_name,
        user_id,
        anonymous_id,
        client_session_id,
        source_id,

        occurred_at,
        client_timestamp_at as original_timestamp,
        sent_at,
        received_at,
        loaded_at,

        coalesce(context_page_url, case when event_type = 'page' then properties_url end) as page_url,
        coalesce(context_page_path, case when event_type = 'page' then properties_path end) as page_path,
        coalesce(context_page_title, case when event_type = 'page' then properties_title end) as page_title,
        coalesce(context_page_referrer, case when event_type = 'page' then properties_referrer end) as referrer,
        coalesce(context_page_search, case when event_type = 'page' then properties_search end) as page_search,

        utm_source,
        utm_medium,
        utm_campaign,
        utm_term,
        utm_content,

        context_user_agent as user_agent,
        context_ip as ip,
        context_locale as locale,
        context_library_name as library_name,
        context_library_version as library_version,
        group_id,
        previous_id,

        properties,
        traits,
        context,
        experiments,

        {{ trackway.utc_date('occurred_at') }} as event_date,
        source_object,
        line_number

    from timed
    {%- if previous_events is not none %}
        where not exists (
            select 1 from {{ previous_events }} as already
            where already.event_id = timed.message_id
        )
    {%- endif %}

)

select * from final
