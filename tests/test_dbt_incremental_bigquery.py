"""On BigQuery too, analytics.* built incrementally equals a --full-refresh of the same raw data.

The three loads of tests/test_dbt_incremental.py (duplicates across runs, late events that merge
and extend sessions, identifies, aliases, a loop, a week-late copy) go into raw.events_raw on
bqemulator; dbt-bigquery (the dbt environment, adr/0007) builds after each one with MERGE, whose
partition floor (macros/bigquery.sql) must not make a merge miss its target row: a miss would add
a second copy of an event or session, which the full refresh does not have.
"""

from __future__ import annotations

import json

import pytest

from bigquery_stack import bigquery_stack
from dbt_helpers import INSERT_RAW, raw_row
from test_dbt_incremental import BATCHES, LOADS, MARTS, RUN_COLUMNS
from trackway.config import load_settings
from trackway.transform.dbt_runner import run_dbt
from trackway.warehouse import open_warehouse

pytestmark = pytest.mark.slow


def _snapshot(wh) -> dict[str, list[str]]:
    out = {}
    for table in MARTS:
        names, rows = wh.query_with_headers(f"SELECT * FROM analytics.{table}", limit=100_000)
        out[table] = sorted(
            json.dumps({k: v for k, v in zip(names, row, strict=True) if k not in RUN_COLUMNS}, default=str)
            for row in rows
        )
    return out


def test_full_refresh_equals_the_incremental_runs_on_bigquery(tmp_path, trackway_env, monkeypatch):
    with bigquery_stack(tmp_path / "stack") as stack:
        for key, value in stack.env("incremental").items():
            monkeypatch.setenv(key, value)
        settings = load_settings()
        with open_warehouse(settings.warehouse) as wh:
            wh.ensure_raw_tables()
        for index, batch in enumerate(BATCHES):
            rows = [
                raw_row(line, f"gs://lake/batch-{index}", n, f"load-{index}", LOADS[index])
                for n, line in enumerate(batch, 1)
            ]
            with open_warehouse(settings.warehouse) as wh:
                for row in rows:
                    wh.query(INSERT_RAW.replace("%s", "?"), row)
            report = run_dbt(settings, "build", "--exclude", "resource_type:unit_test")
            assert report.success and report.tests_failed == 0, report.summary()
        with open_warehouse(settings.warehouse) as wh:
            incremental = _snapshot(wh)
            events = wh.query("SELECT count(*), count(DISTINCT event_id) FROM analytics.events")[0]
        assert events[0] == events[1] > 0  # one row per messageId across the merges
        assert run_dbt(settings, "build", "--full-refresh", "--exclude", "resource_type:unit_test").success
        with open_warehouse(settings.warehouse) as wh:
            full_refresh = _snapshot(wh)
    for table in MARTS:
        assert incremental[table] == full_refresh[table], table
