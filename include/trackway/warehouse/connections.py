"""Credentials kept in Airflow connections, resolved for the backends that need them.

The one place in the warehouse package that touches Airflow (its Google
provider), so the backends stay usable without an Airflow installation and
the collector-side layers never pull Airflow in through a warehouse import.
"""

from __future__ import annotations

from typing import Any


def google_credentials(conn_id: str) -> Any:
    """google-auth credentials of a ``google_cloud_platform`` connection (TRACKWAY_WAREHOUSE_CONN_ID)."""
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

    return GoogleBaseHook(gcp_conn_id=conn_id).get_credentials()
