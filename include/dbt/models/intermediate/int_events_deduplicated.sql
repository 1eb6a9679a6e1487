{#
    One row per messageId among the valid lines. Segment clients retry and
    objects can be re-sent, so the same message arrives several times; the
    first copy the collector received wins, with load time and position as
    deterministic tie-breakers. Invalid copies are left to events_rejected
    and never shadow a valid one.
#}

with valid as (

    select * from {{ ref('int_events_validated') }}
    where reject_reason is null

),

ranked as (

    select
        *,
        row_number() over (
            partition by message_id
            order by received_at, loaded_at, source_object, line_number
        ) as copy_rank,
        count(*) over (partition by message_id) as copies_received
    from valid

)

select * from ranked
where copy_rank = 1
