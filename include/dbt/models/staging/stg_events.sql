{#
    One row per raw line of this run's batch: renamed, blank ids made NULL,
    timestamps typed (NULL when unparseable; the text is kept alongside so
    validation can tell "absent" from "bad"), JSON fields extracted.

    The batch is every raw row loaded since the newest loaded_at already in
    analytics.events, minus var('raw_lookback_minutes') (see
    trackway.raw_batch_start); all of raw.events_raw on a first run or with
    --full-refresh. Rebuilt each run, so its cost follows the new data.
#}

{%- set text_fields = [
    ('context_ip', ['context', 'ip']),
    ('context_user_agent', ['context', 'userAgent']),
    ('context_locale', ['context', 'locale']),
    ('context_library_name', ['context', 'library', 'name']),
    ('context_library_version', ['context', 'library', 'version']),
    ('context_page_url', ['context', 'page', 'url']),
    ('context_page_path', ['context', 'page', 'path']),
    ('context_page_title', ['context', 'page', 'title']),
    ('context_page_referrer', ['context', 'page', 'referrer']),
    ('context_page_search', ['context', 'page', 'search']),
    ('campaign_source', ['context', 'campaign', 'source']),
    ('campaign_medium', ['context', 'campaign', 'medium']),
    ('campaign_name', ['context', 'campaign', 'name']),
    ('campaign_term', ['context', 'campaign', 'term']),
    ('campaign_content', ['context', 'campaign', 'content']),
    ('properties_url', ['properties', 'url']),
    ('properties_path', ['properties', 'path']),
    ('properties_title', ['properties', 'title']),
    ('properties_referrer', ['properties', 'referrer']),
    ('properties_search', ['properties', 'search']),
] -%}
{%- set session_id_paths = var('session_id_paths') -%}
{%- for path in session_id_paths -%}
    {%- do text_fields.append(('session_id_candidate_' ~ loop.index, path)) -%}
{%- endfor -%}
{%- set json_fields = [
    ('properties_json', ['properties']),
    ('traits_json', ['traits']),
    ('context_traits_json', ['context', 'traits']),
    ('context_json', ['context']),
    ('experiments_json', var('experiments_context_path')),
] %}
{%- set batch_start = trackway.raw_batch_start() %}

with source as (

    select * from {{ source('raw', 'events_raw') }}
    {%- if batch_start is not none %}
        where loaded_at >= {{ batch_start }}
    {%- endif %}

),

-- The expensive parses (exception-guarded functions on PostgreSQL), once per
-- row: MATERIALIZED stops the planner from inlining this CTE and re-running
-- a parse for every later reference to its result.
parsed as {{ trackway.materialized_cte() }} (

    select
        *,
        case
            when parse_error is null then {{ trackway.try_json_object('raw') }}
        end as payload,
        {{ trackway.try_timestamptz(adapter.quote('timestamp')) }} as timestamp_at,
        {{ trackway.try_timestamptz('original_timestamp') }} as original_timestamp_at,
        {{ trackway.try_timestamptz('sent_at') }} as sent_at_ts,
        {{ trackway.try_timestamptz('received_at') }} as received_at_ts
    from source

),

extracted as (

    {{ trackway.select_json_fields('parsed', 'payload', text_fields, json_fields) }}

),

renamed as (

    select
        -- lineage
        source_object,
        line_number,
        load_id,
        loaded_at,
        raw,
        parse_error,
        payload is not null as is_json_object,

        -- identifiers
        {{ trackway.nullif_blank('message_id') }} as message_id,
        {{ trackway.nullif_blank(adapter.quote('type')) }} as event_type,
        {{ trackway.nullif_blank(adapter.quote('event')) }} as track_event,
        {{ trackway.nullif_blank(adapter.quote('name')) }} as page_name,
        {{ trackway.nullif_blank('user_id') }} as user_id,
        {{ trackway.nullif_blank('anonymous_id') }} as anonymous_id,
        {{ trackway.nullif_blank('group_id') }} as group_id,
        {{ trackway.nullif_blank('previous_id') }} as previous_id,
        {{ trackway.nullif_blank('source_id') }} as source_id,

        -- timestamps, as sent and typed
        {{ trackway.nullif_blank(adapter.quote('timestamp')) }} as timestamp_text,
        {{ trackway.nullif_blank('original_timestamp') }} as original_timestamp_text,
        {{ trackway.nullif_blank('sent_at') }} as sent_at_text,
        {{ trackway.nullif_blank('received_at') }} as received_at_text,
        timestamp_at,
        original_timestamp_at,
        sent_at_ts as sent_at,
        received_at_ts as received_at,

        -- context
        context_ip,
        context_user_agent,
        context_locale,
        context_library_name,
        context_library_version,
        context_page_url,
        context_page_path,
        context_page_title,
        context_page_referrer,
        context_page_search,
        -- the first non-blank of var('session_id_paths')
        {% if session_id_paths -%}
            coalesce(
                {%- for path in session_id_paths %}
                    {{ trackway.nullif_blank('session_id_candidate_' ~ loop.index) }}{{ "," if not loop.last }}
                {%- endfor %}
            )
        {%- else -%}
            cast(null as {{ dbt.type_string() }})
        {%- endif %} as client_session_id,
        campaign_source as utm_source,
        campaign_medium as utm_medium,
        campaign_name as utm_campaign,
        campaign_term as utm_term,
        campaign_content as utm_content,

        -- properties used as fallbacks
        properties_url,
        properties_path,
        properties_title,
        properties_referrer,
        properties_search,

        -- JSON kept whole
        properties_json as properties,
        -- RudderStack's SDKs send identify/group traits in context.traits only.
        case
            when {{ adapter.quote('type') }} in ('identify', 'group') then coalesce(traits_json, context_traits_json)
            else traits_json
        end as traits,
        context_json as context,
        experiments_json as experiments,

        -- the tracking plan's verdict, unnested by plan_violation_rows (adr/0029)
        plan_verdict

    from extracted

)

select * from renamed
