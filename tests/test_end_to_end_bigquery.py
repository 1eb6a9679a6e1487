"""Segment SDK → collector → gs:// (fake-gcs-server) → events_load (BigQuery load jobs) →
events_transform (dbt-bigquery, one watched build: adr/0040) → analytics.events on bqemulator, exactly once.

The same DAG files as on DuckDB and PostgreSQL: only TRACKWAY_RAW_URL and
TRACKWAY_WAREHOUSE_URL change. Emulator workarounds: tests/bq_emulator.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bigquery_stack import bigquery_stack
from collector_helpers import WRITE_KEYS, CollectorProcess, read_lines
from gcs_emulator import gcs_env
from test_end_to_end import _assert_health_sees_the_transform, _load_dag, _send_through_sdk
from trackway.config import load_settings
from trackway.objectstore import open_object_store
from trackway.rawdata.partitions import hour_floor, hours_between
from trackway.transform.manifest import compile_manifest
from trackway.warehouse import open_warehouse

pytestmark = [pytest.mark.slow, pytest.mark.bigquery]


def test_sdk_to_analytics_events_on_bigquery(tmp_path, trackway_env, own_asset_events, monkeypatch):
    with bigquery_stack(tmp_path / "stack") as stack:
        env = stack.env("e2e")
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("TRACKWAY_WRITE_KEYS", ",".join(f"{s}:{k}" for k, s in WRITE_KEYS.items()))
        compile_manifest(load_settings())  # `trackway transform compile` (dbt-bigquery's parse, no connection)
        started = hour_floor(datetime.now(UTC))
        collector = CollectorProcess(
            trackway_env, TRACKWAY_RAW_URL=env["TRACKWAY_RAW_URL"], **gcs_env(stack.gcs.endpoint)
        ).start()
        try:
            sent, failed = _send_through_sdk(collector.port, "key-web")
        finally:
            assert collector.stop() == 0  # SIGTERM: flush, upload to gs://, exit 0
        assert failed == []
        settings = load_settings()
        store = open_object_store(settings.raw_url, gcs_client=stack.gcs.client())
        assert len(read_lines(store, "events/")) == len(sent) + 1  # the client's retry is in raw too

        finished = hour_floor(datetime.now(UTC))
        load_dag = _load_dag("events_load")
        for hour in hours_between(started, finished + timedelta(hours=1)):
            assert load_dag.test(logical_date=hour + timedelta(hours=1)).state == "success"
        transform = _load_dag("events_transform")
        run = transform.test()
        assert run.state == "success"
        # dbt-bigquery runs from .dbt-venv, a process per dbt: by default one watched build (adr/0040),
        # whose result every model's run and tests tasks report.
        states = {ti.task_id: ti.state for ti in run.get_task_instances()}
        assert states["dbt.dbt_producer_watcher"] == "success"
        assert states["dbt.events.run"] == states["dbt.events.test"] == states["dbt.sessions.test"] == "success"
        _assert_health_sees_the_transform()

        with open_warehouse(settings.warehouse) as wh:
            ids = [r[0] for r in wh.query("SELECT event_id FROM analytics.events")]
            raw_rows = wh.query("SELECT count(*), count(DISTINCT source_object) FROM raw.events_raw")[0]
            ledger = wh.query("SELECT count(*) FROM raw.loaded_objects")[0][0]
            types = dict(wh.query("SELECT event_type, count(*) FROM analytics.events GROUP BY 1"))
        assert sorted(ids) == sorted(sent), "every acknowledged event exactly once in analytics.events"
        assert raw_rows[0] == len(sent) + 1 and ledger == raw_rows[1] >= 1
        # _send_through_sdk (test_end_to_end) sends 3 pages since the transform work added two anon-9 pages.
        assert types == {"track": 31, "page": 3, "screen": 1, "identify": 1, "group": 1, "alias": 1}
