"""kill -9 in the middle of a load, then rerun: the table is as if the crash never happened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from raw_files import event, hour_dir, write_gz_lines
from trackway.config import load_settings
from trackway.warehouse import open_warehouse

OBJECTS, LINES = 30, 1000


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_sigkill_mid_load_then_rerun(backend, trackway_env, request, monkeypatch):
    if backend == "postgres":
        from postgres_server import create_database

        monkeypatch.setenv(
            "TRACKWAY_WAREHOUSE_URL", create_database(request.getfixturevalue("postgres_url"), "load_crash")
        )
    folder = hour_dir(trackway_env / "raw", "2026-11-22", 10)
    for n in range(OBJECTS):
        write_gz_lines(folder / f"part-{n:03d}.ndjson.gz", [event(f"m-{n}-{i}") for i in range(LINES)])

    command = [sys.executable, "-m", "trackway.cli", "load", "--hour", "2026-11-22T10"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:  # kill once a few objects are committed, mid-way through the rest
        seen.append(line)
        if f"[4/{OBJECTS}]" in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "already loaded" in rerun.stdout
    skipped = int(rerun.stdout.split(" already loaded")[0].rsplit("(", 1)[1].split()[-1].replace(",", ""))
    assert 4 <= skipped < OBJECTS, rerun.stdout  # the crash really was mid-way

    with open_warehouse(load_settings().warehouse) as wh:
        total, distinct_lines, objects = wh.query(
            "SELECT count(*), count(DISTINCT source_object || ':' || CAST(line_number AS VARCHAR)), "
            "count(DISTINCT source_object) FROM raw.events_raw"
        )[0]
        ledger = wh.query("SELECT count(*), sum(rows_loaded) FROM raw.loaded_objects")[0]
    assert (total, distinct_lines, objects) == (OBJECTS * LINES, OBJECTS * LINES, OBJECTS)
    assert (ledger[0], int(ledger[1])) == (OBJECTS, OBJECTS * LINES)
