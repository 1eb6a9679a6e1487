{#
    analytics.daily_active_users: one row per UTC day with activity.
    active_people counts stitched people (see events.person_id);
    active_users those identified (a user_id, or an anonymous id linked to
    one); new_people those whose first event ever is that day;
    weekly/monthly_active_people count people active in the 7/30 days
    ending that day. Incremental: days whose person-days changed, and the
    29 days after them (their rolling windows), are recomputed.
#}

{{ config(
    materialized='incremental',
    unique_key='activity_date',
    incremental_strategy=trackway.incremental_strategy(),
    on_schema_change='fail',
) }}

with person_days as (

    select * from {{ ref('int_person_days') }}

),

{%- if is_incremental() %}

    changed_days as (

        select distinct activity_date
        from person_days
        where transformed_at > (select max(d.transformed_at) from {{ this }} as d)

    ),

{%- endif %}

days as (

    select distinct activity_date
    from person_days
    {%- if is_incremental() %}
        where
            person_days.activity_date >= (select min(c.activity_date) from changed_days as c)
            and exists (
            select 1 from changed_days
            where
                person_days.activity_date >= changed_days.activity_date
                and person_days.activity_date < changed_days.activity_date + 30
        )
    {%- endif %}

),

windowed as (

    select
        days.activity_date,
        person_days.activity_date as active_on,
        person_days.person_id,
        person_days.is_identified,
        person_days.events
    from days
    inner join person_days
        on
            days.activity_date >= person_days.activity_date
            and days.activity_date - 30 < person_days.activity_date

),

first_days as (

    select
        person_id,
        min(activity_date) as first_day
    from person_days
    where
        person_id in (
            select w.person_id from windowed as w
            where w.active_on = w.activity_date
        )
    group by person_id

)

select
    windowed.activity_date,
    count(distinct case when windowed.active_on = windowed.activity_date then windowed.person_id end)
        as active_people,
    count(
        distinct case
            when windowed.active_on = windowed.activity_date and windowed.is_identified = 1 then windowed.person_id
        end
    ) as active_users,
    count(
        distinct case
            when windowed.active_on = windowed.activity_date and first_days.first_day = windowed.activity_date
                then windowed.person_id
        end
    ) as new_people,
    sum(case when windowed.active_on = windowed.activity_date then windowed.events else 0 end) as events,
    count(distinct case when windowed.active_on > windowed.activity_date - 7 then windowed.person_id end)
        as weekly_active_people,
    count(distinct windowed.person_id) as monthly_active_people,
    current_timestamp as transformed_at
from windowed
left join first_days on windowed.person_id = first_days.person_id
group by windowed.activity_date
