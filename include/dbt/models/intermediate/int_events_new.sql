{{ config(materialized='table') }}

{#
    The events of this batch that analytics.events does not hold yet, typed
    as analytics.events shows them (before sessions and people are added).
    A message already in analytics.events is a duplicate however late it
    arrives: it never makes a second row and never replaces the first.

    "Already there" is per source (macros/event_ids.sql): the same source's
    message is there as the messageId itself or as its source-scoped id. A
    messageId that another source claimed first, in this batch
    (source_rank > 1) or in an earlier run (a row of another source with
    that event_id), gets the source-scoped id, so rows already loaded keep
    their event_id and no source can suppress another's messages.
#}

{#- var('dedupe_against_events') is false only in unit tests, which mock their inputs. -#}
{%- set previous_events = trackway.previous_events_relation()
    if var('dedupe_against_events', true) and not flags.FULL_REFRESH else none %}

with events as (

    select
        *,
        {{ trackway.source_scoped_event_id('source_id', 'message_id') }} as source_scoped_id
    from {{ ref('int_events_deduplicated') }}

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

-- Drops what analytics.events holds already; claimed_earlier: an earlier
-- run gave this messageId, as event_id, to another source's message.
unseen as (

    {%- if previous_events is not none %}
        select
            timed.*,
            claimed.event_id is not null as claimed_earlier
        from timed
        -- event_id is unique there, so this join keeps one row per message.
        -- A reserved messageId is never an event_id as sent: nothing to find.
        left join {{ previous_events }} as claimed
            on
                timed.message_id = claimed.event_id
                and {{ trackway.message_id_is_claimable('timed.message_id') }}
        where
            (claimed.event_id is null or claimed.source_id is distinct from timed.source_id)
            and not exists (
                select 1 from {{ previous_events }} as already
                where already.event_id = timed.source_scoped_id
            )
    {%- else %}
        select
            *,
            false as claimed_earlier
        from timed
    {%- endif %}

),

final as (

    select
        case
            when
                source_rank = 1
                and {{ trackway.message_id_is_claimable('message_id') }}
                and not claimed_earlier
                then message_id
            else source_scoped_id
        end as event_id,
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

    from unseen

)

select * from final
