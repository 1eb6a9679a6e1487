{#
    Every exposure to an experiment, one row per (event, experiment):
    Segment's standard `Experiment Viewed` track call (experiment_id /
    experiment_name, variation_id / variation_name in properties) and each
    member of the events' experiments object (var('experiments_context_path'),
    experiment -> variant). Append-only: an event's exposures never change.
#}

{{ config(
    materialized='incremental',
    unique_key=['event_id', 'experiment_id'],
    incremental_strategy=trackway.incremental_strategy(),
    on_schema_change='fail',
) }}

with new_events as (

    select * from {{ ref('int_events_new') }}

),

viewed as (

    select
        event_id,
        anonymous_id,
        user_id,
        occurred_at,
        'experiment_viewed' as exposure_source,
        coalesce(
            {{ trackway.json_text('properties', ['experiment_id']) }},
            {{ trackway.json_text('properties', ['experiment_name']) }}
        ) as experiment_id,
        {{ trackway.json_text('properties', ['experiment_name']) }} as experiment_name,
        coalesce(
            {{ trackway.json_text('properties', ['variation_name']) }},
            {{ trackway.json_text('properties', ['variation_id']) }}
        ) as variant,
        {{ trackway.json_text('properties', ['variation_id']) }} as variation_id
    from new_events
    where event_type = 'track' and event_name = 'Experiment Viewed'

),

from_context as (

    select
        exposed.event_id,
        exposed.anonymous_id,
        exposed.user_id,
        exposed.occurred_at,
        'context' as exposure_source,
        experiment.key as experiment_id,
        experiment.key as experiment_name,
        {{ trackway.json_scalar_text('experiment.value') }} as variant,
        {{ trackway.json_scalar_text('experiment.value') }} as variation_id
    from new_events as exposed,
        {{ trackway.json_each('exposed.experiments') }} as experiment
    where exposed.experiments is not null and {{ trackway.json_is_object('exposed.experiments') }}

),

exposures as (

    select * from viewed
    union all
    select * from from_context

),

ranked as (

    -- One row per (event, experiment) even if the call names it twice.
    select
        *,
        row_number() over (partition by event_id, experiment_id order by exposure_source) as nth
    from exposures
    where experiment_id is not null

)

select
    event_id,
    anonymous_id,
    user_id,
    occurred_at,
    exposure_source,
    experiment_id,
    experiment_name,
    variant,
    variation_id
from ranked
where nth = 1
