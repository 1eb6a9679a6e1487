{#
    analytics.users: one row per user_id. first/last seen, first touch and
    the anonymous ids count over the user's person (so the anonymous visits
    before signing up count); traits are this user_id's identify traits,
    merged key by key, the latest value of each key winning.

    Incremental: only users whose person had events written since this
    table's last run are recomputed.
#}

{{ config(
    materialized='incremental',
    unique_key='user_id',
    incremental_strategy=trackway.incremental_strategy(),
    on_schema_change='fail',
) }}

with
{%- if is_incremental() %}

    touched_people as (

        select distinct person_id
        from {{ ref('events') }}
        where transformed_at > (select max(u.transformed_at) from {{ this }} as u)

    ),
{%- endif %}

person_events as (

    select *
    from {{ ref('events') }}
    {%- if is_incremental() %}
        where person_id in (select touched_people.person_id from touched_people)
    {%- endif %}

),

ranked as (

    select
        *,
        row_number() over (partition by person_id order by occurred_at, event_id) as nth_event
    from person_events

),

people as (

    select
        person_id,
        min(occurred_at) as first_seen_at,
        max(occurred_at) as last_seen_at,
        count(distinct anonymous_id) as anonymous_ids,
        max(case when nth_event = 1 then utm_source end) as first_utm_source,
        max(case when nth_event = 1 then utm_medium end) as first_utm_medium,
        max(case when nth_event = 1 then utm_campaign end) as first_utm_campaign,
        max(case when nth_event = 1 then utm_term end) as first_utm_term,
        max(case when nth_event = 1 then utm_content end) as first_utm_content,
        max(case when nth_event = 1 then referrer end) as first_referrer
    from ranked
    group by person_id

),

user_ids as (

    select distinct
        user_id,
        person_id
    from person_events
    where user_id is not null

),

trait_values as (

    select
        identifies.user_id,
        trait.key as trait_key,
        trait.value as trait_value,
        row_number() over (
            partition by identifies.user_id, trait.key
            order by identifies.occurred_at desc, identifies.event_id desc
        ) as newest_first
    from person_events as identifies,
        {{ trackway.json_each('identifies.traits') }} as trait
    where
        identifies.event_type = 'identify'
        and identifies.user_id is not null
        and {{ trackway.json_is_object('identifies.traits') }}

),

traits as (

    select
        user_id,
        {{ trackway.json_object_agg('trait_key', 'trait_value') }} as traits
    from trait_values
    where newest_first = 1
    group by user_id

)

select
    user_ids.user_id,
    user_ids.person_id,
    people.first_seen_at,
    people.last_seen_at,
    traits.traits,
    people.anonymous_ids,
    people.first_utm_source,
    people.first_utm_medium,
    people.first_utm_campaign,
    people.first_utm_term,
    people.first_utm_content,
    people.first_referrer,
    current_timestamp as transformed_at
from user_ids
inner join people on user_ids.person_id = people.person_id
left join traits on user_ids.user_id = traits.user_id
