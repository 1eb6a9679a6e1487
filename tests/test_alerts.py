"""Alerts: a failing events_load run alerts through TrackwayAlertNotifier (a file line and a webhook POST), and
send_alert posts to Slack through Airflow's Slack provider and mails through its SMTP provider (to a loopback
aiosmtpd relay) beside the other channels."""

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


# The mail relay's password: the Airflow connection's, never in Trackway's logs, alerts or the mail itself.
SMTP_PASSWORD = "sm7pR3layP4ssw0rd"


@dataclass
class Mailbox:
    port: int
    messages: list = field(default_factory=list)  # (envelope sender, envelope recipients, parsed message)
    logins: list = field(default_factory=list)


@pytest.fixture
def mailbox():
    """A loopback SMTP relay (aiosmtpd) that wants a login, standing in for the company's mail server."""
    import email
    import email.policy

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    box = Mailbox(_closed_port())

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
            box.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
            return "250 OK"

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == SMTP_PASSWORD.encode()
        box.logins.append((mechanism, auth_data.login.decode(), ok))
        return AuthResult(success=ok, handled=False)  # a failure answers 535

    relay = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=box.port,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=False,  # loopback only; a real relay would offer STARTTLS
    )
    relay.start()
    yield box
    relay.stop()


def _smtp_connection(monkeypatch, port: int, password: str = SMTP_PASSWORD) -> None:
    """Airflow's ``smtp_default`` the way a deployment defines it: ``AIRFLOW_CONN_SMTP_DEFAULT`` as JSON."""
    extra = {"from_email": "trackway@example.com", "disable_tls": True, "disable_ssl": True, "retry_limit": 0}
    connection = {"conn_type": "smtp", "host": "127.0.0.1", "port": port, "login": "alerts", "password": password}
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({**connection, "extra": extra}))
    monkeypatch.setenv("TRACKWAY_ALERT_EMAIL", "oncall@example.com,data-team@example.com")


def _hostile_alert():
    """An alert whose client-supplied text tries header injection, Jinja and markup."""
    alert = _alert()
    alert.text = "Trackway: event {{ 7 * 7 }} {% raw %}failed\r\nBcc: victim@evil.example\r\n <b>bold</b>"
    alert.details = {**alert.details, "error": "column {{ config }} <script>alert(1)</script>"}
    return alert


# aiosmtpd warns, on each connection, that the relay takes a login without TLS: the fixture's choice, on loopback.
AUTH_WITHOUT_TLS = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@AUTH_WITHOUT_TLS
def test_the_alert_is_mailed_through_airflows_smtp_connection(trackway_env, mailbox, monkeypatch, caplog, capfd):
    from trackway.orchestration.alerts import send_alert

    caplog.set_level(logging.DEBUG)
    _smtp_connection(monkeypatch, mailbox.port)
    at = datetime(2026, 11, 22, 12, tzinfo=UTC)

    assert send_alert(_hostile_alert(), now=at) is True
    assert mailbox.logins == [("LOGIN", "alerts", True)] or mailbox.logins == [("PLAIN", "alerts", True)]
    [(sender, recipients, message)] = mailbox.messages
    assert sender == "trackway@example.com"
    # Exactly the configured recipients: no header the event name smuggled in added one.
    assert sorted(recipients) == ["data-team@example.com", "oncall@example.com"]
    assert message["Bcc"] is None and "victim@evil.example" not in str(message["To"])
    subject = message["Subject"]
    assert subject.startswith("[Trackway fail] Trackway: event (( 7 * 7 )) (% raw %)failed")
    assert "49" not in subject and "\n" not in subject
    body = message.get_body(("html",)).get_content()
    # The whole record, as inert text: Airflow's template rendering left it alone and no markup got through.
    assert "&#123;&#123; 7 * 7 &#125;&#125;" in body and "49" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>" not in body
    assert "events_load.load_raw_objects@2026-11-22T11" in body and "#task-failed" in body
    # alerts.ndjson keeps the text as it was.
    [line] = [json.loads(x) for x in (trackway_env / "alerts.ndjson").read_text().splitlines()]
    assert "{{ 7 * 7 }}" in line["text"] and "Bcc: victim@evil.example" in line["text"]

    # A repeat within TRACKWAY_ALERT_REPEAT_HOURS is held back for mail too.
    assert send_alert(_hostile_alert(), now=at + timedelta(hours=1)) is False
    assert len(mailbox.messages) == 1
    _no_secret_in(caplog, capfd, trackway_env, SMTP_PASSWORD)


@AUTH_WITHOUT_TLS
@pytest.mark.parametrize("relay_down", ["wrong password", "unreachable"])
def test_a_failing_mail_relay_does_not_stop_the_other_channels(
    trackway_env, mailbox, webhook, monkeypatch, caplog, capfd, relay_down
):
    from trackway.orchestration.alerts import send_alert

    caplog.set_level(logging.DEBUG)
    url, received = webhook
    monkeypatch.setenv("TRACKWAY_ALERT_WEBHOOK_URL", url)
    if relay_down == "wrong password":
        _smtp_connection(monkeypatch, mailbox.port, password="n0t-" + SMTP_PASSWORD)
    else:
        _smtp_connection(monkeypatch, _closed_port())

    assert send_alert(_alert(), now=datetime(2026, 11, 22, 12, tzinfo=UTC)) is True
    assert mailbox.messages == []
    lines = [json.loads(line) for line in (trackway_env / "alerts.ndjson").read_text().splitlines()]
    assert len(lines) == 1 and [r["key"] for r in received] == [lines[0]["key"]]
    failed = [r.getMessage() for r in caplog.records if "could not email the alert" in r.getMessage()]
    assert len(failed) == 1 and "smtp_default" in failed[0] and "alerts.ndjson" in failed[0]
    assert ("535" if relay_down == "wrong password" else "Connection refused") in failed[0], failed[0]
    _no_secret_in(caplog, capfd, trackway_env, SMTP_PASSWORD)


def _no_secret_in(caplog, capfd, home: Path, secret: str) -> None:
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err, (home / "alerts.ndjson").read_text()):
        assert secret not in text
