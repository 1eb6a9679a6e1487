{#
    One link per id: the id (an anonymousId, or an alias's previousId) and
    the user_id it first became. Links come from identify calls, alias
    calls (previousId -> userId) and any event carrying both anonymousId and
    userId. The first link wins: earliest occurred_at, then event_id. A late
    event with an earlier link replaces the link, exactly as a full refresh
    would choose. Incremental: only ids seen in this batch are reconsidered.
#}

{{ config(
    materialized='incremental',
    unique_key='anonymous_id',
    incremental_strategy=trackway.incremental_strategy(),
    on_schema_change='fail',
) }}

with new_events as (

    select * from {{ ref('int_events_new') }}

),

candidates as (

    select
        anonymous_id,
        user_id,
        occurred_at as linked_at,
        event_id as link_event_id,
        event_type as link_type
    from new_events
    where anonymous_id is not null and user_id is not null and anonymous_id <> user_id

    union all

    select
        previous_id as anonymous_id,
        user_id,
        occurred_at as linked_at,
        event_id as link_event_id,
        event_type as link_type
    from new_events
    where event_type = 'alias' and previous_id is not null and user_id is not null and previous_id <> user_id

    {%- if is_incremental() %}

        union all

        select
            anonymous_id,
            user_id,
            linked_at,
            link_event_id,
            link_type
        from {{ this }}
        where anonymous_id in (select new_events.anonymous_id from new_events union all select new_events.previous_id from new_events)
    {%- endif %}

),

ranked as (

    select
        *,
        row_number() over (partition by anonymous_id order by linked_at, link_event_id, link_type) as link_rank
    from candidates

)

select
    anonymous_id,
    user_id,
    linked_at,
    link_event_id,
    link_type
from ranked
where link_rank = 1
