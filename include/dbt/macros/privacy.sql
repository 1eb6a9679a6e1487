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
