"""Open the warehouse as one job: ``open_warehouse(settings.load_warehouse)``, ``settings.read_warehouse`` ...

On PostgreSQL each job may have its own role (TRACKWAY_*_WAREHOUSE_URL, see ``roles``).

The backends (one module each, behind ``base.Warehouse``) never import Airflow;
credentials kept in an Airflow connection are resolved here, by ``connections``.
"""

from __future__ import annotations

from trackway.config import WarehouseTarget
from trackway.warehouse.base import Warehouse, WarehouseBusy
from trackway.warehouse.connections import google_credentials
from trackway.warehouse.readonly import ReadOnlyQueryError

__all__ = ["ReadOnlyQueryError", "Warehouse", "WarehouseBusy", "open_warehouse"]


def open_warehouse(target: WarehouseTarget, *, read_only: bool = False) -> Warehouse:
    """``read_only``: a connection that cannot write, the only kind ``query_with_headers`` (people's SQL) runs on."""
    if target.kind == "duckdb":
        from trackway.warehouse.duckdb_warehouse import DuckDBWarehouse

        assert target.duckdb_path is not None, "WarehouseTarget.parse sets the path for duckdb URLs"
        return DuckDBWarehouse(
            target.duckdb_path,
            read_only=read_only,
            lock_wait_seconds=target.duckdb_read_wait_seconds if read_only else target.duckdb_lock_wait_seconds,
            memory_limit=target.duckdb_memory(),
        )
    if target.kind == "postgres":
        from trackway.warehouse.postgres_warehouse import PostgresWarehouse

        return PostgresWarehouse(target, read_only=read_only)
    if target.kind == "bigquery":
        from trackway.warehouse.bigquery_warehouse import BigQueryWarehouse

        return BigQueryWarehouse(target, credentials=google_credentials(target.conn_id) if target.conn_id else None)
    raise ValueError(f"no warehouse backend for {target.kind!r}")
