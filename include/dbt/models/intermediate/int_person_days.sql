{#
    One row per (day, person) with activity: the small table daily, weekly
    and monthly actives are counted from. Incremental by day: the days of
    events written since this table's last run are recomputed whole, so a
    re-stitched person moves from its anonymous id to its user on every
    day it was active.
#}

{{ config(
    materialized='incremental',
    unique_key=trackway.group_unique_key('activity_date', ['activity_date', 'person_id']),
    incremental_strategy=trackway.incremental_strategy(),
    on_schema_change='fail',
    post_hook=["{{ trackway.delete_superseded_rows('activity_date') }}"],
) }}

{%- if is_incremental() %}

    with touched_days as (

        select distinct event_date
        from {{ ref('events') }}
        where transformed_at > (select max(d.transformed_at) from {{ this }} as d)

    )

{%- endif %}

select
    event_date as activity_date,
    person_id,
    max(case when user_id is not null or person_id <> coalesce(anonymous_id, '') then 1 else 0 end) as is_identified,
    count(*) as events,
    current_timestamp as transformed_at
from {{ ref('events') }}
{%- if is_incremental() %}
    where event_date in (select touched_days.event_date from touched_days)
{%- endif %}
group by event_date, person_id
