"""The read-only copy of a DuckDB warehouse that BI tools open (adr/0032-superset-reads-a-snapshot.md).

DuckDB allows one writing process or many readers, never both: a BI server holding the
warehouse open would stop the next load or dbt run, and dbt would stop the dashboards.
So after each transform the warehouse is checkpointed and copied while this process holds
the write lock (no writer can change it mid-copy), and the copy replaces the previous
snapshot with an atomic rename: a reader opens either the old file or the new one, never a
half-written one. The copy keeps the warehouse's file name, because DuckDB names the
catalog after it and dbt-duckdb's views refer to ``"<catalog>".analytics...``.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from trackway.config import WarehouseTarget

SNAPSHOT_DIR = "bi"


@dataclass(frozen=True)
class Snapshot:
    path: Path
    bytes: int
    seconds: float

    def line(self) -> str:
        return f"BI snapshot {self.path} ({self.bytes / 1e6:.1f} MB) in {self.seconds:.1f}s"


def snapshot_path(target: WarehouseTarget, home: Path) -> Path | None:
    """Where BI reads ``target`` from: a copy under ``home/bi/`` for DuckDB; None (the database itself) otherwise."""
    if target.kind != "duckdb" or target.duckdb_path is None:
        return None
    return home / SNAPSHOT_DIR / target.duckdb_path.name


def publish_snapshot(target: WarehouseTarget, home: Path) -> Snapshot | None:
    """Checkpoint the DuckDB warehouse, copy it under its write lock, and rename the copy into place.

    None for PostgreSQL and BigQuery: BI tools read those directly, as the read-only role.
    """
    destination = snapshot_path(target, home)
    if destination is None:
        return None
    from trackway.warehouse.duckdb_warehouse import DuckDBWarehouse

    assert target.duckdb_path is not None
    source = target.duckdb_path
    if not source.exists():
        raise FileNotFoundError(f"no DuckDB warehouse at {source}; run a load and a transform first (make demo)")
    started = time.monotonic()
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.{os.getpid()}.partial")
    warehouse = DuckDBWarehouse(source, lock_wait_seconds=target.duckdb_lock_wait_seconds)
    try:
        warehouse.con.execute("CHECKPOINT")  # everything in the main file, the WAL empty
        with open(source, "rb") as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst, length=16 * 1024 * 1024)
            dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        warehouse.close()
    os.chmod(partial, 0o444)  # a snapshot is never written; read-only on disk too
    os.replace(partial, destination)
    directory = os.open(destination.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename survives a crash
    finally:
        os.close(directory)
    return Snapshot(destination, destination.stat().st_size, time.monotonic() - started)
