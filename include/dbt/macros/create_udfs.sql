{# Schema holding Trackway's helper functions (PostgreSQL only). #}
{% macro udf_schema() -%}staging{%- endmacro %}

{#
    Run as an on-run-start hook. PostgreSQL has no try_cast, and a failing
    cast aborts the whole statement, so one bad value in one line would stop
    every event from being built. These functions turn bad input into NULL,
    which the models then route to analytics.events_rejected.
#}
{% macro create_udfs() -%}
    {{ return(adapter.dispatch('create_udfs', 'trackway')()) }}
{%- endmacro %}

{% macro default__create_udfs() -%}
    select 1 as nothing_to_create
{%- endmacro %}

{#
    Every dbt invocation runs this hook, and Cosmos runs one per model, in parallel under
    the Celery or Local executor: two CREATE OR REPLACE FUNCTION at once fail with "tuple
    concurrently updated". One lock for the transaction serialises them (released at its end).
#}
{% macro hook_lock(name) -%}
select pg_advisory_xact_lock(hashtext('trackway:{{ name }}'));
{%- endmacro %}

{% macro postgres__create_udfs() -%}
{{ trackway.hook_lock('create_udfs') }}
create schema if not exists {{ trackway.udf_schema() }};

create or replace function {{ trackway.udf_schema() }}.trackway_try_timestamptz(value text)
returns timestamptz
-- Not parallel safe: an exception block opens a subtransaction, which
-- parallel workers cannot ("cannot start subtransactions during a parallel operation").
language plpgsql immutable strict parallel unsafe
as $fn$
declare
    v text := upper(btrim(value));
begin
    if v !~ '{{ trackway.iso_timestamp_regex() }}' then
        return null;
    end if;
    if v !~ '{{ trackway.iso_zone_regex() }}' then
        v := v || '+00:00';  -- zone-less means UTC, not the session time zone
    end if;
    return v::timestamptz;
exception when data_exception then
    return null;  -- e.g. 2026-02-30 or hour 25
end
$fn$;

create or replace function {{ trackway.udf_schema() }}.trackway_try_jsonb_object(value text)
returns jsonb
language plpgsql immutable strict parallel unsafe  -- see above
as $fn$
declare
    parsed jsonb;
begin
    parsed := value::jsonb;
    if jsonb_typeof(parsed) <> 'object' then
        return null;
    end if;
    return parsed;
exception when data_exception then
    return null;  -- NaN, \u0000, lone surrogates: valid for the loader, not for jsonb
end
$fn$;
{%- endmacro %}
