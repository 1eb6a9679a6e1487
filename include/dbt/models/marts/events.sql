{#
    analytics.events: one typed row per Segment message, built incrementally.
    Each run inserts the batch's new messages (int_events_new); rows already
    here are never replaced by a later copy of the same message.
#}

{{ config(
    materialized='incremental',
    unique_key='event_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    indexes=trackway.events_indexes(),
) }}

with new_events as (

    select * from {{ ref('int_events_new') }}

)

select
    event_id,
    event_type,
    event_name,
    page_name,
    user_id,
    anonymous_id,
    client_session_id as session_id,
    source_id,
    occurred_at,
    original_timestamp,
    sent_at,
    received_at,
    loaded_at,
    page_url,
    page_path,
    page_title,
    referrer,
    page_search,
    utm_source,
    utm_medium,
    utm_campaign,
    utm_term,
    utm_content,
    user_agent,
    ip,
    locale,
    library_name,
    library_version,
    group_id,
    previous_id,
    properties,
    traits,
    context,
    experiments,
    event_date,
    source_object,
    line_number
from new_events
