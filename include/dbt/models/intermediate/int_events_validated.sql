{#
    Decide, per raw line, whether it can become an event. reject_reason is
    NULL for good lines; otherwise the first failed check, in this order, so
    each bad line has exactly one stable reason.
#}

{% set event_types = ['track', 'page', 'screen', 'identify', 'group', 'alias'] %}

with events as (

    select * from {{ ref('stg_events') }}

),

checked as (

    select
        *,

        case
            when parse_error is not null then 'parse_error'
            when not is_json_object then 'invalid_json'
            when message_id is null then 'missing_message_id'
            when user_id is null and anonymous_id is null then 'missing_user_and_anonymous_id'
            when
                event_type is null
                or event_type not in (
                    '{{ event_types | join("', '") }}'
                )
                then 'unknown_type'
            when event_type = 'track' and track_event is null then 'missing_event_name'
            when received_at_text is null then 'missing_received_at'
            when
                received_at is null
                or (timestamp_text is not null and timestamp_at is null)
                or (original_timestamp_text is not null and original_timestamp_at is null)
                or (sent_at_text is not null and sent_at is null) then 'unparseable_timestamp'
        end as reject_reason

    from events

),

explained as (

    select
        *,

        case reject_reason
            when 'parse_error' then parse_error
            when 'invalid_json'
                then
                    'the loader parsed this line but the warehouse cannot store it as a JSON object '
                    || '(e.g. NaN, \u0000 or an unpaired surrogate in a string)'
            when 'missing_message_id' then 'messageId is missing or blank'
            when 'missing_user_and_anonymous_id' then 'both userId and anonymousId are missing or blank'
            when 'unknown_type'
                then
                    'type ' || coalesce({{ trackway.quoted_text('event_type') }}, 'is missing, expected')
                    || case when event_type is null then ' ' else ' is not ' end
                    || 'one of {{ event_types | join(", ") }}'
            when 'missing_event_name' then 'track call without an event name'
            when 'missing_received_at' then 'receivedAt is missing (the collector always sets it)'
            when 'unparseable_timestamp' then
                'not an ISO-8601 date-time:'
                || case when received_at is null then ' receivedAt=' || received_at_text else '' end
                || case
                    when timestamp_text is not null and timestamp_at is null
                        then ' timestamp=' || timestamp_text
                    else ''
                end
                || case
                    when original_timestamp_text is not null and original_timestamp_at is null
                        then ' originalTimestamp=' || original_timestamp_text
                    else ''
                end
                || case when sent_at_text is not null and sent_at is null then ' sentAt=' || sent_at_text else '' end
        end as reject_detail

    from checked

)

select * from explained
