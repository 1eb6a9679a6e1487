{#
    Nothing erased comes back: no mart row names a subject of an erasure request
    within its drop interval (trackway.erased_subject_rows, macros/privacy.sql).
    Returns the mart, column and subject hash of each offending row: never an id.
#}

{{ trackway.erased_subject_rows() }}
