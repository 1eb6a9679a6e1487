"""A failing events_load run raises an alert through TrackwayAlertNotifier: a file line and a webhook POST."""

from __future__ import annotations

import importlib.util
import json
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def webhook():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_failed_load_alerts(trackway_env, airflow_db, webhook, monkeypatch):
    url, received = webhook
    monkeypatch.setenv("TRACKWAY_ALERT_WEBHOOK_URL", url)
    monkeypatch.setenv("TRACKWAY_TASK_RETRIES", "0")
    # A warehouse nobody listens on: the load fails the way an outage would.
    monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", f"postgresql://trackway:x@127.0.0.1:{_closed_port()}/warehouse")
    spec = importlib.util.spec_from_file_location("dag_events_load_alerts", REPO_ROOT / "dags" / "events_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    run = module.events_load().test(logical_date=datetime(2026, 11, 22, 11, tzinfo=UTC))
    assert run.state == "failed"
    lines = [json.loads(line) for line in (trackway_env / "alerts.ndjson").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["dag_id"] == "events_load"
    assert lines[0]["task_id"] == "load_raw_objects" and "Connection refused" in lines[0]["error"]
    assert "events_load.load_raw_objects failed" in lines[0]["text"]
    assert received == lines


def test_a_load_with_a_damaged_object_commits_the_rest_then_fails_and_alerts(trackway_env, airflow_db, monkeypatch):
    """The load task succeeds (its good objects feed the transform); check_load fails and the notifier alerts."""
    from raw_files import event, hour_dir, write_gz_lines

    monkeypatch.setenv("TRACKWAY_TASK_RETRIES", "0")
    folder = hour_dir(trackway_env / "raw", "2026-11-22", 10)
    write_gz_lines(folder / "good.ndjson.gz", [json.dumps(event(f"g-{i}")) for i in range(50)])
    torn = write_gz_lines(folder / "torn.ndjson.gz", [json.dumps(event(f"t-{i}")) for i in range(50)])
    torn.write_bytes(torn.read_bytes()[:-30])
    spec = importlib.util.spec_from_file_location("dag_events_load_damaged", REPO_ROOT / "dags" / "events_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    run = module.events_load().test(logical_date=datetime(2026, 11, 22, 11, tzinfo=UTC))
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"load_raw_objects": "success", "check_load": "failed"}
    lines = [json.loads(line) for line in (trackway_env / "alerts.ndjson").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["task_id"] == "check_load"
    assert "1 damaged object(s)" in lines[0]["error"] and "torn.ndjson.gz" in lines[0]["error"]
