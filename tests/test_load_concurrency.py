"""Concurrent loads of one hour on DuckDB and BigQuery: never a crash, never an object loaded twice (issue 15).

DuckDB allows one writing process per file: a second `trackway load` waits for the
first, then finds the objects in the ledger; one that waits longer than
TRACKWAY_DUCKDB_LOCK_WAIT_SECONDS stops with "warehouse busy" (exit code 75, the
Airflow task retries) and writes nothing. BigQuery has no such lock: two loads can
both find an object new, so its apply transaction takes raw.load_lock and
chooses, inside the transaction, what the ledger still lacks
(trackway.warehouse.bigquery_warehouse). PostgreSQL's advisory lock is tested in
tests/test_load_faults.py.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from raw_files import event, hour_dir, write_gz_lines
from trackway.config import load_settings
from trackway.load.loader import load_interval
from trackway.warehouse import WarehouseBusy, open_warehouse

HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)
OBJECTS, LINES = 4, 500
SUMMARY = re.compile(r"\((\d+) loaded, (\d+) already loaded\)")


def _cli(*args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "trackway.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def _loaded(stdout: str) -> int:
    """Objects this run loaded itself, from its summary line."""
    match = SUMMARY.search(stdout)
    assert match, stdout
    return int(match.group(1))


# -- DuckDB ------------------------------------------------------------------------------


@pytest.fixture
def duckdb_hour(trackway_env) -> Path:
    folder = hour_dir(trackway_env / "raw", "2026-11-22", 10)
    for n in range(OBJECTS):
        write_gz_lines(folder / f"part-{n}.ndjson.gz", [json.dumps(event(f"c-{n}-{i}")) for i in range(LINES)])
    return trackway_env / "warehouse.duckdb"


class _Holder:
    """Another process holding the DuckDB file, as a running transform or load does."""

    def __init__(self, path: Path) -> None:
        code = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.read()"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "held"

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(60)


def _counts(path: Path) -> tuple[int, int, int]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute("SELECT count(*), count(DISTINCT message_id) FROM raw.events_raw").fetchone()
        ledger = con.execute("SELECT count(*) FROM raw.loaded_objects").fetchone()
    assert rows is not None and ledger is not None
    return rows[0], rows[1], ledger[0]


def test_two_loads_at_once_on_duckdb_take_turns_and_load_each_object_once(duckdb_hour):
    """Both start while a third process holds the file, so both are waiting when it lets go."""
    holder = _Holder(duckdb_hour)
    try:
        loads = [_cli("load", "--hour", "2026-11-22T10"), _cli("load", "--hour", "2026-11-22T10", "--reload")]
        for proc in loads:  # each has listed the hour and is now waiting for the warehouse
            assert proc.stdout is not None and proc.stdout.readline().startswith("load ")
    finally:
        holder.release()
    results = [proc.communicate(timeout=300) for proc in loads]
    for proc, (_out, err) in zip(loads, results, strict=True):
        assert proc.returncode == 0 and "Traceback" not in err, err
    assert _counts(duckdb_hour) == (OBJECTS * LINES, OBJECTS * LINES, OBJECTS)
    # The plain load skips what the reload committed first; the reload replaces what the other committed.
    assert _loaded(results[1][0]) == OBJECTS and _loaded(results[0][0]) in (0, OBJECTS)


def test_a_load_that_cannot_get_the_warehouse_says_busy_and_writes_nothing(duckdb_hour, monkeypatch):
    monkeypatch.setenv("TRACKWAY_DUCKDB_LOCK_WAIT_SECONDS", "1")
    holder = _Holder(duckdb_hour)
    try:
        out, err = (proc := _cli("load", "--hour", "2026-11-22T10")).communicate(timeout=120)
        # The Airflow task runs load_interval: WarehouseBusy fails it, and Airflow retries it (dag_defaults).
        with pytest.raises(WarehouseBusy, match="is busy"):
            load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1))
    finally:
        holder.release()
    assert proc.returncode == 75, (out, err)  # EX_TEMPFAIL, distinct from a failed load (1)
    assert "warehouse" in err and "is busy" in err and "Retry" in err and "Traceback" not in err, err
    import duckdb

    with duckdb.connect(str(duckdb_hour), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'raw'").fetchone() == (0,)
    report = load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1))  # the retry
    assert report.objects_loaded == OBJECTS
    assert _counts(duckdb_hour) == (OBJECTS * LINES, OBJECTS * LINES, OBJECTS)


# -- BigQuery (bqemulator + fake-gcs-server) ---------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from bigquery_stack import bigquery_stack

    with bigquery_stack(tmp_path_factory.mktemp("bq-concurrency")) as s:
        yield s


@pytest.fixture
def bq_hour(stack, trackway_env, monkeypatch, request) -> list[str]:
    """OBJECTS objects of one hour in fake GCS, a BigQuery warehouse of this test's own; their URLs."""
    from trackway.objectstore import open_object_store

    prefix = "t_" + request.node.name.replace("test_", "")[:20]
    for key, value in stack.env(prefix).items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    store = open_object_store(settings.raw_url, gcs_client=stack.gcs.client())
    keys = [f"events/dt=2026-11-22/hour=10/part-{n}.ndjson.gz" for n in range(OBJECTS)]
    for n, key in enumerate(keys):
        body = b"".join(json.dumps(event(f"c-{n}-{i}")).encode() + b"\n" for i in range(LINES))
        store.put_bytes(key, gzip.compress(body, mtime=0))
    with open_warehouse(settings.warehouse) as wh:
        wh.ensure_raw_tables()
    return [f"{settings.raw_url}/{key}" for key in keys]


def _bq_state(settings) -> tuple[tuple[int, int], list[str]]:
    with open_warehouse(settings.warehouse) as wh:
        rows = wh.query("SELECT count(*), count(DISTINCT message_id) FROM raw.events_raw")[0]
        load_ids = [r[0] for r in wh.query("SELECT DISTINCT load_id FROM raw.loaded_objects")]
        assert wh.query("SELECT count(*), count(DISTINCT source_object) FROM raw.loaded_objects") == [
            (OBJECTS, OBJECTS)
        ]
    return (rows[0], rows[1]), load_ids


def _pending(urls: list[str]):
    from trackway.rawdata.records import PendingObject
    from trackway.rawdata.schema import EVENTS_RAW_TABLE

    return [PendingObject(url=u, fingerprint="v1", size_bytes=1, table=EVENTS_RAW_TABLE) for u in urls]


@pytest.mark.bigquery
def test_a_second_load_that_found_the_objects_new_does_not_load_them_again_on_bigquery(bq_hour):
    """The window of a concurrent load, in order: both read the ledger, then one applies, then the other.

    Before, the second applied the objects again (a replace when the applies came one after
    the other, duplicate rows when BigQuery ran the two append-only transactions side by side).
    """
    settings = load_settings()
    pending = _pending(bq_hour)
    with open_warehouse(settings.warehouse) as first, open_warehouse(settings.warehouse) as second:
        assert first.loaded_fingerprints(bq_hour) == {} == second.loaded_fingerprints(bq_hour)  # both: all new
        assert len(first.load_in_place(pending, load_id="load-first")) == OBJECTS
        assert second.load_in_place(pending, load_id="load-second") == []
        assert _bq_state(settings) == ((OBJECTS * LINES, OBJECTS * LINES), ["load-first"])
        # A reload still loads them again, once.
        reloaded = second.load_in_place([replace(p, replace=True) for p in pending], load_id="load-reload")
        assert len(reloaded) == OBJECTS
    assert _bq_state(settings) == ((OBJECTS * LINES, OBJECTS * LINES), ["load-reload"])


@pytest.mark.bigquery
def test_an_apply_bigquery_cancels_for_a_concurrent_one_is_run_again_and_skips_what_that_one_loaded(
    bq_hour, monkeypatch
):
    """BigQuery cancels a transaction that mutates a table (raw.load_lock) another running one mutates.

    bqemulator runs scripts one at a time and never cancels one, so the cancellation is injected
    here: the first apply of the second load fails with BigQuery's message after the other load
    committed, as it would have overlapped it. The retry finds the objects in the ledger.
    """
    from google.api_core.exceptions import BadRequest

    from trackway.warehouse import bigquery_warehouse

    monkeypatch.setattr(bigquery_warehouse, "APPLY_RETRY_PAUSES", (0.0,), raising=False)
    settings = load_settings()
    pending = _pending(bq_hour)
    with open_warehouse(settings.warehouse) as first, open_warehouse(settings.warehouse) as second:
        query, cancelled = second.client.query, []

        def query_cancelled_once(sql, *args, **kwargs):
            if "BEGIN TRANSACTION" in sql and not cancelled:
                cancelled.append(first.load_in_place(pending, load_id="load-first"))
                raise BadRequest("Transaction is aborted due to concurrent update against table load_lock")
            return query(sql, *args, **kwargs)

        monkeypatch.setattr(second.client, "query", query_cancelled_once)
        assert second.load_in_place(pending, load_id="load-second") == []
    assert len(cancelled[0]) == OBJECTS
    assert _bq_state(settings) == ((OBJECTS * LINES, OBJECTS * LINES), ["load-first"])
