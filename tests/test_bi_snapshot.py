"""The read-only DuckDB snapshot BI reads (trackway.warehouse.snapshot, adr/0032): real DuckDB files and processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from trackway.config import WarehouseTarget
from trackway.warehouse import WarehouseBusy
from trackway.warehouse.snapshot import publish_snapshot, snapshot_path


def _warehouse(tmp_path: Path, rows: int) -> WarehouseTarget:
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA IF NOT EXISTS analytics")
    con.execute("CREATE OR REPLACE TABLE analytics.events AS SELECT range AS n FROM range(?)", [rows])
    # dbt-duckdb's views name the catalog, which is the file's name: the copy must keep it.
    con.execute('CREATE OR REPLACE VIEW analytics.events_view AS SELECT * FROM "warehouse".analytics.events')
    con.close()
    return WarehouseTarget.parse(f"duckdb:///{path}", duckdb_lock_wait_seconds=1)


def _count(path: Path) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM analytics.events_view").fetchone()[0]
    finally:
        con.close()


def test_snapshot_is_a_complete_read_only_copy_replaced_atomically(tmp_path):
    target = _warehouse(tmp_path, 10)
    home = tmp_path / "home"
    first = publish_snapshot(target, home)
    assert first is not None and first.path == snapshot_path(target, home) == home / "bi" / "warehouse.duckdb"
    assert _count(first.path) == 10
    assert not first.path.stat().st_mode & 0o222  # read-only on disk too
    assert [p.name for p in first.path.parent.iterdir()] == ["warehouse.duckdb"]  # no partial copy left

    # A dashboard reading the snapshot does not stop the pipeline from writing the warehouse ...
    reader = duckdb.connect(str(first.path), read_only=True)
    try:
        writer = duckdb.connect(str(target.duckdb_path))
        writer.execute("INSERT INTO analytics.events SELECT range FROM range(10, 25)")  # left in the WAL
        writer.close()
        second = publish_snapshot(target, home)
        assert second is not None
        # ... and the reader keeps the file it opened while the next one replaces it.
        assert reader.execute("SELECT count(*) FROM analytics.events").fetchone()[0] == 10
    finally:
        reader.close()
    assert _count(second.path) == 25


def test_snapshot_waits_for_a_writer_then_gives_up_leaving_the_last_snapshot(tmp_path):
    target = _warehouse(tmp_path, 3)
    home = tmp_path / "home"
    publish_snapshot(target, home)
    hold = textwrap.dedent(
        f"""
        import duckdb, sys
        con = duckdb.connect({str(target.duckdb_path)!r})
        con.execute("INSERT INTO analytics.events VALUES (99)")
        print("holding", flush=True)
        sys.stdin.read()
        """
    )
    writer = subprocess.Popen([sys.executable, "-c", hold], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "holding"
        with pytest.raises(WarehouseBusy, match="busy"):
            publish_snapshot(target, home)
    finally:
        writer.communicate("", timeout=60)
    assert _count(home / "bi" / "warehouse.duckdb") == 3
    assert sorted(p.name for p in (home / "bi").iterdir()) == ["warehouse.duckdb"]


def test_postgres_and_bigquery_have_no_snapshot(tmp_path):
    target = WarehouseTarget.parse("postgresql://reader@127.0.0.1:5432/trackway")
    assert snapshot_path(target, tmp_path) is None and publish_snapshot(target, tmp_path) is None
