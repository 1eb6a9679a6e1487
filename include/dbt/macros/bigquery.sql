{#
    BigQuery versions of the cross-database macros (macros/cross_db.sql).
    JSON columns use BigQuery's JSON type; bad input becomes NULL (SAFE.*),
    never a failed build, as on the other warehouses.
#}

{% macro bigquery__try_json_object(text_expr) -%}
    case when json_type(safe.parse_json({{ text_expr }})) = 'object' then safe.parse_json({{ text_expr }}) end
{%- endmacro %}


{% macro _bq_path(path) -%}'$.{{ path | join(".") }}'{%- endmacro %}


{% macro bigquery__json_text(json_expr, path) -%}
    coalesce(
        json_value({{ json_expr }}, {{ trackway._bq_path(path) }}),
        case
            when json_type(json_query({{ json_expr }}, {{ trackway._bq_path(path) }})) in ('object', 'array')
                then to_json_string(json_query({{ json_expr }}, {{ trackway._bq_path(path) }}))
        end
    )
{%- endmacro %}


{% macro bigquery__json_value(json_expr, path) -%}
    json_query({{ json_expr }}, {{ trackway._bq_path(path) }})
{%- endmacro %}


{% macro bigquery__select_json_fields(relation, json_column, text_fields, json_fields) -%}
    {#- One expression per field, as on PostgreSQL; json_text/json_value dispatch to BigQuery's. -#}
    {{ trackway.postgres__select_json_fields(relation, json_column, text_fields, json_fields) }}
{%- endmacro %}


{% macro bigquery__try_timestamptz(text_expr) -%}
    {%- set v = "upper(trim(" ~ text_expr ~ "))" -%}
    case when regexp_contains({{ v }}, r'{{ trackway.iso_timestamp_regex() }}') then
        safe_cast(
            case when regexp_contains({{ v }}, r'{{ trackway.iso_zone_regex() }}') then {{ v }} else {{ v }} || '+00:00' end
            as timestamp
        )
    end
{%- endmacro %}


{% macro bigquery__skew_corrected(received_at, sent_at, client_ts) -%}
    timestamp_sub({{ received_at }}, interval timestamp_diff({{ sent_at }}, {{ client_ts }}, microsecond) microsecond)
{%- endmacro %}


{% macro bigquery__utc_date(ts_expr) -%}
    date({{ ts_expr }}, 'UTC')
{%- endmacro %}


{% macro bigquery__materialized_cte() -%}{%- endmacro %}


{% macro bigquery__quoted_text(text_expr) -%}
    concat("'", {{ text_expr }}, "'")
{%- endmacro %}


{% macro bigquery__epoch_us(ts_expr) -%}
    unix_micros({{ ts_expr }})
{%- endmacro %}


{% macro bigquery__type_timestamptz() -%}timestamp{%- endmacro %}


{#- md5 is BYTES on BigQuery; hex text like md5() elsewhere. -#}
{% macro bigquery__hash_id(parts) -%}
    to_hex(md5({% for part in parts %}cast({{ part }} as {{ dbt.type_string() }}){{ " || '|' || " if not loop.last }}{% endfor %}))
{%- endmacro %}


{% macro bigquery__interval_minutes(minutes) -%}
    interval {{ minutes | int }} minute
{%- endmacro %}


{% macro bigquery__utc_text(ts_expr) -%}
    format_timestamp('%Y-%m-%d %H:%M:%E6S', {{ ts_expr }}, 'UTC')
{%- endmacro %}


{#- An array of (key, value) structs: used as `from t, <this> as member`, then member.key / member.value. -#}
{% macro bigquery__json_each(json_expr) -%}
    unnest(array(
        select as struct
            json_key as key,
            {{ json_expr }}[json_key] as value
        from unnest(json_keys({{ json_expr }}, 1)) as json_key
    ))
{%- endmacro %}


{% macro bigquery__json_is_object(json_expr) -%}(json_type({{ json_expr }}) = 'object'){%- endmacro %}


{#-
    Built as JSON text: JSON_OBJECT(ARRAY_AGG(key), ARRAY_AGG(value)) is the
    shorter BigQuery form, but bqemulator 1.4.0 cannot run it (DuckDB binder
    error on the key array); this form is equally valid BigQuery.
-#}
{% macro bigquery__json_object_agg(key_expr, value_expr) -%}
    parse_json(concat('{', string_agg(concat(to_json_string({{ key_expr }}), ':', to_json_string({{ value_expr }})), ',' order by {{ key_expr }}), '}'))
{%- endmacro %}


{% macro bigquery__json_scalar_text(json_expr) -%}json_value({{ json_expr }}){%- endmacro %}


{#-
    MERGE with partition pruning, for models configured merge_prunes_partitions=true
    (analytics.events, analytics.sessions). Without it, every incremental MERGE reads
    the whole target table. The floor is the earliest partition value among the rows
    being merged, put into a script variable first: BigQuery prunes partitions on
    constants and script variables, not on subqueries (dbt's own insert_overwrite
    does the same). The source is dbt's temp table (on_schema_change makes dbt create
    it), so computing the floor reads the batch, not history.
    Correct when a row's partition value never moves later across runs, so every
    target row a source row matches is at or above the floor: an event's event_date
    comes from its occurred_at, which never changes; a session's started_at only
    moves earlier (late events extend it).
-#}
{% macro bigquery__get_merge_sql(target, source, unique_key, dest_columns, incremental_predicates=none) -%}
    {%- set partition_by = config.get('partition_by') -%}
    {%- if config.get('merge_prunes_partitions') and partition_by -%}
        {%- set field = partition_by['field'] -%}
        {%- set predicates = (incremental_predicates or []) + ['DBT_INTERNAL_DEST.' ~ field ~ ' >= trackway_merge_floor'] -%}
        declare trackway_merge_floor {{ partition_by.get('data_type', 'date') }} default (select min(floor_source.{{ field }}) from {{ source }} as floor_source);
        {{ dbt.default__get_merge_sql(target, source, unique_key, dest_columns, predicates) }}
    {%- else -%}
        {{ dbt.default__get_merge_sql(target, source, unique_key, dest_columns, incremental_predicates) }}
    {%- endif -%}
{%- endmacro %}


{% macro bigquery__sql_string(value) -%}
    '{{ value | string | replace("\\", "\\\\") | replace("'", "\\'") | replace("\n", "\\n") | replace("\r", "\\r") }}'
{%- endmacro %}


{% macro bigquery__type_double() -%}float64{%- endmacro %}


{#- date_trunc(d, isoweek) is the same; bqemulator 1.4.0 cannot translate it. 1900-01-01 was a Monday. -#}
{% macro bigquery__week_start(date_expr) -%}
    date_add(date '1900-01-01', interval div(date_diff({{ date_expr }}, date '1900-01-01', day), 7) * 7 day)
{%- endmacro %}


{% macro bigquery__days_between(later, earlier) -%}
    date_diff({{ later }}, {{ earlier }}, day)
{%- endmacro %}


{% macro bigquery__add_days(date_expr, days) -%}
    date_add({{ date_expr }}, interval ({{ days }}) day)
{%- endmacro %}
