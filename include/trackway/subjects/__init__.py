"""Who events are about, for erasure: keyed subject hashes, the request ledger's records, the sets that filter.

Pure rules and formats (no warehouse, no cloud SDK), below every capability: the
collector (suppression, the regulations API), the loader (the erased-subject filter)
and ``trackway.privacy`` (the ledger and the erasure runs) read subjects the same way
through here. See docs/privacy.md and adr/0026-erasure-requests.md.
"""
