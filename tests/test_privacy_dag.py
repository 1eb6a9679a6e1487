"""The privacy DAG: a request that cannot finish fails the run (an alert), and the deadline alert still fires."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from raw_files import event, hour_dir, write_gz_lines
from trackway.config import load_settings
from trackway.privacy.runs import request

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_a_request_near_its_deadline_that_cannot_finish_alerts_twice(trackway_env, airflow_db, monkeypatch):
    monkeypatch.setenv("TRACKWAY_TASK_RETRIES", "0")
    torn = write_gz_lines(
        hour_dir(trackway_env / "raw", "2026-11-22", 10) / "torn.ndjson.gz",
        [json.dumps(event(f"t-{i}", userId="user-late")) for i in range(50)],
    )
    torn.write_bytes(torn.read_bytes()[:-30])  # damaged: it cannot be rewritten safely, so the request cannot finish
    late = request(load_settings(), "delete_only", user_ids=["user-late"], now=datetime.now(UTC) - timedelta(days=25))
    request(load_settings(), "suppress_only", user_ids=["user-done"], now=datetime.now(UTC) - timedelta(days=29))

    spec = importlib.util.spec_from_file_location("dag_privacy", REPO_ROOT / "dags" / "privacy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = module.privacy().test()

    # The run's state follows its last task (the alert, which succeeded): the erasure task failed, and alerted.
    assert {ti.task_id: ti.state for ti in run.get_task_instances()} == {
        "run_requests": "failed",
        "alert_due_requests": "success",
    }
    alerts = [json.loads(line) for line in (trackway_env / "alerts.ndjson").read_text().splitlines()]
    failed, due = sorted(alerts, key=lambda a: a["task_id"], reverse=True)
    assert failed["task_id"] == "run_requests" and "torn.ndjson.gz" in failed["error"]
    assert "retention as of" in failed["error"]  # the daily run applies retention too (docs/privacy.md#retention)
    assert due["request_id"] == late.request_id and "not finished" in due["text"]  # the finished one: no alert
    assert "user-late" not in json.dumps(alerts)


def test_the_erasure_task_opens_the_raw_store_with_its_own_connection(trackway_env, monkeypatch):
    """TRACKWAY_PRIVACY_RAW_CONN_ID is what run_requests rewrites with (tests/test_compose.py drives one through
    MinIO's policies on moto); one that cannot apply to the raw store fails closed, before anything is touched."""
    import pytest

    from trackway.config import ConfigError
    from trackway.orchestration.privacy_tasks import privacy_store, run_requests

    assert privacy_store(load_settings()) is None  # unset: the task's own credentials
    monkeypatch.setenv("TRACKWAY_PRIVACY_RAW_CONN_ID", "trackway_privacy_raw")
    with pytest.raises(ConfigError, match=r"TRACKWAY_PRIVACY_RAW_CONN_ID is set but TRACKWAY_RAW_URL is file://"):
        run_requests(load_settings(), "manual__erasure")
    assert not (trackway_env / "warehouse.duckdb").exists()
