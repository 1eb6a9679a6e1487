{#
    How a run finds its batch: the raw rows loaded since the newest
    loaded_at already in analytics.events, minus var('raw_lookback_minutes').
    Returns a SQL timestamptz literal, or none (read all of raw) on a first
    run, with --full-refresh, or while dbt only parses.

    The lookback is by loaded_at, never by event time: a load that started
    before the last run but committed after it, or a task retried later, is
    still inside the window; rows read twice are harmless because events are
    keyed by messageId and rejects by their raw lineage.

    analytics.events is read as a relation, not ref()'d: it is the previous
    run's state (Snowplow's "manifest" idea), and a ref would be a cycle.
#}
{% macro raw_batch_start() -%}
    {%- if not execute or flags.FULL_REFRESH -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set events = trackway.previous_events_relation() -%}
    {%- if events is none -%}
        {{ return(none) }}
    {%- endif -%}
    {#- As UTC text, so the literal means the same instant whatever the session time zone. -#}
    {%- set newest = run_query(
        "select " ~ trackway.utc_text("max(loaded_at)") ~ " from " ~ events
    ).columns[0].values()[0] -%}
    {%- if newest is none -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(
        trackway.timestamptz_literal(newest ~ "+00:00")
        ~ " - " ~ trackway.interval_minutes(var('raw_lookback_minutes'))
    ) }}
{%- endmacro %}


{# analytics.events as built by the previous run, or none when it does not exist (yet). #}
{% macro previous_events_relation() -%}
    {{ return(adapter.get_relation(database=target.database, schema='analytics', identifier='events')) }}
{%- endmacro %}


{% macro timestamptz_literal(iso_text) -%}
    cast('{{ iso_text }}' as {{ trackway.type_timestamptz() }})
{%- endmacro %}


{% macro type_timestamptz() -%}
    {{ return(adapter.dispatch('type_timestamptz', 'trackway')()) }}
{%- endmacro %}

{% macro default__type_timestamptz() -%}timestamp with time zone{%- endmacro %}


{#
    Physical layout the transform relies on, measured in benchmarks/bench_transform.py.
    PostgreSQL: the batch is found by loaded_at, so raw.events_raw needs an
    index on it (the loader only indexes source_object). DuckDB: rows are
    appended in load order, so its zone maps already prune by loaded_at and
    an ART index would only slow the loads down.
#}
{% macro create_raw_indexes() -%}
    {{ return(adapter.dispatch('create_raw_indexes', 'trackway')()) }}
{%- endmacro %}

{% macro default__create_raw_indexes() -%}
    select 1 as nothing_to_create
{%- endmacro %}

{% macro postgres__create_raw_indexes() -%}
    {%- set raw = adapter.get_relation(database=target.database, schema='raw', identifier='events_raw') -%}
    {%- if raw is not none and var('postgres_indexes') -%}
        {#- Only when missing: CREATE INDEX IF NOT EXISTS demands ownership of raw.events_raw even when
            the index exists, and with one role per job the loader owns it (`trackway warehouse grant`
            makes the index; docs/reference/warehouse-roles.md). Locked as the UDFs are (create_udfs.sql). -#}
        {{ trackway.hook_lock('create_raw_indexes') }}
        do $trackway$ begin
            if to_regclass('{{ raw.schema }}.events_raw_loaded_at_idx') is null then
                create index events_raw_loaded_at_idx on {{ raw }} (loaded_at);
            end if;
        end $trackway$
    {%- else -%}
        select 1 as no_raw_index_to_create
    {%- endif -%}
{%- endmacro %}


{#
    Indexes on analytics.events (PostgreSQL; dbt creates them with the
    table). event_id: the "already have it?" check and delete+insert are
    index lookups instead of a scan of all history. loaded_at: the next
    run's watermark (max) is read from the index.
#}
{% macro events_indexes() -%}
    {{ return(adapter.dispatch('events_indexes', 'trackway')()) }}
{%- endmacro %}

{% macro default__events_indexes() -%}
    {{ return([]) }}
{%- endmacro %}

{% macro postgres__events_indexes() -%}
    {{ return([] if not var('postgres_indexes') else [
        {'columns': ['event_id'], 'unique': true},
        {'columns': ['loaded_at']},
        {'columns': ['session_id']},
        {'columns': ['transformed_at']},
    ]) }}
{%- endmacro %}


{# The device a derived session belongs to: the anonymousId, else the userId (prefixed so the two never collide). #}
{% macro device_id(relation=none) -%}
    {%- set prefix = relation ~ "." if relation else "" -%}
    case
        when {{ prefix }}anonymous_id is not null then 'a:' || {{ prefix }}anonymous_id
        else 'u:' || {{ prefix }}user_id
    end
{%- endmacro %}


{#
    sessions post-hook: a derived session that a late event merged into
    another, or whose start moved earlier, got a new id in analytics.events.
    Its old row is one no event points to any more; only sessions that
    overlap a session written in this run are candidates, so this costs
    what the run touched.
#}
{% macro delete_absorbed_sessions() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} as old
        where
            old.session_id_source = 'derived'
            and old.transformed_at < (select max(s.transformed_at) from {{ this }} as s)
            and exists (
                select 1 from {{ this }} as rewritten
                where
                    rewritten.transformed_at = (select max(s.transformed_at) from {{ this }} as s)
                    and rewritten.session_id_source = 'derived'
                    and rewritten.started_at <= old.ended_at
                    and rewritten.ended_at >= old.started_at
                    and coalesce(rewritten.anonymous_id, rewritten.user_id) = coalesce(old.anonymous_id, old.user_id)
            )
            and not exists (select 1 from {{ ref('events') }} as e where e.session_id = old.session_id)
    {%- else -%}
        select 1 as nothing_to_delete
    {%- endif -%}
{%- endmacro %}


{% macro sessions_indexes() -%}
    {{ return(adapter.dispatch('sessions_indexes', 'trackway')()) }}
{%- endmacro %}

{% macro default__sessions_indexes() -%}
    {{ return([]) }}
{%- endmacro %}

{% macro postgres__sessions_indexes() -%}
    {{ return([] if not var('postgres_indexes') else [
        {'columns': ['session_id'], 'unique': true},
        {'columns': ['transformed_at']},
    ]) }}
{%- endmacro %}


{#
    delete+insert where the adapter has it (DuckDB, PostgreSQL): rows of the
    unique_key are replaced. dbt-bigquery offers merge and insert_overwrite
    only; merge on the same unique_key writes the same rows there.
#}
{% macro incremental_strategy() -%}
    {{ return(adapter.dispatch('incremental_strategy', 'trackway')()) }}
{%- endmacro %}

{% macro default__incremental_strategy() -%}
    {{ return('delete+insert') }}
{%- endmacro %}

{% macro bigquery__incremental_strategy() -%}
    {{ return('merge') }}
{%- endmacro %}


{#
    BigQuery's physical layout (partition_by / cluster_by), none elsewhere:
    dbt-duckdb reads partition_by too (external files), so these configs are
    set only for BigQuery. Partition by a DATE column, cluster by the columns
    queries filter on.
#}
{% macro bigquery_partition_by(date_column) -%}
    {%- if target.type == 'bigquery' -%}
        {{ return({'field': date_column, 'data_type': 'date', 'granularity': 'day'}) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{% macro bigquery_cluster_by(columns) -%}
    {%- if target.type == 'bigquery' -%}
        {{ return(columns) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}


{#
    unique_key of a table replaced group by group (e.g. all rows of a day).
    delete+insert takes the group column; BigQuery's merge needs a key that
    is unique per row, and delete_superseded_rows then removes the rows of
    a rewritten group that this run did not write again.
#}
{% macro group_unique_key(group_column, row_key) -%}
    {%- if target.type == 'bigquery' -%}
        {{ return(row_key) }}
    {%- endif -%}
    {{ return(group_column) }}
{%- endmacro %}

{% macro delete_superseded_rows(group_column) -%}
    {%- if target.type == 'bigquery' and is_incremental() -%}
        delete from {{ this }} as old
        where
            old.transformed_at < (select max(s.transformed_at) from {{ this }} as s)
            and old.{{ group_column }} in (
                select rewritten.{{ group_column }} from {{ this }} as rewritten
                where rewritten.transformed_at = (select max(s.transformed_at) from {{ this }} as s)
            )
    {%- else -%}
        select 1 as nothing_to_delete
    {%- endif -%}
{%- endmacro %}


{#
    Post-hook on every model (dbt_project.yml). PostgreSQL plans joins from
    table statistics, which a table dbt has just created (stg_events, the
    batch, every run) or rewritten does not have until autovacuum gets to
    it, a minute or more later. Without them the planner guessed nested
    loops over the batch: in benchmarks/bench_transform.py (2026-11-23,
    this hook switched off) one incremental run in three took 33-63 s
    (sessions alone 52 s), against at most 13 s with it. ANALYZE reads a
    sample of at most 30,000 rows, so it
    costs the same on any table size. DuckDB and BigQuery keep their own
    statistics as they write: nothing to do there.
#}
{% macro analyze_after_write() -%}
    {{ return(adapter.dispatch('analyze_after_write', 'trackway')()) }}
{%- endmacro %}

{% macro default__analyze_after_write() -%}{%- endmacro %}

{% macro postgres__analyze_after_write() -%}
    {%- if config.get('materialized') in ('table', 'incremental') -%}
        analyze {{ this }}
    {%- endif -%}
{%- endmacro %}
