{#
    analytics.stickiness: per UTC day, daily, weekly and monthly active people
    (stitched, events.person_id) and how many of the month's people come on a
    given day (DAU/MAU). A view over analytics.daily_active_users, which
    already counts the 7- and 30-day windows incrementally: this mart costs
    the transform nothing.
#}

{{ config(materialized='view') }}

select
    activity_date,
    active_people as dau,
    weekly_active_people as wau,
    monthly_active_people as mau,
    {{ trackway.safe_ratio('active_people', 'monthly_active_people') }} as dau_over_mau,
    {{ trackway.safe_ratio('active_people', 'weekly_active_people') }} as dau_over_wau,
    {{ trackway.safe_ratio('weekly_active_people', 'monthly_active_people') }} as wau_over_mau
from {{ ref('daily_active_users') }}
