{#
    analytics.identity_map: every linked id -> the person it belongs to.

    Links (int_identity_links) form a graph where each id points to at most
    one user_id (its first link). person_id follows the links to the end of
    the chain: anon -> u-2 -> u-3 gives u-3 for all three. A loop (u-2 -> u-3
    -> u-2) resolves to the smallest id on the loop, so every member gets the
    same person. Chains and loops are followed for up to 20 hops.

    Resolution reads all links (one row per identified device, far fewer
    than events). Only rows whose link or person changed are written, and
    they get a new transformed_at: analytics.events re-stitches exactly the
    events of those ids, without a rebuild.
#}

{{ config(
    materialized='incremental',
    unique_key='anonymous_id',
    incremental_strategy=trackway.incremental_strategy(),
    on_schema_change='fail',
) }}

{%- set max_hops = 20 %}

with recursive links as (

    select
        anonymous_id,
        user_id,
        linked_at,
        link_event_id,
        link_type
    from {{ ref('int_identity_links') }}

),

walk as (

    select
        anonymous_id as start_id,
        anonymous_id as node_id,
        0 as hops
    from links

    union all

    select
        walk.start_id,
        links.user_id as node_id,
        walk.hops + 1 as hops
    from walk
    inner join links on walk.node_id = links.anonymous_id
    where walk.hops < {{ max_hops * 2 }}

),

ends as (

    -- The last node reached: the end of a chain, or somewhere on a loop.
    select
        start_id,
        max(hops) as last_hop
    from walk
    group by start_id

),

resolved as (

    select
        ends.start_id,
        case
            when ends.last_hop < {{ max_hops * 2 }}
                then max(case when walk.hops = ends.last_hop then walk.node_id end)
            -- Still walking after 2 x max_hops: a loop. Past max_hops the walk
            -- only visits the loop's members; the smallest one is the person.
            else min(case when walk.hops > {{ max_hops }} then walk.node_id end)
        end as person_id
    from ends
    inner join walk on ends.start_id = walk.start_id
    group by ends.start_id, ends.last_hop

),

final as (

    select
        links.anonymous_id,
        links.user_id,
        resolved.person_id,
        links.linked_at,
        links.link_event_id,
        links.link_type
    from links
    inner join resolved on links.anonymous_id = resolved.start_id

)

select
    anonymous_id,
    user_id,
    person_id,
    linked_at,
    link_event_id,
    link_type,
    current_timestamp as transformed_at
from final
{%- if is_incremental() %}
    -- Only what is new or changed since the last run.
    where not exists (
        select 1 from {{ this }} as previous
        where
            previous.anonymous_id = final.anonymous_id
            and previous.user_id = final.user_id
            and previous.person_id = final.person_id
            and previous.link_event_id = final.link_event_id
    )
{%- endif %}
