{#
    analytics.experiment_results: one row per experiment and variant of
    analytics.experiment_assignments (people, stitched, by their first
    exposure). For the experiments declared in YAML (metrics.yaml beside the
    tracking plan, or var('metrics'): goal event, optional property filters,
    control variant and conversion window), the people who converted, the
    conversion rate with a 95% Wilson score interval, and the lift against
    the control variant with a pooled two-proportion z-test (two-sided).

    A conversion is a goal event by the person at or after their first
    exposure (and within conversion_window_hours of it, when declared); each
    person counts once. The control is the declared `control`, else the
    variant named 'control' (any case); without one, the lift columns are NULL.

    A table rebuilt each run: exposures are few (one row per person and
    experiment) and only the declared goal events since the experiment's first
    exposure are read from analytics.events; with no experiment declared no
    event is read.
#}

-- Always after it, whatever is declared (the ref below is inside a condition):
-- depends_on: {{ ref('events') }}

{%- set experiments = trackway.metric_definitions().experiments %}
{%- set z95 = 1.959963984540054 %}

{{ config(materialized='table') }}

with assignments as (

    select
        person_id,
        experiment_id,
        experiment_name,
        variant,
        first_exposed_at,
        exposures
    from {{ ref('experiment_assignments') }}

),

declared as (
    {%- if experiments %}
        {%- for experiment in experiments %}
            {%- set control = "null" if experiment.control is none else trackway.sql_string(experiment.control) %}
            {%- set window = experiment.conversion_window_hours or "null" %}

            select
                {{ trackway.sql_string(experiment.experiment_id) }} as experiment_id,
                {{ trackway.sql_string(experiment.goal.label) }} as goal_event,
                cast({{ control }} as {{ dbt.type_string() }}) as declared_control,
                cast({{ window }} as {{ dbt.type_int() }}) as conversion_window_hours
            {{- " union all" if not loop.last }}
        {%- endfor %}
    {%- else %}

        select
            cast(null as {{ dbt.type_string() }}) as experiment_id,
            cast(null as {{ dbt.type_string() }}) as goal_event,
            cast(null as {{ dbt.type_string() }}) as declared_control,
            cast(null as {{ dbt.type_int() }}) as conversion_window_hours
        from (select 1 as one) as nothing
        where 1 = 0
    {%- endif %}

),

conversions as (
    {%- if experiments %}
        {%- for experiment in experiments %}

            select
                assignments.experiment_id,
                assignments.person_id
            from assignments
            inner join {{ ref('events') }} as e
                on
                    assignments.person_id = e.person_id
                    and assignments.first_exposed_at <= e.occurred_at
                    {%- if experiment.conversion_window_hours %}
                        and assignments.first_exposed_at
                        + {{ trackway.interval_minutes(experiment.conversion_window_hours * 60) }} >= e.occurred_at
                    {%- endif %}
            where
                assignments.experiment_id = {{ trackway.sql_string(experiment.experiment_id) }}
                and {{ trackway.metric_event_matches(experiment.goal, 'e') }}
                and e.occurred_at >= (
                    select min(earliest.first_exposed_at) from assignments as earliest
                    where earliest.experiment_id = {{ trackway.sql_string(experiment.experiment_id) }}
                )
            group by assignments.experiment_id, assignments.person_id
            {{- " union all" if not loop.last }}
        {%- endfor %}
    {%- else %}

        -- No experiment declared (declared is empty): no conversion, and no event read.
        select
            experiment_id,
            goal_event as person_id
        from declared
    {%- endif %}

),

variants as (

    select
        assignments.experiment_id,
        max(assignments.experiment_name) as experiment_name,
        assignments.variant,
        count(*) as exposed_people,
        sum(assignments.exposures) as exposure_events,
        count(conversions.person_id) as converted_people,
        min(assignments.first_exposed_at) as first_exposed_at,
        max(assignments.first_exposed_at) as last_exposed_at
    from assignments
    left join conversions
        on
            assignments.experiment_id = conversions.experiment_id
            and assignments.person_id = conversions.person_id
    group by assignments.experiment_id, assignments.variant

),

named_controls as (

    select
        experiment_id,
        min(variant) as variant
    from variants
    where lower(variant) = 'control'
    group by experiment_id

),

controls as (

    select
        experiment_ids.experiment_id,
        coalesce(declared.declared_control, named_controls.variant) as control_variant
    from (select distinct experiment_id from assignments) as experiment_ids
    left join declared on experiment_ids.experiment_id = declared.experiment_id
    left join named_controls on experiment_ids.experiment_id = named_controls.experiment_id

),

compared as (

    select
        variants.experiment_id,
        variants.experiment_name,
        variants.variant,
        controls.control_variant,
        coalesce(variants.variant = controls.control_variant, false) as is_control,
        declared.goal_event,
        declared.conversion_window_hours,
        variants.exposed_people,
        variants.exposure_events,
        case when declared.goal_event is not null then variants.converted_people end as converted_people,
        variants.first_exposed_at,
        variants.last_exposed_at,
        cast(variants.exposed_people as {{ trackway.type_double() }}) as n,
        case
            when declared.goal_event is not null
                then {{ trackway.safe_ratio('variants.converted_people', 'variants.exposed_people') }}
        end as p,
        cast(control.exposed_people as {{ trackway.type_double() }}) as n_control,
        case
            when declared.goal_event is not null
                then {{ trackway.safe_ratio('control.converted_people', 'control.exposed_people') }}
        end as p_control,
        case
            when declared.goal_event is not null
                then {{ trackway.safe_ratio(
                    'variants.converted_people + control.converted_people',
                    'variants.exposed_people + control.exposed_people'
                ) }}
        end as p_pooled
    from variants
    left join declared on variants.experiment_id = declared.experiment_id
    left join controls on variants.experiment_id = controls.experiment_id
    left join variants as control
        on
            controls.experiment_id = control.experiment_id
            and controls.control_variant = control.variant

),

tested as (

    select
        *,
        case
            when not is_control
                then (p - p_control) / nullif(sqrt(p_pooled * (1 - p_pooled) * (1 / n + 1 / n_control)), 0)
        end as z_score,
        sqrt(p * (1 - p) / n + p_control * (1 - p_control) / n_control) as se_difference,
        1 + {{ z95 }} * {{ z95 }} / n as wilson_denominator
    from compared

)

select
    experiment_id,
    experiment_name,
    variant,
    is_control,
    control_variant,
    goal_event,
    conversion_window_hours,
    exposed_people,
    exposure_events,
    converted_people,
    p as conversion_rate,
    (p + {{ z95 }} * {{ z95 }} / (2 * n) - {{ z95 }} * sqrt(p * (1 - p) / n + {{ z95 }} * {{ z95 }} / (4 * n * n)))
    / wilson_denominator as conversion_rate_ci_low,
    (p + {{ z95 }} * {{ z95 }} / (2 * n) + {{ z95 }} * sqrt(p * (1 - p) / n + {{ z95 }} * {{ z95 }} / (4 * n * n)))
    / wilson_denominator as conversion_rate_ci_high,
    p_control as control_conversion_rate,
    case when not is_control then p - p_control end as absolute_lift,
    case when not is_control then p - p_control - {{ z95 }} * se_difference end as absolute_lift_ci_low,
    case when not is_control then p - p_control + {{ z95 }} * se_difference end as absolute_lift_ci_high,
    case when not is_control then (p - p_control) / nullif(p_control, 0) end as relative_lift,
    z_score,
    2 * ({{ trackway.normal_upper_tail('abs(z_score)') }}) as p_value,
    2 * ({{ trackway.normal_upper_tail('abs(z_score)') }}) < 0.05 as is_significant,
    first_exposed_at,
    last_exposed_at,
    current_timestamp as transformed_at
from tested
