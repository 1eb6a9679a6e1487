{#
    analytics.experiment_assignments: one row per (person, experiment): the
    variant of the person's first exposure and when it was. A view over the
    exposures (int_experiment_exposures, one row per exposure, far fewer
    than events) stitched through analytics.identity_map, so a person who
    identifies later sees their anonymous exposures at once.
#}

{{ config(materialized='view') }}

with exposures as (

    select * from {{ ref('int_experiment_exposures') }}

),

identity_map as (

    select
        anonymous_id,
        person_id
    from {{ ref('identity_map') }}

),

stitched as (

    select
        exposures.*,
        coalesce(by_user.person_id, exposures.user_id, by_device.person_id, exposures.anonymous_id) as person_id,
        row_number() over (
            partition by
                coalesce(by_user.person_id, exposures.user_id, by_device.person_id, exposures.anonymous_id),
                exposures.experiment_id
            order by exposures.occurred_at, exposures.event_id
        ) as nth_exposure,
        count(*) over (
            partition by
                coalesce(by_user.person_id, exposures.user_id, by_device.person_id, exposures.anonymous_id),
                exposures.experiment_id
        ) as exposures
    from exposures
    left join identity_map as by_user on exposures.user_id = by_user.anonymous_id
    left join identity_map as by_device on exposures.anonymous_id = by_device.anonymous_id

)

select
    person_id,
    experiment_id,
    experiment_name,
    variant,
    variation_id,
    occurred_at as first_exposed_at,
    event_id as first_exposure_event_id,
    exposure_source,
    exposures
from stitched
where nth_exposure = 1
