"""Open the configured warehouse: ``open_warehouse(settings.warehouse)``."""

from __future__ import annotations

from trackway.config import WarehouseTarget
from trackway.warehouse.base import RAW_COLUMNS, LoadRun, ObjectLoad, Warehouse, WarehouseBusy

__all__ = ["RAW_COLUMNS", "LoadRun", "ObjectLoad", "Warehouse", "WarehouseBusy", "open_warehouse"]


def open_warehouse(target: WarehouseTarget, *, read_only: bool = False) -> Warehouse:
    if target.kind == "duckdb":
        from trackway.warehouse.duckdb_warehouse import DuckDBWarehouse

        assert target.duckdb_path is not None, "WarehouseTarget.parse sets the path for duckdb URLs"
        return DuckDBWarehouse(target.duckdb_path, read_only=read_only)
    if target.kind == "postgres":
        from trackway.warehouse.postgres_warehouse import PostgresWarehouse

        return PostgresWarehouse(target)
    if target.kind == "bigquery":
        from trackway.warehouse.bigquery_warehouse import BigQueryWarehouse

        return BigQueryWarehouse(target)
    raise ValueError(f"no warehouse backend for {target.kind!r}")
