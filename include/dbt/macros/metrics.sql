{#
    Funnels and experiment goals for the product-metric marts (models/marts/metrics/).

    They are declared in YAML: `metrics.yaml` beside the tracking plan (trackway.transform.metrics
    checks its events against the plan and hands it to dbt as TRACKWAY_DBT_METRICS), or
    var('metrics') directly (`dbt build --vars '{metrics: {funnels: [...]}}'`). Either way
    metric_definitions() checks the shape when dbt parses the project, so a bad declaration
    stops `trackway transform compile` (and any dbt command) with every problem listed,
    before a model runs. docs/models.md#declaring-funnels-and-experiment-goals has the format.
#}

{#- Longest conversion window: every incremental run of analytics.funnels recomputes that far back. -#}
{% macro max_conversion_window_hours() -%}{{ return(2160) }}{%- endmacro %}


{% macro metric_definitions() -%}
    {%- set problems = [] -%}
    {%- set raw = var('metrics', none) -%}
    {%- set where = namespace(source="var('metrics')") -%}
    {%- if raw is string -%}
        {%- if raw | trim == '' -%}
            {%- set raw = {} -%}
        {%- else -%}
            {%- set parsed = fromjson(raw) -%}
            {%- if parsed is none -%}
                {{ trackway._metrics_error(where.source, ["is not a JSON or YAML mapping: " ~ raw[:200]]) }}
            {%- endif -%}
            {%- set raw = parsed -%}
        {%- endif -%}
    {%- endif -%}
    {%- if raw is none -%}{%- set raw = {} -%}{%- endif -%}
    {%- if raw is not mapping -%}
        {{ trackway._metrics_error(where.source, ["must be a mapping with 'funnels' and/or 'experiments', got " ~ trackway._shown(raw)]) }}
    {%- endif -%}
    {%- if raw.get('source') is string -%}{%- set where.source = raw['source'] -%}{%- endif -%}
    {%- for key in raw -%}
        {%- if key not in ('funnels', 'experiments', 'source') -%}
            {%- do problems.append("unknown key '" ~ key ~ "' (expected funnels, experiments)") -%}
        {%- endif -%}
    {%- endfor -%}

    {%- set funnels = [] -%}
    {%- set names = [] -%}
    {%- for funnel in trackway._metrics_list(raw.get('funnels'), 'funnels', problems) -%}
        {%- set at = "funnels[" ~ loop.index0 ~ "]" -%}
        {%- if funnel is not mapping -%}
            {%- do problems.append(at ~ ": must be a mapping (name, steps, conversion_window_hours), got " ~ trackway._shown(funnel)) -%}
        {%- else -%}
            {%- set name = funnel.get('name') -%}
            {%- if name is not string or not modules.re.match('^[a-z][a-z0-9_]{0,62}$', name) -%}
                {%- do problems.append(at ~ ": name must be lower_snake_case (a-z, 0-9, _; at most 63 characters), got " ~ trackway._shown(name)) -%}
            {%- elif name in names -%}
                {%- do problems.append(at ~ ": the name '" ~ name ~ "' is already used by another funnel") -%}
            {%- else -%}
                {%- set at = at ~ " '" ~ name ~ "'" -%}
            {%- endif -%}
            {%- do names.append(name) -%}
            {%- for key in funnel -%}
                {%- if key not in ('name', 'description', 'steps', 'conversion_window_hours') -%}
                    {%- do problems.append(at ~ ": unknown key '" ~ key ~ "' (expected name, description, steps, conversion_window_hours)") -%}
                {%- endif -%}
            {%- endfor -%}
            {%- set window = trackway._metrics_window(funnel.get('conversion_window_hours'), at, problems, required=true) -%}
            {%- set steps = [] -%}
            {%- set raw_steps = funnel.get('steps') -%}
            {%- if raw_steps is string or raw_steps is mapping or raw_steps is not iterable or raw_steps | length < 2 -%}
                {%- do problems.append(at ~ ": steps must be a list of at least two steps (events in order), got " ~ trackway._shown(raw_steps)) -%}
            {%- else -%}
                {%- for step in raw_steps -%}
                    {%- do steps.append(trackway._metrics_event(step, at ~ " steps[" ~ loop.index0 ~ "]", problems, ('event', 'properties', 'label'))) -%}
                {%- endfor -%}
            {%- endif -%}
            {%- set definition = {'name': name, 'steps': steps, 'conversion_window_hours': window} -%}
            {%- do funnels.append({
                'name': name,
                'description': funnel.get('description') or '',
                'steps': steps,
                'conversion_window_hours': window,
                'window_days': ((window or 0) / 24) | round(0, 'ceil') | int,
                'definition_hash': local_md5(tojson(definition, sort_keys=true)),
            }) -%}
        {%- endif -%}
    {%- endfor -%}

    {%- set experiments = [] -%}
    {%- set ids = [] -%}
    {%- for experiment in trackway._metrics_list(raw.get('experiments'), 'experiments', problems) -%}
        {%- set at = "experiments[" ~ loop.index0 ~ "]" -%}
        {%- if experiment is not mapping -%}
            {%- do problems.append(at ~ ": must be a mapping (experiment_id, goal), got " ~ trackway._shown(experiment)) -%}
        {%- else -%}
            {%- set experiment_id = experiment.get('experiment_id') -%}
            {%- if experiment_id is not string or experiment_id | trim == '' -%}
                {%- do problems.append(at ~ ": experiment_id must be the experiment's id as in analytics.experiment_assignments, got " ~ trackway._shown(experiment_id)) -%}
            {%- elif experiment_id in ids -%}
                {%- do problems.append(at ~ ": experiment '" ~ experiment_id ~ "' is declared twice") -%}
            {%- else -%}
                {%- set at = at ~ " '" ~ experiment_id ~ "'" -%}
            {%- endif -%}
            {%- do ids.append(experiment_id) -%}
            {%- for key in experiment -%}
                {%- if key not in ('experiment_id', 'goal', 'control', 'conversion_window_hours', 'description') -%}
                    {%- do problems.append(at ~ ": unknown key '" ~ key ~ "' (expected experiment_id, goal, control, conversion_window_hours, description)") -%}
                {%- endif -%}
            {%- endfor -%}
            {%- set control = experiment.get('control') -%}
            {%- if control is not none and (control is not string or control | trim == '') -%}
                {%- do problems.append(at ~ ": control must be the name of a variant, got " ~ trackway._shown(control)) -%}
            {%- endif -%}
            {%- if experiment.get('goal') is none -%}
                {%- do problems.append(at ~ ": goal is required: the event (and optional properties) that counts as a conversion") -%}
            {%- endif -%}
            {%- do experiments.append({
                'experiment_id': experiment_id,
                'goal': trackway._metrics_event(experiment.get('goal') or {'event': 'none'}, at ~ " goal", problems, ('event', 'properties')),
                'control': control,
                'conversion_window_hours': trackway._metrics_window(experiment.get('conversion_window_hours'), at, problems, required=false),
            }) -%}
        {%- endif -%}
    {%- endfor -%}

    {%- if problems -%}{{ trackway._metrics_error(where.source, problems) }}{%- endif -%}
    {{ return({'funnels': funnels, 'experiments': experiments}) }}
{%- endmacro %}


{#- A declared value as JSON, for messages (a blank string shows as ""). -#}
{% macro _shown(value) -%}
    {%- if value is none or value is string or value is number -%}
        {{ return(tojson(value)) }}
    {%- endif -%}
    {{ return(value | string) }}
{%- endmacro %}


{% macro _metrics_error(source, problems) -%}
    {{ exceptions.raise_compiler_error(
        "Trackway metrics declared in " ~ source ~ " are invalid (docs/models.md#declaring-funnels-and-experiment-goals):\n  - "
        ~ problems | join("\n  - ")
    ) }}
{%- endmacro %}


{% macro _metrics_list(value, what, problems) -%}
    {%- if value is none -%}
        {{ return([]) }}
    {%- elif value is string or value is mapping or value is not iterable -%}
        {%- do problems.append(what ~ ": must be a list, got " ~ trackway._shown(value)) -%}
        {{ return([]) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}


{% macro _metrics_window(value, at, problems, required) -%}
    {%- if value is none and not required -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if value is sameas true or value is sameas false or value is not integer
        or value < 1 or value > trackway.max_conversion_window_hours() -%}
        {%- do problems.append(
            at ~ ": conversion_window_hours must be a whole number of hours from 1 to "
            ~ trackway.max_conversion_window_hours() ~ " (90 days), got " ~ trackway._shown(value)
        ) -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}


{#
    One event to match: a name, or {event, properties: {key: value or [values]}}. Returns
    {'event', 'label', 'filters': [(path, [text, ...]), ...]}; property values compare as the
    JSON text json_text() gives (strings as they are, numbers and booleans as JSON).
#}
{% macro _metrics_event(step, at, problems, keys) -%}
    {%- if step is string -%}
        {%- set step = {'event': step} -%}
    {%- endif -%}
    {%- if step is not mapping -%}
        {%- do problems.append(at ~ ": must be an event name or a mapping with 'event', got " ~ trackway._shown(step)) -%}
        {{ return({'event': none, 'label': none, 'filters': []}) }}
    {%- endif -%}
    {%- for key in step -%}
        {%- if key not in keys -%}
            {%- do problems.append(at ~ ": unknown key '" ~ key ~ "' (expected " ~ keys | join(", ") ~ ")") -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set event = step.get('event') -%}
    {%- if event is not string or event | trim == '' or event | length > 200 -%}
        {%- do problems.append(at ~ ": event must be an event name (as in analytics.events.event_name), got " ~ trackway._shown(event)) -%}
    {%- endif -%}
    {%- set filters = [] -%}
    {%- set properties = step.get('properties') -%}
    {%- if properties is not none and properties is not mapping -%}
        {%- do problems.append(at ~ ": properties must be a mapping of property -> value (or list of values), got " ~ trackway._shown(properties)) -%}
    {%- elif properties is not none -%}
        {%- for key, value in properties | dictsort -%}
            {%- if key is not string or not modules.re.match('^[A-Za-z_][A-Za-z0-9_]*([.][A-Za-z_][A-Za-z0-9_]*)*$', key) -%}
                {%- do problems.append(at ~ ": property '" ~ key ~ "' must be a name of letters, digits and _ (a.b for a nested key)") -%}
            {%- else -%}
                {%- set values = value if (value is iterable and value is not string and value is not mapping) else [value] -%}
                {%- set texts = [] -%}
                {%- for v in values -%}
                    {%- if v is sameas true or v is sameas false -%}
                        {%- do texts.append('true' if v else 'false') -%}
                    {%- elif v is string or v is number -%}
                        {%- do texts.append(v | string) -%}
                    {%- else -%}
                        {%- do problems.append(at ~ ": property '" ~ key ~ "' must be a string, number or boolean (or a list of them), got " ~ trackway._shown(v)) -%}
                    {%- endif -%}
                {%- endfor -%}
                {%- if not values -%}
                    {%- do problems.append(at ~ ": property '" ~ key ~ "' has an empty list of values") -%}
                {%- endif -%}
                {%- do filters.append([key.split('.'), texts]) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- set label = step.get('label') -%}
    {%- if label is not none and (label is not string or label | trim == '') -%}
        {%- do problems.append(at ~ ": label must be text, got " ~ trackway._shown(label)) -%}
    {%- endif -%}
    {{ return({'event': event, 'label': label or event, 'filters': filters}) }}
{%- endmacro %}


{# SQL: does the event row (`alias`, or the only table) match the declared event (name and property filters)? #}
{% macro metric_event_matches(spec, alias=none) -%}
    {%- set prefix = alias ~ '.' if alias else '' -%}
    {{ prefix }}event_name = {{ trackway.sql_string(spec.event) }}
    {%- for path, texts in spec.filters %}
        and {{ trackway.json_text(prefix ~ 'properties', path) }} in (
            {%- for text in texts %}{{ trackway.sql_string(text) }}{{ ", " if not loop.last }}{% endfor -%}
        )
    {%- endfor %}
{%- endmacro %}


{# SQL: the event names of a list of declared events, as a list for `in (...)`. #}
{% macro metric_event_names(specs) -%}
    {%- set seen = [] -%}
    {%- for spec in specs if spec.event not in seen -%}{%- do seen.append(spec.event) -%}{%- endfor -%}
    {%- for name in seen | sort %}{{ trackway.sql_string(name) }}{{ ", " if not loop.last }}{% endfor -%}
{%- endmacro %}


{#
    Standard normal upper tail Q(x) = 1 - Phi(x) for x >= 0 (Abramowitz and Stegun 26.2.17,
    absolute error below 7.5e-8): no warehouse has the normal CDF built in (PostgreSQL has
    erf only from 16). Past x = 30 the tail is below 1e-190 and taken as 0 (PostgreSQL's
    exp() raises on underflow).
#}
{% macro normal_upper_tail(x) -%}
    case
        when {{ x }} >= 30 then 0.0
        else
            exp(-0.5 * {{ x }} * {{ x }}) / 2.5066282746310002
            * (1.0 / (1.0 + 0.2316419 * {{ x }}))
            * (0.319381530 + (1.0 / (1.0 + 0.2316419 * {{ x }}))
                * (-0.356563782 + (1.0 / (1.0 + 0.2316419 * {{ x }}))
                    * (1.781477937 + (1.0 / (1.0 + 0.2316419 * {{ x }}))
                        * (-1.821255978 + (1.0 / (1.0 + 0.2316419 * {{ x }})) * 1.330274429))))
    end
{%- endmacro %}


{#
    BigQuery merge needs a key unique per row; the run then deletes the rows of each
    (group) it rewrote that it did not write again. delete_superseded_rows (macros/incremental.sql)
    with a group of several columns (analytics.funnels: funnel and entry day).
#}
{% macro delete_superseded_groups(group_columns) -%}
    {%- if target.type == 'bigquery' and is_incremental() -%}
        delete from {{ this }} as old
        where
            old.transformed_at < (select max(s.transformed_at) from {{ this }} as s)
            and exists (
                select 1 from {{ this }} as rewritten
                where
                    rewritten.transformed_at = (select max(s.transformed_at) from {{ this }} as s)
                    {%- for column in group_columns %}
                    and rewritten.{{ column }} = old.{{ column }}
                    {%- endfor %}
            )
    {%- else -%}
        select 1 as nothing_to_delete
    {%- endif -%}
{%- endmacro %}


{#
    analytics.funnels post-hook: rows of a funnel no longer declared, or of an earlier
    definition of it (whose days the run recomputed under the new one), go.
#}
{% macro delete_undeclared_funnels() -%}
    {%- if is_incremental() -%}
        {%- set funnels = trackway.metric_definitions().funnels -%}
        delete from {{ this }}
        where
            {%- if funnels %}
                funnel_definition not in (
                    {%- for funnel in funnels %}{{ trackway.sql_string(funnel.definition_hash) }}{{ ", " if not loop.last }}{% endfor -%}
                )
            {%- else %}
                true
            {%- endif %}
    {%- else -%}
        select 1 as nothing_to_delete
    {%- endif -%}
{%- endmacro %}
