{#
    The few places where DuckDB, PostgreSQL and BigQuery (macros/bigquery.sql) differ, behind
    adapter.dispatch so models stay one file for both warehouses.
    Everything else in the models is SQL both understand.
#}

{% macro _unsupported_adapter(what) -%}
    {{ exceptions.raise_compiler_error(
        "trackway." ~ what ~ ": Trackway supports the duckdb, postgres and bigquery adapters, not " ~ adapter.type()
    ) }}
{%- endmacro %}


{# Parse a text column into the warehouse's JSON type; NULL unless it is a JSON object the warehouse accepts. #}
{% macro try_json_object(text_expr) -%}
    {{ return(adapter.dispatch('try_json_object', 'trackway')(text_expr)) }}
{%- endmacro %}

{% macro default__try_json_object(text_expr) -%}{{ trackway._unsupported_adapter('try_json_object') }}{%- endmacro %}

{% macro duckdb__try_json_object(text_expr) -%}
    case when json_valid({{ text_expr }}) then
        case when json_type({{ text_expr }}) = 'OBJECT' then cast({{ text_expr }} as json) end
    end
{%- endmacro %}

{% macro postgres__try_json_object(text_expr) -%}
    {#- ::jsonb raises on bad input (NaN, \u0000, lone surrogates), which would fail the whole build. -#}
    {{ trackway.udf_schema() }}.trackway_try_jsonb_object({{ text_expr }})
{%- endmacro %}


{# Text at a key path (list of keys) inside a JSON value; NULL when absent or JSON null. Non-strings come back as JSON text. #}
{% macro json_text(json_expr, path) -%}
    {{ return(adapter.dispatch('json_text', 'trackway')(json_expr, path)) }}
{%- endmacro %}

{% macro default__json_text(json_expr, path) -%}{{ trackway._unsupported_adapter('json_text') }}{%- endmacro %}

{% macro duckdb__json_text(json_expr, path) -%}
    json_extract_string({{ json_expr }}, '$.{{ path | join(".") }}')
{%- endmacro %}

{% macro postgres__json_text(json_expr, path) -%}
    ({{ json_expr }} #>> '{ {{- path | join(",") -}} }')
{%- endmacro %}


{# JSON value (warehouse JSON type) at a key path; NULL when absent. #}
{% macro json_value(json_expr, path) -%}
    {{ return(adapter.dispatch('json_value', 'trackway')(json_expr, path)) }}
{%- endmacro %}

{% macro default__json_value(json_expr, path) -%}{{ trackway._unsupported_adapter('json_value') }}{%- endmacro %}

{% macro duckdb__json_value(json_expr, path) -%}
    json_extract({{ json_expr }}, '$.{{ path | join(".") }}')
{%- endmacro %}

{% macro postgres__json_value(json_expr, path) -%}
    ({{ json_expr }} #> '{ {{- path | join(",") -}} }')
{%- endmacro %}


{#
    Text -> timestamptz, NULL when it is not an ISO-8601 date-time.
    Accepts '2026-11-22T10:15:00.123Z', '...+02:00', '...+0200' and
    zone-less '2026-11-22 10:15:00' (taken as UTC, never the session zone).
    Anything else ('now', '2026-02-30T00:00:00Z', 'yesterday') gives NULL,
    so a bad value is rejected instead of failing the build or silently
    becoming "now" (PostgreSQL's cast accepts 'now').
#}
{% macro iso_timestamp_regex() -%}
    ^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,9})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$
{%- endmacro %}

{% macro iso_zone_regex() -%}
    (Z|[+-][0-9]{2}(:?[0-9]{2})?)$
{%- endmacro %}

{% macro try_timestamptz(text_expr) -%}
    {{ return(adapter.dispatch('try_timestamptz', 'trackway')(text_expr)) }}
{%- endmacro %}

{% macro default__try_timestamptz(text_expr) -%}{{ trackway._unsupported_adapter('try_timestamptz') }}{%- endmacro %}

{% macro duckdb__try_timestamptz(text_expr) -%}
    {%- set v = "upper(trim(" ~ text_expr ~ "))" -%}
    case when regexp_matches({{ v }}, '{{ trackway.iso_timestamp_regex() }}') then
        try_cast(
            case when regexp_matches({{ v }}, '{{ trackway.iso_zone_regex() }}') then {{ v }} else {{ v }} || '+00:00' end
            as timestamptz
        )
    end
{%- endmacro %}

{% macro postgres__try_timestamptz(text_expr) -%}
    {{ trackway.udf_schema() }}.trackway_try_timestamptz({{ text_expr }})
{%- endmacro %}


{#
    Segment's clock-skew correction: received_at - (sent_at - client_ts).
    Done on exact microseconds so the result never depends on the session
    time zone (calendar-day interval arithmetic shifts by an hour across DST).
#}
{% macro skew_corrected(received_at, sent_at, client_ts) -%}
    {{ return(adapter.dispatch('skew_corrected', 'trackway')(received_at, sent_at, client_ts)) }}
{%- endmacro %}

{% macro default__skew_corrected(received_at, sent_at, client_ts) -%}{{ trackway._unsupported_adapter('skew_corrected') }}{%- endmacro %}

{% macro duckdb__skew_corrected(received_at, sent_at, client_ts) -%}
    ({{ received_at }} - to_microseconds(epoch_us({{ sent_at }}) - epoch_us({{ client_ts }})))
{%- endmacro %}

{% macro postgres__skew_corrected(received_at, sent_at, client_ts) -%}
    ({{ received_at }} - (extract(epoch from {{ sent_at }}) - extract(epoch from {{ client_ts }})) * interval '1 second')
{%- endmacro %}


{# Date of a timestamptz in UTC, whatever the session time zone. #}
{% macro utc_date(ts_expr) -%}
    {{ return(adapter.dispatch('utc_date', 'trackway')(ts_expr)) }}
{%- endmacro %}

{% macro default__utc_date(ts_expr) -%}
    cast(({{ ts_expr }}) at time zone 'UTC' as date)
{%- endmacro %}


{# "as materialized" for a CTE computed once (DuckDB, PostgreSQL); BigQuery has no such hint. #}
{% macro materialized_cte() -%}
    {{ return(adapter.dispatch('materialized_cte', 'trackway')()) }}
{%- endmacro %}

{% macro default__materialized_cte() -%}materialized{%- endmacro %}


{# Text in single quotes, for messages: BigQuery reads four quotes as the start of a triple-quoted string. #}
{% macro quoted_text(text_expr) -%}
    {{ return(adapter.dispatch('quoted_text', 'trackway')(text_expr)) }}
{%- endmacro %}

{% macro default__quoted_text(text_expr) -%}
    '''' || {{ text_expr }} || ''''
{%- endmacro %}


{# Empty or blank text counts as absent. #}
{% macro nullif_blank(text_expr) -%}
    case when trim({{ text_expr }}) = '' then null else {{ text_expr }} end
{%- endmacro %}


{#
    A select over `relation` adding one column per JSON field of
    `json_column`: text_fields and json_fields are lists of
    (column_name, [key, ...]); text fields come back as text (non-strings
    as JSON text), json fields in the warehouse's JSON type, NULL when absent.
    DuckDB stores JSON as text and would re-parse it for every field, so
    there all paths are extracted in one pass per row.
#}
{% macro select_json_fields(relation, json_column, text_fields, json_fields) -%}
    {{ return(adapter.dispatch('select_json_fields', 'trackway')(relation, json_column, text_fields, json_fields)) }}
{%- endmacro %}

{% macro default__select_json_fields(relation, json_column, text_fields, json_fields) -%}
    {{ trackway._unsupported_adapter('select_json_fields') }}
{%- endmacro %}

{% macro duckdb__select_json_fields(relation, json_column, text_fields, json_fields) -%}
    select
        * exclude (_json_texts, _json_values),
        {%- for name, path in text_fields %}
        _json_texts[{{ loop.index }}] as {{ name }},
        {%- endfor %}
        {%- for name, path in json_fields %}
        _json_values[{{ loop.index }}] as {{ name }}{{ "," if not loop.last }}
        {%- endfor %}
    from (
        select
            {{ relation }}.*,
            json_extract_string({{ json_column }}, [
                {%- for name, path in text_fields -%}
                '$.{{ path | join(".") }}'{{ ", " if not loop.last }}
                {%- endfor -%}
            ]) as _json_texts,
            json_extract({{ json_column }}, [
                {%- for name, path in json_fields -%}
                '$.{{ path | join(".") }}'{{ ", " if not loop.last }}
                {%- endfor -%}
            ]) as _json_values
        from {{ relation }}
    ) as with_json_lists
{%- endmacro %}

{% macro postgres__select_json_fields(relation, json_column, text_fields, json_fields) -%}
    select
        {{ relation }}.*,
        {%- for name, path in text_fields %}
        {{ trackway.json_text(json_column, path) }} as {{ name }},
        {%- endfor %}
        {%- for name, path in json_fields %}
        {{ trackway.json_value(json_column, path) }} as {{ name }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ relation }}
{%- endmacro %}


{# Whole microseconds since the epoch of a timestamptz, as bigint (exact; no session time zone involved). #}
{% macro epoch_us(ts_expr) -%}
    {{ return(adapter.dispatch('epoch_us', 'trackway')(ts_expr)) }}
{%- endmacro %}

{% macro default__epoch_us(ts_expr) -%}{{ trackway._unsupported_adapter('epoch_us') }}{%- endmacro %}

{% macro duckdb__epoch_us(ts_expr) -%}
    epoch_us({{ ts_expr }})
{%- endmacro %}

{% macro postgres__epoch_us(ts_expr) -%}
    cast(extract(epoch from {{ ts_expr }}) * 1000000 as bigint)
{%- endmacro %}


{# A stable text id from text parts: md5 hex of the parts joined by '|'. #}
{% macro hash_id(parts) -%}
    {{ return(adapter.dispatch('hash_id', 'trackway')(parts)) }}
{%- endmacro %}

{% macro default__hash_id(parts) -%}
    md5({% for part in parts %}cast({{ part }} as {{ dbt.type_string() }}){{ " || '|' || " if not loop.last }}{% endfor %})
{%- endmacro %}


{# Table function yielding (key, value) for each member of a JSON object. #}
{% macro json_each(json_expr) -%}
    {{ return(adapter.dispatch('json_each', 'trackway')(json_expr)) }}
{%- endmacro %}

{% macro default__json_each(json_expr) -%}{{ trackway._unsupported_adapter('json_each') }}{%- endmacro %}

{% macro duckdb__json_each(json_expr) -%}json_each({{ json_expr }}){%- endmacro %}

{% macro postgres__json_each(json_expr) -%}jsonb_each({{ json_expr }}){%- endmacro %}


{# True when a JSON value is an object. #}
{% macro json_is_object(json_expr) -%}
    {{ return(adapter.dispatch('json_is_object', 'trackway')(json_expr)) }}
{%- endmacro %}

{% macro default__json_is_object(json_expr) -%}{{ trackway._unsupported_adapter('json_is_object') }}{%- endmacro %}

{% macro duckdb__json_is_object(json_expr) -%}(json_type({{ json_expr }}) = 'OBJECT'){%- endmacro %}

{% macro postgres__json_is_object(json_expr) -%}(jsonb_typeof({{ json_expr }}) = 'object'){%- endmacro %}


{#
    Aggregate (key, JSON value) rows into one JSON object, keys in sorted
    order: the text of the object must not depend on the order rows reach
    the aggregate, or an incremental run and a full refresh of the same
    rows would write different text (PostgreSQL's jsonb has a canonical
    order of its own: shorter keys first).
#}
{% macro json_object_agg(key_expr, value_expr) -%}
    {{ return(adapter.dispatch('json_object_agg', 'trackway')(key_expr, value_expr)) }}
{%- endmacro %}

{% macro default__json_object_agg(key_expr, value_expr) -%}{{ trackway._unsupported_adapter('json_object_agg') }}{%- endmacro %}

{% macro duckdb__json_object_agg(key_expr, value_expr) -%}
    cast('{' || string_agg(
        to_json(cast({{ key_expr }} as varchar)) || ':' || coalesce(cast(to_json({{ value_expr }}) as varchar), 'null'),
        ',' order by {{ key_expr }}
    ) || '}' as json)
{%- endmacro %}

{% macro postgres__json_object_agg(key_expr, value_expr) -%}jsonb_object_agg({{ key_expr }}, {{ value_expr }}){%- endmacro %}


{# A JSON scalar as text (strings unquoted; numbers and booleans as their JSON text). #}
{% macro json_scalar_text(json_expr) -%}
    {{ return(adapter.dispatch('json_scalar_text', 'trackway')(json_expr)) }}
{%- endmacro %}

{% macro default__json_scalar_text(json_expr) -%}{{ trackway._unsupported_adapter('json_scalar_text') }}{%- endmacro %}

{% macro duckdb__json_scalar_text(json_expr) -%}json_extract_string({{ json_expr }}, '$'){%- endmacro %}

{% macro postgres__json_scalar_text(json_expr) -%}({{ json_expr }} #>> '{}'){%- endmacro %}


{# An interval of whole minutes, to add to or subtract from a timestamptz. #}
{% macro interval_minutes(minutes) -%}
    {{ return(adapter.dispatch('interval_minutes', 'trackway')(minutes)) }}
{%- endmacro %}

{% macro default__interval_minutes(minutes) -%}
    interval '{{ minutes | int }} minutes'
{%- endmacro %}


{# A timestamptz as UTC text 'YYYY-MM-DD HH:MM:SS[.ffffff]', whatever the session time zone. #}
{% macro utc_text(ts_expr) -%}
    {{ return(adapter.dispatch('utc_text', 'trackway')(ts_expr)) }}
{%- endmacro %}

{% macro default__utc_text(ts_expr) -%}
    cast(({{ ts_expr }}) at time zone 'UTC' as text)
{%- endmacro %}


{# A text value as an SQL string literal. BigQuery escapes with backslashes, not by doubling quotes. #}
{% macro sql_string(value) -%}
    {{ return(adapter.dispatch('sql_string', 'trackway')(value)) }}
{%- endmacro %}

{% macro default__sql_string(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}


{# Double-precision floating point (DuckDB's FLOAT is single precision). #}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'trackway')()) }}
{%- endmacro %}

{% macro default__type_double() -%}double precision{%- endmacro %}


{# a / b as a double; NULL when b is 0 or NULL. #}
{% macro safe_ratio(numerator, denominator) -%}
    cast({{ numerator }} as {{ trackway.type_double() }}) / nullif(cast({{ denominator }} as {{ trackway.type_double() }}), 0)
{%- endmacro %}


{# The Monday starting the ISO week of a date (DuckDB and PostgreSQL: date - integer is a date). #}
{% macro week_start(date_expr) -%}
    {{ return(adapter.dispatch('week_start', 'trackway')(date_expr)) }}
{%- endmacro %}

{% macro default__week_start(date_expr) -%}
    cast({{ date_expr }} - cast(extract(isodow from {{ date_expr }}) - 1 as integer) as date)
{%- endmacro %}


{# Whole days from `earlier` to `later` (two dates). #}
{% macro days_between(later, earlier) -%}
    {{ return(adapter.dispatch('days_between', 'trackway')(later, earlier)) }}
{%- endmacro %}

{% macro default__days_between(later, earlier) -%}
    ({{ later }} - {{ earlier }})
{%- endmacro %}


{# A date plus a whole number of days (negative to go back). #}
{% macro add_days(date_expr, days) -%}
    {{ return(adapter.dispatch('add_days', 'trackway')(date_expr, days)) }}
{%- endmacro %}

{% macro default__add_days(date_expr, days) -%}
    cast({{ date_expr }} + ({{ days }}) as date)
{%- endmacro %}
