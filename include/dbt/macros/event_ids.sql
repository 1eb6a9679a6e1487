{#
    analytics.events.event_id, per source (docs/models.md, "Duplicates are per
    source"). Segment deduplicates per source: a messageId only names a
    message within its source, so a message of one source never hides a
    message of another. The first source to send a messageId keeps it as
    the event_id (so ids of data loaded before this rule never change); a
    message of another source with the same messageId gets
    'trackway:' || md5(len(source) | source | messageId): deterministic,
    the same in an incremental run and a --full-refresh. A messageId that
    itself starts with 'trackway:' never becomes an event_id as sent, so no
    client can forge the id another source's message would get.
#}

{% macro reserved_event_id_prefix() -%}trackway:{%- endmacro %}

{#- The event_id of a (source_id, message_id) that did not claim the messageId itself. The length keeps ('a|b', 'c') apart from ('a', 'b|c'). -#}
{% macro source_scoped_event_id(source_expr, message_expr) -%}
    '{{ trackway.reserved_event_id_prefix() }}' || {{ trackway.hash_id([
        "length(coalesce(" ~ source_expr ~ ", ''))",
        "coalesce(" ~ source_expr ~ ", '')",
        message_expr,
    ]) }}
{%- endmacro %}

{#- True when a messageId may be an event_id as sent: it is not in the reserved namespace. -#}
{% macro message_id_is_claimable(message_expr) -%}
    ({{ message_expr }} not like '{{ trackway.reserved_event_id_prefix() }}%')
{%- endmacro %}
