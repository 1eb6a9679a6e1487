"""Alerts: a failing events_load run alerts through TrackwayAlertNotifier (a file line and a webhook POST), and
send_alert posts to Slack through Airflow's Slack provider beside the other channels."""

from __future__ import annotations

import importlib.util
import json
import logging
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

# Airflow sets up its logging when first imported: here, at collection, so that every test's caplog sees it
from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Endpoint:
    """A loopback HTTP endpoint that answers every POST with one status and records what it got."""

    url: str
    bodies: list[dict] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@pytest.fixture
def endpoint():
    """``endpoint(status, body)`` starts one; all stop at the end of the test."""
    servers: list[HTTPServer] = []

    def start(status: int = 204, answer: bytes = b"") -> Endpoint:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                got.paths.append(self.path)
                got.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        server = HTTPServer(("127.0.0.1", 0), Handler)
        got = Endpoint(f"http://127.0.0.1:{server.server_address[1]}")
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return got

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def webhook(endpoint):
    hook = endpoint(204)
    return f"{hook.url}/hook", hook.bodies


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


# The incoming webhook's token: the Airflow connection's password, never in Trackway's settings, logs or alerts.
SLACK_TOKEN = "T0TRACKWAY/B0ALERTS/s3cr3tW3bh00kT0k3n"


def _slack_connection(monkeypatch, url: str, **more: str) -> None:
    """An Airflow connection defined the way a deployment may: ``AIRFLOW_CONN_<ID>`` as JSON."""
    connection = {"conn_type": "slackwebhook", "host": url, "password": SLACK_TOKEN, **more}
    monkeypatch.setenv("AIRFLOW_CONN_TRACKWAY_SLACK", json.dumps(connection))
    monkeypatch.setenv("TRACKWAY_ALERT_SLACK_CONN_ID", "trackway_slack")


def _alert():
    from trackway.orchestration.alerts import Alert

    return Alert(
        key="events_load.load_raw_objects@2026-11-22T11",
        text="Trackway: events_load.load_raw_objects failed for manual__1: <!channel> <https://evil.example|click>",
        severity="fail",
        runbook="task-failed",
        details={
            "dag_id": "events_load",
            "run_id": "manual__1",
            "task_id": "load_raw_objects",
            "error": "connection refused",
            "failure": None,
        },
    )


def _no_token_in(caplog, capfd, home: Path) -> None:
    """Neither Python's logging nor what went to stdout/stderr (Airflow's hook loggers are structlog's)."""
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert "s3cr3tW3bh00kT0k3n" not in text
    assert "s3cr3tW3bh00kT0k3n" not in (home / "alerts.ndjson").read_text()


def test_slack_alert_through_the_airflow_connection(trackway_env, endpoint, monkeypatch, caplog, capfd):
    """The loopback server stands in for hooks.slack.com (no internet here): SlackWebhookHook posts
    to the connection's host plus its token, as it would to Slack's incoming-webhook endpoint."""
    from trackway.orchestration.alerts import send_alert

    caplog.set_level(logging.DEBUG)
    slack = endpoint(200, b"ok")
    _slack_connection(monkeypatch, slack.url)
    monkeypatch.setenv("TRACKWAY_RUNBOOK_URL", "https://docs.example.com/runbook/")
    at = datetime(2026, 11, 22, 12, tzinfo=UTC)

    assert send_alert(_alert(), now=at) is True
    assert slack.paths == [f"/{SLACK_TOKEN}"]
    body = slack.bodies[0]
    # Client text cannot mention @channel nor hide a link: Slack's control characters are escaped.
    assert body["text"] == (
        "Trackway: events_load.load_raw_objects failed for manual__1: &lt;!channel&gt; "
        "&lt;https://evil.example|click&gt; (what to do: https://docs.example.com/runbook/#task-failed)"
    )
    blocks = body["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "section", "section", "section", "context"]
    assert blocks[0]["text"] == {"type": "plain_text", "text": ":red_circle: Trackway fail", "emoji": True}
    assert blocks[1]["text"]["type"] == "plain_text" and "<!channel>" in blocks[1]["text"]["text"]
    assert [f["text"] for f in blocks[2]["fields"]] == [
        "*dag_id*\nevents_load",
        "*run_id*\nmanual__1",
        "*task_id*\nload_raw_objects",
    ]
    assert blocks[3]["text"]["text"] == "Error: connection refused"
    assert blocks[4]["text"] == {
        "type": "mrkdwn",
        "text": "*What to do:* <https://docs.example.com/runbook/#task-failed|the runbook>",
    }
    assert blocks[5]["elements"][0]["text"].startswith("events_load.load_raw_objects@2026-11-22T11 · 2026-11-22T12")

    # The same problem an hour later is held back for Slack too (TRACKWAY_ALERT_REPEAT_HOURS, shared by all channels).
    assert send_alert(_alert(), now=at + timedelta(hours=1)) is False
    assert len(slack.bodies) == 1
    _no_token_in(caplog, capfd, trackway_env)


@pytest.mark.parametrize("slack_down", ["500", "unreachable", "not http"])
def test_a_failing_slack_does_not_stop_the_other_channels(
    trackway_env, endpoint, webhook, monkeypatch, caplog, capfd, slack_down
):
    """The loopback server stands in for hooks.slack.com (no internet here), answering 500; or nothing listens;
    or the connection's scheme is not http(s).

    Unreachable: slack_sdk retries and would log the webhook URL, token included; Trackway silences it.
    Not http: slack_sdk's error holds the URL, token included; Trackway's log line masks it.
    """
    from trackway.orchestration.alerts import send_alert

    caplog.set_level(logging.DEBUG)
    url, received = webhook
    monkeypatch.setenv("TRACKWAY_ALERT_WEBHOOK_URL", url)
    if slack_down == "500":
        _slack_connection(monkeypatch, endpoint(500, b"internal_error").url)
    elif slack_down == "unreachable":
        _slack_connection(monkeypatch, f"http://127.0.0.1:{_closed_port()}")
    else:
        _slack_connection(monkeypatch, "127.0.0.1", schema="ftp")

    assert send_alert(_alert(), now=datetime(2026, 11, 22, 12, tzinfo=UTC)) is True
    lines = [json.loads(line) for line in (trackway_env / "alerts.ndjson").read_text().splitlines()]
    assert len(lines) == 1 and [r["key"] for r in received] == [line["key"] for line in lines]
    failed = [r.getMessage() for r in caplog.records if "could not post the alert to Slack" in r.getMessage()]
    assert len(failed) == 1 and "'trackway_slack'" in failed[0] and "alerts.ndjson" in failed[0]
    why = {"500": "Status Code: 500", "unreachable": "Connection refused", "not http": "Invalid URL detected: ***"}
    assert why[slack_down] in failed[0]
    _no_token_in(caplog, capfd, trackway_env)


def test_a_missing_slack_connection_says_so(trackway_env, monkeypatch, caplog):
    from trackway.orchestration.alerts import send_alert

    monkeypatch.setenv("TRACKWAY_ALERT_SLACK_CONN_ID", "no_such_connection")
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_CONNECTION", raising=False)
    assert send_alert(_alert(), now=datetime(2026, 11, 22, 12, tzinfo=UTC)) is True
    assert "could not post the alert to Slack through Airflow connection 'no_such_connection'" in caplog.text
    assert (trackway_env / "alerts.ndjson").read_text().count("\n") == 1


def test_the_webhook_shows_client_text_as_text(trackway_env, webhook, monkeypatch):
    """A ``<!channel>`` or a disguised link in an event name or an error pings no one through a chat webhook:
    the webhook's ``text`` is escaped as Slack and Mattermost read it; alerts.ndjson keeps the text as it was."""
    from trackway.orchestration.alerts import send_alert

    url, received = webhook
    monkeypatch.setenv("TRACKWAY_ALERT_WEBHOOK_URL", url)
    assert send_alert(_alert(), now=datetime(2026, 11, 22, 12, tzinfo=UTC)) is True
    [body] = received
    assert "&lt;!channel&gt; &lt;https://evil.example|click&gt;" in body["text"]
    assert "<" not in body["text"] and ">" not in body["text"]
    [line] = [json.loads(x) for x in (trackway_env / "alerts.ndjson").read_text().splitlines()]
    assert "<!channel>" in line["text"]
    assert {k: v for k, v in body.items() if k != "text"} == {k: v for k, v in line.items() if k != "text"}
