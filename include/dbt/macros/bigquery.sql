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
