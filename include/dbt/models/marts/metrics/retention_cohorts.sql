{#
    analytics.retention_cohorts: weekly cohorts of people (stitched) by the
    ISO week (Monday) of their first active day, and the share of each cohort
    active in week N after it, N = 0..12. Week N is the calendar week starting
    cohort_week + 7 N days: N = 0 is the cohort's own week (share 1).

    A table rebuilt each run from intermediate.int_person_days (one row per
    person and active day, far smaller than events): a late event or a
    re-stitched person can move anyone's first week, so every cohort is
    recounted; this reads person-days, never events.
#}

{{ config(materialized='table') }}

{%- set max_week = 12 %}

with person_days as (

    select
        person_id,
        activity_date
    from {{ ref('int_person_days') }}

),

people as (

    select
        person_id,
        {{ trackway.week_start('min(activity_date)') }} as cohort_week
    from person_days
    group by person_id

),

cohorts as (

    select
        cohort_week,
        count(*) as cohort_people
    from people
    group by cohort_week

),

active_weeks as (

    select distinct
        people.cohort_week,
        person_days.person_id,
        cast(
            {{ trackway.days_between(trackway.week_start('person_days.activity_date'), 'people.cohort_week') }} / 7
            as {{ dbt.type_int() }}
        ) as week_number
    from person_days
    inner join people on person_days.person_id = people.person_id

),

retained as (

    select
        cohort_week,
        week_number,
        count(*) as active_people
    from active_weeks
    where week_number <= {{ max_week }}
    group by cohort_week, week_number

),

week_numbers as (

    {%- for n in range(max_week + 1) %}
        select {{ n }} as week_number{{ " union all" if not loop.last }}
    {%- endfor %}

),

latest as (

    select max(activity_date) as latest_date from person_days

)

select
    cohorts.cohort_week,
    cast(week_numbers.week_number as {{ dbt.type_int() }}) as week_number,
    {{ trackway.add_days('cohorts.cohort_week', '7 * week_numbers.week_number') }} as week_start,
    cohorts.cohort_people,
    coalesce(retained.active_people, 0) as active_people,
    {{ trackway.safe_ratio('coalesce(retained.active_people, 0)', 'cohorts.cohort_people') }} as retention_rate,
    {{ trackway.add_days('cohorts.cohort_week', '7 * week_numbers.week_number + 6') }} <= latest.latest_date
        as is_complete_week,
    current_timestamp as transformed_at
from cohorts
cross join week_numbers
cross join latest
left join retained
    on
        cohorts.cohort_week = retained.cohort_week
        and week_numbers.week_number = retained.week_number
where {{ trackway.add_days('cohorts.cohort_week', '7 * week_numbers.week_number') }} <= latest.latest_date
