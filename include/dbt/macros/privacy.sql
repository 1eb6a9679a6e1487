{#
    The sampling rate the collector recorded on a kept event (context.trackway.sample_rate,
    see docs/privacy.md), as a number in (0, 1]; 1 when absent, unreadable or out of range,
    so an unsampled event, or one from a source the collector never saw, weighs 1.
    Weight a count by 1 / sample_rate to estimate the unsampled total.
#}
{% macro sample_rate(context_expr) -%}
    {%- set rate = trackway.try_double(trackway.json_text(context_expr, ['trackway', 'sample_rate'])) -%}
    coalesce(case when {{ rate }} > 0 and {{ rate }} <= 1 then {{ rate }} end, 1.0)
{%- endmacro %}


{# Text -> double, NULL when it is not a plain number (never a failed build). #}
{% macro try_double(text_expr) -%}
    {{ return(adapter.dispatch('try_double', 'trackway')(text_expr)) }}
{%- endmacro %}

{% macro default__try_double(text_expr) -%}{{ trackway._unsupported_adapter('try_double') }}{%- endmacro %}

{% macro duckdb__try_double(text_expr) -%}try_cast({{ text_expr }} as double){%- endmacro %}

{% macro postgres__try_double(text_expr) -%}
    case
        when {{ text_expr }} ~ '^[0-9]{0,20}[.]?[0-9]{1,20}([eE][-+]?[0-9]{1,2})?$'
            then cast({{ text_expr }} as double precision)
    end
{%- endmacro %}

{% macro bigquery__try_double(text_expr) -%}safe_cast({{ text_expr }} as float64){%- endmacro %}


{#
    Upgrade step for a column added to an incremental model: an existing table
    gets the column, with `fill` in every existing row, before the run, so
    on_schema_change='fail' keeps catching unplanned drift and no --full-refresh
    is needed. Every existing analytics.events row predates sampling: weight 1.
    A no-op (one metadata read) once the column exists.
#}
{% macro add_missing_column(name, data_type, fill) -%}
    {%- if execute and is_incremental() -%}
        {%- set present = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
        {%- if name | lower not in present -%}
            {{ log('Adding ' ~ name ~ ' to ' ~ this ~ ' (existing rows: ' ~ fill ~ ')', info=true) }}
            {{ return(adapter.dispatch('add_missing_column', 'trackway')(this, name, data_type, fill)) }}
        {%- endif -%}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{% macro default__add_missing_column(relation, name, data_type, fill) -%}
    alter table {{ relation }} add column {{ adapter.quote(name) }} {{ data_type }} default {{ fill }}
{%- endmacro %}

{# BigQuery leaves existing rows NULL on ADD COLUMN ... DEFAULT: fill them once. #}
{% macro bigquery__add_missing_column(relation, name, data_type, fill) -%}
    alter table {{ relation }} add column {{ adapter.quote(name) }} {{ data_type }};
    update {{ relation }} set {{ adapter.quote(name) }} = {{ fill }} where true
{%- endmacro %}


{# The warehouse's name for a double-precision column (what the sample_rate expression yields). #}
{% macro double_type() -%}
    {{ return({'bigquery': 'float64', 'postgres': 'double precision'}.get(target.type, 'double')) }}
{%- endmacro %}


{#
    Rows of the marts that name an erased subject (docs/privacy.md). The warehouse never
    hashes: privacy.id_hashes maps each id to its keyed hash, computed in Python at load,
    and privacy.erased_subjects names the hashes and their drop intervals. analytics.events
    is checked against every interval by received_at; the other marts (no arrival time)
    against the subjects none of whose events may exist: a deletion pending, or done and
    suppressed since (suppress_with_delete). A delete_only's later events are new data, and
    a suppress_only keeps what came before. Selects nothing where no erasure request was
    ever made (no privacy tables).
#}
{% macro erased_subject_rows() %}
    {%- set marts = [
        ('events', ['user_id', 'anonymous_id', 'previous_id', 'person_id'], 'received_at'),
        ('events_rejected', ['user_id', 'anonymous_id'], none),
        ('sessions', ['anonymous_id', 'user_id', 'person_id'], none),
        ('users', ['user_id', 'person_id'], none),
        ('identity_map', ['anonymous_id', 'user_id', 'person_id'], none),
        ('experiment_assignments', ['person_id'], none),
    ] -%}
    {%- set erased = source('privacy', 'erased_subjects') -%}
    {%- set hashes = source('privacy', 'id_hashes') -%}
    {%- set ready = execute and load_relation(erased) is not none and load_relation(hashes) is not none -%}
    {%- set selects = [] -%}
    {%- for model, columns, arrived in marts -%}
        {%- for column in columns -%}
            {%- set when -%}
                {%- if arrived -%}
                    (e.drop_from is null or m.{{ arrived }} >= e.drop_from)
                    and (e.drop_until is null or m.{{ arrived }} < e.drop_until)
                {%- else -%}
                    e.drop_from is null and (e.drop_until is null or e.suppressed)
                {%- endif -%}
            {%- endset -%}
            {%- do selects.append(
                "select '" ~ model ~ "' as mart, '" ~ column ~ "' as id_column, e.subject_hash as subject_hash"
                ~ " from " ~ ref(model) ~ " as m"
                ~ " inner join " ~ hashes ~ " as h on m." ~ column ~ " = h.id"
                ~ " inner join " ~ erased ~ " as e on h.id_hash = e.subject_hash"
                ~ " where " ~ when
            ) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if ready %}
        {{ selects | join('\nunion all\n') }}
    {%- else %}
        select
            cast(null as {{ dbt.type_string() }}) as mart,
            cast(null as {{ dbt.type_string() }}) as id_column,
            cast(null as {{ dbt.type_string() }}) as subject_hash
        from {{ ref('events') }}
        where 1 = 0
    {%- endif %}
{% endmacro %}
