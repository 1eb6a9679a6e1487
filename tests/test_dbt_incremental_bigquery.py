"""On BigQuery too, analytics.* built incrementally equals a --full-refresh of the same raw data.

The three loads of tests/test_dbt_incremental.py (duplicates across runs, late events that merge
and extend sessions, identifies, aliases, a loop, a week-late copy) go into raw.events_raw on
bqemulator; dbt-bigquery (the dbt environment, adr/0007) builds incrementally with MERGE, whose
partition floor (macros/bigquery.sql) must not make a merge miss its target row: a miss would add
a second copy of an event or session, which the full refresh does not have. Beside them, the
cross-source messageId collisions of tests/test_dbt_source_dedup.py: each source keeps its message,
with the same source-scoped event_ids as on DuckDB and PostgreSQL.
"""

from __future__ import annotations

import json

import pytest

from bigquery_stack import bigquery_stack, insert_raw_rows
from dbt_helpers import raw_row
from test_dbt_incremental import BATCHES, LOADS, MARTS, RUN_COLUMNS
from test_dbt_source_dedup import BATCHES as COLLISIONS
from test_dbt_source_dedup import FORGED, scoped_id
from test_dbt_source_dedup import LOADED as COLLISIONS_LOADED
from trackway.config import load_settings
from trackway.transform.dbt_runner import run_dbt
from trackway.warehouse import open_warehouse

pytestmark = [pytest.mark.slow, pytest.mark.bigquery]


def _snapshot(wh, tables: list[str] = MARTS) -> dict[str, list[str]]:
    out = {}
    for table in tables:
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
        # Two incremental builds: the first load, then the second and third together (the third's
        # week-late copy and alias loop still arrive after the first run; one dbt-bigquery build fewer).
        # The collisions: the browser's m-1 in the first, backend's m-1 (and the in-batch ones) in the second.
        for loads, collisions in (([0], [1]), ([1, 2], [2])):
            rows = [
                raw_row(line, f"gs://lake/batch-{index}", n, f"load-{index}", LOADS[index])
                for index in loads
                for n, line in enumerate(BATCHES[index], 1)
            ] + [
                raw_row(line, f"gs://lake/collisions-{index}", n, f"collisions-{index}", COLLISIONS_LOADED[index])
                for index in collisions
                for n, line in enumerate(COLLISIONS[index], 1)
            ]
            insert_raw_rows(settings.warehouse, rows)
            report = run_dbt(settings, "build", "--exclude", "resource_type:unit_test")
            assert report.success and report.tests_failed == 0, report.summary()
        # The second build MERGEd events and sessions with a partition floor in a script variable
        # (macros/bigquery.sql), so that BigQuery prunes the target's old partitions.
        for model, column in (("events", "event_date"), ("sessions", "session_date")):
            merge = next((trackway_env / "dbt" / "target" / "run").rglob(f"marts/{model}.sql")).read_text()
            assert "declare trackway_merge_floor date default" in merge, merge
            assert f"DBT_INTERNAL_DEST.{column} >= trackway_merge_floor" in merge, merge
        with open_warehouse(settings.warehouse) as wh:
            incremental = _snapshot(wh)
            events = wh.query("SELECT count(*), count(DISTINCT event_id) FROM analytics.events")[0]
            collided = wh.query(
                "SELECT source_id, event_id FROM analytics.events WHERE source_object = 'gs://lake/collisions-2' "
                "ORDER BY line_number"
            )
        assert events[0] == events[1] > 0  # one row per (source, messageId) across the merges
        assert [tuple(row) for row in collided] == [
            ("backend", scoped_id("backend", "m-1")),
            ("backend", "m-5"),
            ("web", scoped_id("web", "m-5")),
            ("web", scoped_id("web", FORGED)),
            ("web", "m-7"),
            ("backend", scoped_id("backend", "m-7")),
        ]
        assert run_dbt(settings, "build", "--full-refresh", "--exclude", "resource_type:unit_test").success
        with open_warehouse(settings.warehouse) as wh:
            full_refresh = _snapshot(wh)
    for table in MARTS:
        assert incremental[table] == full_refresh[table], table
