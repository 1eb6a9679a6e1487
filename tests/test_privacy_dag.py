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
