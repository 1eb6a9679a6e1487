"""Erasure requests: the ledger, the runs that apply them everywhere, and their verification.

A capability beside the collector, the loader and the transform (adr/0026-erasure-requests.md):
it uses the warehouse and object-store seams, never the loader or dbt. ``trackway privacy``
(cli/privacy.py) and the ``privacy`` DAG call ``trackway.privacy.runs``.
"""
