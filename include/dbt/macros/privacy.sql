{#
    Rows of the marts that name an erased subject (docs/privacy.md). The warehouse never
    hashes: privacy.id_hashes maps each id to its keyed hash, computed in Python at load,
    and privacy.erased_subjects names the hashes and their drop intervals. analytics.events
    is checked against every interval by received_at; the other marts (no arrival time)
    against the subjects none of whose events may exist: a deletion pending, or done and
    suppressed since (suppress_with_delete). A delete_only's later events are new data, and
    a suppress_only keeps what came before. Selects nothing where no erasure request was
    ever made (no privacy tables).
#}
{% macro erased_subject_rows() %}
    {%- set marts = [
        ('events', ['user_id', 'anonymous_id', 'previous_id', 'person_id'], 'received_at'),
        ('events_rejected', ['user_id', 'anonymous_id'], none),
        ('sessions', ['anonymous_id', 'user_id', 'person_id'], none),
        ('users', ['user_id', 'person_id'], none),
        ('identity_map', ['anonymous_id', 'user_id', 'person_id'], none),
        ('experiment_assignments', ['person_id'], none),
    ] -%}
    {%- set erased = source('privacy', 'erased_subjects') -%}
    {%- set hashes = source('privacy', 'id_hashes') -%}
    {%- set ready = execute and load_relation(erased) is not none and load_relation(hashes) is not none -%}
    {%- set selects = [] -%}
    {%- for model, columns, arrived in marts -%}
        {%- for column in columns -%}
            {%- set when -%}
                {%- if arrived -%}
                    (e.drop_from is null or m.{{ arrived }} >= e.drop_from)
                    and (e.drop_until is null or m.{{ arrived }} < e.drop_until)
                {%- else -%}
                    e.drop_from is null and (e.drop_until is null or e.suppressed)
                {%- endif -%}
            {%- endset -%}
            {%- do selects.append(
                "select '" ~ model ~ "' as mart, '" ~ column ~ "' as id_column, e.subject_hash as subject_hash"
                ~ " from " ~ ref(model) ~ " as m"
                ~ " inner join " ~ hashes ~ " as h on m." ~ column ~ " = h.id"
                ~ " inner join " ~ erased ~ " as e on h.id_hash = e.subject_hash"
                ~ " where " ~ when
            ) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if ready %}
        {{ selects | join('\nunion all\n') }}
    {%- else %}
        select
            cast(null as {{ dbt.type_string() }}) as mart,
            cast(null as {{ dbt.type_string() }}) as id_column,
            cast(null as {{ dbt.type_string() }}) as subject_hash
        from {{ ref('events') }}
        where 1 = 0
    {%- endif %}
{% endmacro %}
