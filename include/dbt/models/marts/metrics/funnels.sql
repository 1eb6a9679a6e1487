{#
    analytics.funnels: the funnels declared in YAML (metrics.yaml beside the
    tracking plan, or var('metrics'); macros/metrics.sql), per funnel, UTC day
    of entering step 1 and the person's first-touch utm_source: how many
    people reached each step, and the conversion.

    A person (stitched) enters a funnel once per day, at their first step-1
    event of that day. Step k counts when the person has a step-k event after
    the event that counted for step k - 1 (by occurred_at, then event_id; the
    same event never counts twice) and no later than the conversion window
    after the entry. Each step takes its earliest such event, which is what
    lets the most people through.

    Incremental by (funnel, entry day): a run recomputes the entry days that
    new or rewritten funnel events can change, i.e. their days and the
    conversion window before them. A funnel that is new or whose definition
    changed is recomputed over all history, and the rows of removed or
    changed definitions are deleted (post-hook), so editing the YAML needs
    no --full-refresh.
#}

-- Always after these, whatever is declared (the refs below are inside conditions):
-- depends_on: {{ ref('events') }}, {{ ref('sessions') }}

{%- set funnels = trackway.metric_definitions().funnels %}
{%- set all_steps = [] %}
{%- set windows = [0] %}
{%- for funnel in funnels %}
    {%- do all_steps.extend(funnel.steps) %}
    {%- do windows.append(funnel.window_days) %}
{%- endfor %}

{{ config(
    materialized='incremental',
    unique_key=trackway.group_unique_key(
        ['funnel_name', 'entry_date'], ['funnel_name', 'entry_date', 'first_touch_utm_source', 'step_number']
    ),
    incremental_strategy=trackway.incremental_strategy(),
    on_schema_change='fail',
    post_hook=[
        "{{ trackway.delete_superseded_groups(['funnel_name', 'entry_date']) }}",
        "{{ trackway.delete_undeclared_funnels() }}",
    ],
) }}

with
{%- if not funnels %}

    -- No funnel declared: an empty table with the columns below.
    final as (

        -- Typed NULLs: BigQuery refuses a cast of an untyped NULL (INT64) to DATE.
        select
            cast(null as {{ dbt.type_string() }}) as funnel_name,
            cast(null as {{ dbt.type_string() }}) as funnel_definition,
            cast(null as date) as entry_date,
            cast(null as {{ dbt.type_string() }}) as first_touch_utm_source,
            cast(null as {{ dbt.type_int() }}) as step_number,
            cast(null as {{ dbt.type_string() }}) as step_name,
            cast(null as {{ dbt.type_string() }}) as step_event,
            cast(null as {{ dbt.type_bigint() }}) as entered_people,
            cast(null as {{ dbt.type_bigint() }}) as reached_people,
            cast(null as {{ dbt.type_bigint() }}) as previous_step_people,
            cast(null as {{ dbt.type_int() }}) as conversion_window_hours
        from (select 1 as one) as nothing
        where 1 = 0

    )
{%- else %}
    {%- if is_incremental() %}

        stored_funnels as (

            select distinct
                funnel_name,
                funnel_definition
            from {{ this }}

        ),

        -- Declared funnels with no rows of their current definition: recomputed over all history.
        rebuilt_funnels as (
            {%- for funnel in funnels %}

                select {{ trackway.sql_string(funnel.name) }} as funnel_name
                from (select 1 as one) as declared
                where not exists (
                    select 1 from stored_funnels
                    where
                        stored_funnels.funnel_name = {{ trackway.sql_string(funnel.name) }}
                        and stored_funnels.funnel_definition = {{ trackway.sql_string(funnel.definition_hash) }}
                )
                {{- " union all" if not loop.last }}
            {%- endfor %}

        ),

        touched_days as (

            select distinct event_date as touched_date
            from {{ ref('events') }}
            where
                transformed_at > (select max(f.transformed_at) from {{ this }} as f)
                and event_name in ({{ trackway.metric_event_names(all_steps) }})

        ),
        {%- for days in windows | unique | sort %}

            -- Entry days a funnel with a window of {{ days }} day(s) recomputes: each touched day and those before it.
            entry_days_{{ days }} as (

                select distinct {{ trackway.add_days('touched_days.touched_date', '-day_offsets.day_offset') }} as entry_date
                from touched_days
                cross join (
                    {%- for offset in range(days + 1) %}
                        select {{ offset }} as day_offset{{ " union all" if not loop.last }}
                    {%- endfor %}
                ) as day_offsets

            ),
        {%- endfor %}
    {%- endif %}

    funnel_events as (

        {%- set property_filters = all_steps | selectattr('filters') | list %}
        select
            event_id,
            {{ "properties," if property_filters }}
            person_id,
            event_name,
            occurred_at,
            event_date
        from {{ ref('events') }}
        {%- if is_incremental() %}
            where
                event_name in ({{ trackway.metric_event_names(all_steps) }})
                and (
                    event_date >= (
                        select {{ trackway.add_days('min(t.touched_date)', -(windows | max)) }}
                        from touched_days as t
                    )
                    or exists (select 1 from rebuilt_funnels)
                )
        {%- else %}
            where event_name in ({{ trackway.metric_event_names(all_steps) }})
        {%- endif %}

    ),
    {%- for funnel in funnels %}
        {%- set f = "funnel_" ~ loop.index %}

        -- {{ funnel.name }}: entries (each person's first step-1 event of a day), then each step in turn.
        {{ f }}_entries as (

            select
                person_id,
                event_date as entry_date,
                occurred_at,
                event_id,
                row_number() over (partition by person_id, event_date order by occurred_at, event_id) as nth
            from funnel_events
            {%- if is_incremental() %}
                where
                    {{ trackway.metric_event_matches(funnel.steps[0]) }}
                    and (
                        {{ trackway.sql_string(funnel.name) }} in (select r.funnel_name from rebuilt_funnels as r)
                        or event_date in (select d.entry_date from entry_days_{{ funnel.window_days }} as d)
                    )
            {%- else %}
                where {{ trackway.metric_event_matches(funnel.steps[0]) }}
            {%- endif %}

        ),

        {{ f }}_step_1 as (

            select
                person_id,
                entry_date,
                occurred_at as entered_at,
                occurred_at as reached_at,
                event_id as reached_event_id
            from {{ f }}_entries
            where nth = 1

        ),
        {%- for step in funnel.steps[1:] %}
            {%- set k = loop.index + 1 %}

            {{ f }}_step_{{ k }} as (

                select
                    person_id,
                    entry_date,
                    entered_at,
                    reached_at,
                    reached_event_id
                from (
                    select
                        previous.person_id,
                        previous.entry_date,
                        previous.entered_at,
                        e.occurred_at as reached_at,
                        e.event_id as reached_event_id,
                        row_number() over (
                            partition by previous.person_id, previous.entry_date order by e.occurred_at, e.event_id
                        ) as nth
                    from {{ f }}_step_{{ k - 1 }} as previous
                    inner join funnel_events as e
                        on
                            previous.person_id = e.person_id
                            and (
                                previous.reached_at < e.occurred_at
                                or (previous.reached_at = e.occurred_at and previous.reached_event_id < e.event_id)
                            )
                            and previous.entered_at
                            + {{ trackway.interval_minutes(funnel.conversion_window_hours * 60) }} >= e.occurred_at
                    where {{ trackway.metric_event_matches(step, 'e') }}
                ) as candidates
                where nth = 1

            ),
        {%- endfor %}
    {%- endfor %}

    reached as (
        {%- for funnel in funnels %}
            {%- set f = "funnel_" ~ loop.index %}
            {%- set outer = loop %}
            {%- for step in funnel.steps %}

                select
                    {{ trackway.sql_string(funnel.name) }} as funnel_name,
                    {{ loop.index }} as step_number,
                    person_id,
                    entry_date
                from {{ f }}_step_{{ loop.index }}
                {{- " union all" if not (loop.last and outer.last) }}
            {%- endfor %}
        {%- endfor %}

    ),

    steps as (
        {%- for funnel in funnels %}
            {%- set outer = loop %}
            {%- for step in funnel.steps %}

                select
                    {{ trackway.sql_string(funnel.name) }} as funnel_name,
                    {{ trackway.sql_string(funnel.definition_hash) }} as funnel_definition,
                    {{ funnel.conversion_window_hours }} as conversion_window_hours,
                    {{ loop.index }} as step_number,
                    {{ trackway.sql_string(step.label) }} as step_name,
                    {{ trackway.sql_string(step.event) }} as step_event
                {{- " union all" if not (loop.last and outer.last) }}
            {%- endfor %}
        {%- endfor %}

    ),

    -- First touch: the utm_source of the person's first session (its first event), as analytics.users.
    first_touch as (

        select
            person_id,
            utm_source
        from (
            select
                person_id,
                utm_source,
                row_number() over (partition by person_id order by started_at, session_id) as nth
            from {{ ref('sessions') }}
            where
                person_id in (
                    select r.person_id from reached as r
                    where r.step_number = 1
                )
        ) as ranked
        where nth = 1

    ),

    counts as (

        select
            reached.funnel_name,
            reached.entry_date,
            coalesce(first_touch.utm_source, '(none)') as first_touch_utm_source,
            reached.step_number,
            count(*) as reached_people
        from reached
        left join first_touch on reached.person_id = first_touch.person_id
        group by
            reached.funnel_name, reached.entry_date, coalesce(first_touch.utm_source, '(none)'), reached.step_number

    ),

    final as (

        select
            steps.funnel_name,
            steps.funnel_definition,
            entered.entry_date,
            entered.first_touch_utm_source,
            steps.step_number,
            steps.step_name,
            steps.step_event,
            entered.reached_people as entered_people,
            coalesce(counts.reached_people, 0) as reached_people,
            case
                when steps.step_number > 1
                    then coalesce(lag(counts.reached_people) over (
                        partition by steps.funnel_name, entered.entry_date, entered.first_touch_utm_source
                        order by steps.step_number
                    ), 0)
            end as previous_step_people,
            steps.conversion_window_hours
        from counts as entered
        inner join steps on entered.funnel_name = steps.funnel_name
        left join counts
            on
                entered.funnel_name = counts.funnel_name
                and entered.entry_date = counts.entry_date
                and entered.first_touch_utm_source = counts.first_touch_utm_source
                and steps.step_number = counts.step_number
        where entered.step_number = 1

    )
{%- endif %}

select
    cast(funnel_name as {{ dbt.type_string() }}) as funnel_name,
    cast(entry_date as date) as entry_date,
    cast(first_touch_utm_source as {{ dbt.type_string() }}) as first_touch_utm_source,
    cast(step_number as {{ dbt.type_int() }}) as step_number,
    cast(step_name as {{ dbt.type_string() }}) as step_name,
    cast(step_event as {{ dbt.type_string() }}) as step_event,
    cast(entered_people as {{ dbt.type_bigint() }}) as entered_people,
    cast(reached_people as {{ dbt.type_bigint() }}) as reached_people,
    cast(previous_step_people as {{ dbt.type_bigint() }}) as previous_step_people,
    {{ trackway.safe_ratio('reached_people', 'entered_people') }} as conversion_rate,
    {{ trackway.safe_ratio('reached_people', 'previous_step_people') }} as step_conversion_rate,
    cast(conversion_window_hours as {{ dbt.type_int() }}) as conversion_window_hours,
    cast(funnel_definition as {{ dbt.type_string() }}) as funnel_definition,
    current_timestamp as transformed_at
from final
