"""Game days: each incident is caused for real, its health check fires, and the runbook's own commands fix it.

The commands are the ``bash`` blocks of docs/runbook.md, extracted per section and
run as an on-call engineer would paste them (``set -euo pipefail``, with HOUR, FROM,
TO and EVENT set from the alert). A wrong command in the runbook fails CI.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector_helpers import CollectorProcess
from raw_files import event, hour_dir, write_gz_lines
from runbook_helpers import RUNBOOK, TRACKWAY, run_block, runbook_blocks
from trackway.config import load_settings
from trackway.load.loader import load_interval
from trackway.warehouse import open_warehouse


def health(*families: str, as_of: datetime | None = None) -> tuple[int, dict]:
    args = [TRACKWAY, "health", "--json", *(a for f in families for a in ("--check", f))]
    args += ["--as-of", f"{as_of:%Y-%m-%dT%H:%M}Z"] if as_of else []
    started = time.monotonic()
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, env=os.environ)
    took = time.monotonic() - started
    report = json.loads(result.stdout)
    # What the on-call engineer sees (pytest -s shows it): exit status, how long the checks took, and the
    # checks that are not ok.
    print(f"\n$ trackway health {' '.join(args[3:])}  -> exit {result.returncode} in {took:.2f} s")
    for c in report["checks"]:
        if c["state"] != "ok":
            print(f"  {c['state'].upper():7} {c['family']}.{c['check']} {c['subject']}: {c['summary']}")
    return result.returncode, report


def failing(report: dict) -> dict[str, str]:
    return {f"{c['check']}:{c['subject']}": c["state"] for c in report["checks"] if c["state"] != "ok"}


def hour_text(hour: datetime) -> str:
    return f"{hour:%Y-%m-%dT%H}"


def write_hour(raw: Path, hour: datetime, per_event: dict[str, int], source: str = "web") -> Path:
    lines = [
        event(
            uuid.uuid4().hex,
            event=name,
            sourceId=source,
            receivedAt=f"{hour + timedelta(seconds=5 + i):%Y-%m-%dT%H:%M:%S}.000Z",
        )
        for name, n in per_event.items()
        for i in range(n)
    ]
    return write_gz_lines(hour_dir(raw, f"{hour:%Y-%m-%d}", hour.hour) / f"{uuid.uuid4().hex}.ndjson.gz", lines)


def steady_history(settings, raw: Path, hours: list[datetime], per_event: dict[str, int], source: str = "web"):
    """The same hours on each of the four earlier weeks: the baseline the checks compare with."""
    for hour in hours:
        for weeks in (1, 2, 3, 4):
            past = hour - timedelta(weeks=weeks)
            write_hour(raw, past, per_event, source)
            load_interval(settings, past, past + timedelta(hours=1))


def last_hours(n: int) -> list[datetime]:
    last = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    return [last - timedelta(hours=k) for k in reversed(range(n))]


pytestmark = pytest.mark.slow


def test_an_event_that_stops_arriving(trackway_env):
    settings = load_settings()
    raw = trackway_env / "raw"
    hours = last_hours(2)
    steady_history(settings, raw, hours, {"Listing Viewed": 30, "Signed Up": 15})
    for hour in hours:  # the release: "Signed Up" is no longer sent
        write_hour(raw, hour, {"Listing Viewed": 30})
        load_interval(settings, hour, hour + timedelta(hours=1))

    code, report = health("events")
    assert code == 2 and failing(report) == {"event_stopped:Signed Up": "fail"}
    variables = {
        "HOUR": hour_text(hours[0]),
        "FROM": hour_text(hours[0]),
        "TO": hour_text(hours[-1]),
        "EVENT": "Signed Up",
    }
    *triage, verify = runbook_blocks("Event stopped")
    for block in triage:
        out = run_block(block, **variables).stdout
    assert "Listing Viewed" in out  # the triage shows what still arrives

    # The fix: the corrected release flushes the events its queue held back into those hours.
    for hour in hours:
        write_hour(raw, hour, {"Signed Up": 15})
    run_block(runbook_blocks("Load stale")[-2], **variables)  # trackway backfill --from --to (--transform)
    run_block(verify, **variables)


def test_a_source_whose_volume_drops(trackway_env):
    settings = load_settings()
    raw = trackway_env / "raw"
    [hour] = last_hours(1)
    steady_history(settings, raw, [hour], {"Listing Viewed": 40}, source="ios")
    steady_history(settings, raw, [hour], {"Listing Viewed": 40}, source="web")
    write_hour(raw, hour, {"Listing Viewed": 40}, source="web")  # iOS's release broke its client: nothing
    load_interval(settings, hour, hour + timedelta(hours=1))

    code, report = health("volume")
    assert code == 2 and failing(report) == {"source_volume:ios": "fail"}
    variables = {"HOUR": hour_text(hour), "FROM": hour_text(hour), "TO": hour_text(hour), "EVENT": "Listing Viewed"}
    [triage] = runbook_blocks("Source volume")
    assert "ios" in run_block(triage, **variables).stdout

    write_hour(raw, hour, {"Listing Viewed": 38}, source="ios")  # the fixed client sends what it queued
    run_block(runbook_blocks("Load stale")[-2], **variables)
    code, report = health("volume")
    assert code == 0, failing(report)


def test_a_damaged_object(trackway_env):
    settings = load_settings()
    [hour] = last_hours(1)
    good = write_hour(trackway_env / "raw", hour, {"Listing Viewed": 50})
    copy = good.read_bytes()
    good.write_bytes(copy[: len(copy) // 2])  # a truncated upload
    load_interval(settings, hour, hour + timedelta(hours=1))

    code, report = health("objects")
    assert code == 1 and failing(report) == {"damaged_objects:": "warn"}
    variables = {"HOUR": hour_text(hour)}
    triage, fix, verify = runbook_blocks("Damaged objects")
    assert good.name in run_block(triage, **variables).stdout
    good.write_bytes(copy)  # a good copy from the producer
    run_block(fix, **variables)
    run_block(verify, **variables)
    with open_warehouse(settings.warehouse, read_only=True) as wh:
        assert wh.query("SELECT count(*) FROM raw.events_raw")[0][0] == 50


def test_a_late_hour_beyond_the_sweep(trackway_env):
    """A collector restarted with a spool segment nine days old: it uploads it with a late pointer."""
    old = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=9)
    collector = CollectorProcess(trackway_env)
    segment = collector.spool_dir / "w0" / f"events~{old:%Y-%m-%d}~{old:%H}~{uuid.uuid4()}.sealed"
    segment.parent.mkdir(parents=True, exist_ok=True)
    lines = [event(uuid.uuid4().hex, receivedAt=f"{old:%Y-%m-%dT%H}:10:00.000Z") for _ in range(20)]
    segment.write_bytes(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
    collector.start()
    assert collector.stop() == 0
    [hour] = last_hours(1)
    load_interval(load_settings(), hour, hour + timedelta(hours=1))  # an ordinary hourly run: it cannot reach it

    code, report = health("objects")
    assert code == 2 and failing(report) == {"objects_beyond_sweep:": "fail"}
    triage, fix, verify = runbook_blocks("Objects beyond sweep")
    variables = {"HOUR": hour_text(old)}
    assert "to load" in run_block(triage, **variables).stdout
    run_block(fix.replace(" --transform", ""), **variables)  # the transform part is the dbt test's game day
    run_block(verify, **variables)
    with open_warehouse(load_settings().warehouse, read_only=True) as wh:
        assert wh.query("SELECT count(*) FROM raw.events_raw")[0][0] == 20


def test_a_stopped_scheduler_goes_stale(trackway_env, monkeypatch):
    """No load for longer than the threshold (shortened here) fails load_stale; a backfill clears it."""
    monkeypatch.setenv("TRACKWAY_HEALTH_LOAD_AGE", "20s,30s")
    settings = load_settings()
    [hour] = last_hours(1)
    write_hour(trackway_env / "raw", hour, {"Listing Viewed": 10})
    load_interval(settings, hour, hour + timedelta(hours=1))
    with open_warehouse(settings.warehouse) as wh:  # the last run finished a while ago: the scheduler died
        wh.con.execute("UPDATE raw.load_runs SET finished_at = finished_at - INTERVAL 1 MINUTE")

    code, report = health("freshness")
    assert code == 2 and failing(report) == {"load_stale:": "fail"}
    variables = {"FROM": hour_text(hour), "TO": hour_text(hour), "HOUR": hour_text(hour)}
    triage, fix, verify = runbook_blocks("Load stale")
    assert "objects" in run_block(triage, **variables).stdout
    run_block(fix.replace(" --transform", ""), **variables)
    run_block(verify, **variables)


def test_a_failed_dbt_test(trackway_env):
    """Someone "cleans up" analytics.events by hand: the accounting test fails; the runbook's rebuild fixes it."""
    settings = load_settings()
    [hour] = last_hours(1)
    write_hour(trackway_env / "raw", hour, {"Listing Viewed": 20})
    load_interval(settings, hour, hour + timedelta(hours=1))
    # dbt in a process of its own, as the DAG's tasks and the runbook run it: DuckDB has one writing process.
    run_block("trackway transform build")
    with open_warehouse(settings.warehouse) as wh:
        wh.con.execute("DELETE FROM analytics.events WHERE event_id IN (SELECT event_id FROM analytics.events LIMIT 3)")
    assert subprocess.run([TRACKWAY, "transform", "test"], capture_output=True, timeout=300).returncode == 1

    code, report = health("dbt_tests")
    assert code == 2
    assert any("assert_every_raw_line_is_accounted_for" in key for key in failing(report)), failing(report)
    triage, fix, verify = runbook_blocks("dbt test failed")
    assert "assert_every_raw_line_is_accounted_for" in run_block(triage).stdout
    run_block(fix)
    run_block(verify)


def test_a_violation_spike(trackway_env):
    """A release sends price_per_night as a string: the collector (flag mode) keeps the events and records the
    plan's verdict on each line; dbt unnests them into intermediate.plan_violation_rows; health fires."""
    import time

    from trackway.plan.model import load_plan
    from trackway.plan.validate import CompiledPlan
    from trackway.plan.verdict import encode

    plan = CompiledPlan(load_plan(Path(__file__).resolve().parents[1] / "include/trackway/demo/plan"))

    bad = ("wrong_type", "price_per_night")

    def write_judged(hour: datetime, price: object, n: int = 30) -> None:
        """Lines as the collector stores them in flag mode: the event as sent, its verdict under _trackwayPlan."""
        lines = []
        for i in range(n):
            properties = {"listing_id": f"lst_{i:05d}", "city": "Lisbon", "price_per_night": price}
            line = event(
                uuid.uuid4().hex,
                event="Listing Viewed",
                properties=properties,
                context={"sessionId": 1795910400000 + i},  # what the plan's common context requires
                receivedAt=f"{hour + timedelta(seconds=5 + i):%Y-%m-%dT%H:%M:%S}.000Z",
            )
            major, violations = plan.judge(line)
            assert [(v.kind, v.property) for v in violations] == ([] if price == 142.5 else [bad])
            lines.append(json.dumps({**line, "_trackwayPlan": json.loads(encode(plan.version, major, violations))}))
        write_gz_lines(
            hour_dir(trackway_env / "raw", f"{hour:%Y-%m-%d}", hour.hour) / f"{uuid.uuid4().hex}.ndjson.gz", lines
        )

    settings = load_settings()
    broken, fixed = last_hours(2)
    started = time.monotonic()
    write_judged(broken, "142.50")  # the release: a string where the plan says number
    load_interval(settings, broken, broken + timedelta(hours=1))  # the hourly load and transform
    run_block("trackway transform run")
    # pipeline_health's first run after the broken hour ended (as of then: the hour after is not over yet).
    as_of = broken + timedelta(hours=1, minutes=20)
    args = [TRACKWAY, "health", "--json", "--check", "violations", "--as-of", as_of.strftime("%Y-%m-%dT%H:%M:%S")]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, env=os.environ)
    detected = time.monotonic() - started
    report = json.loads(result.stdout)
    assert result.returncode == 1, report
    assert failing(report) == {"violation_spike:Listing Viewed / wrong_type": "warn"}
    print(f"violation spike detected {detected:.1f}s after the first bad line was stored: {failing(report)}")

    variables = {"HOUR": hour_text(broken), "FROM": hour_text(fixed), "TO": hour_text(fixed)}
    triage, fix, verify = runbook_blocks("Violation spike")
    out = run_block(triage, **variables).stdout
    assert "Listing Viewed" in out and "wrong_type" in out and "price_per_night" in out
    write_judged(fixed, 142.5)  # the fixed release: the number again
    run_block(fix, **variables)
    out = run_block(verify, **variables).stdout  # exits 0: no spike in the hour after the fix
    assert "0 plan violations in" in out and re.search(r"^\s*30\s*$", out, re.MULTILINE), out  # its 30 events


def test_an_erasure_request_near_its_due_date(trackway_env, monkeypatch):
    """A deletion request recorded a day before its deadline (TRACKWAY_PRIVACY_DUE_DAYS=1) that no run has applied:
    the privacy DAG is off. The health check reads the ledger itself, so it warns, and fails once past due."""
    monkeypatch.setenv("TRACKWAY_PRIVACY_LEDGER_KEY", "5a" * 32)
    [hour] = last_hours(1)
    folder = hour_dir(trackway_env / "raw", f"{hour:%Y-%m-%d}", hour.hour)
    lines = [
        event(f"m-{i}", userId="u-gone" if i % 2 else "u-stays", receivedAt=f"{hour:%Y-%m-%dT%H}:10:00.000Z")
        for i in range(6)
    ]
    write_gz_lines(folder / "a.ndjson.gz", lines)
    load_interval(load_settings(), hour, hour + timedelta(hours=1))
    recorded = subprocess.run(
        [TRACKWAY, "privacy", "request", "--type", "delete_only", "--user-id", "u-gone", "--reason", "ticket 42"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TRACKWAY_PRIVACY_DUE_DAYS": "1"},
        check=True,
    )
    request_id = recorded.stdout.strip()
    assert request_id.startswith("rq-"), recorded

    code, report = health("privacy")
    assert code == 1 and failing(report) == {f"erasure_request_due:{request_id}": "warn"}
    [due] = report["checks"]
    assert "delete_only, pending, due " in due["summary"] and " h left" in due["summary"]
    code, report = health("privacy", as_of=datetime.now(UTC) + timedelta(days=1, hours=1))  # the day after
    assert code == 2 and failing(report) == {f"erasure_request_due:{request_id}": "fail"}

    variables = {"REQUEST_ID": request_id}
    triage, fix, verify = runbook_blocks("Erasure request due")
    assert "pending" in run_block(triage, **variables).stdout
    assert "1 finished, 0 failed" in run_block(fix, **variables).stdout
    verified = run_block(verify, **variables).stdout  # exits 0: the check cleared
    print(f"\n$ trackway health --check privacy (the runbook's verify, after the fix)\n{verified}")
    assert "1 erasure request, all finished" in verified
    with open_warehouse(load_settings().warehouse, read_only=True) as wh:
        assert wh.query("SELECT count(*) FROM raw.events_raw WHERE raw LIKE '%u-gone%'") == [(0,)]
        assert wh.query("SELECT count(*) FROM raw.events_raw WHERE raw LIKE '%u-stays%'") == [(3,)]


def test_every_check_and_alert_has_a_runbook_section():
    from trackway.health.checks import CHECKS, CheckResult, State
    from trackway.orchestration.alerts import RUNBOOK_BY_ERROR
    from trackway.orchestration.retries import RUNBOOK_BY_KIND

    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    for name in CHECKS:
        assert CheckResult("f", name, State.OK, "").runbook.split("#")[1] in anchors, name
    assert (
        set(RUNBOOK_BY_ERROR.values()) | set(RUNBOOK_BY_KIND.values()) | {"task-failed", "deadline-missed"} <= anchors
    )


def test_a_backfill_airflow_refuses_is_not_loaded_beside_its_scheduler(trackway_env, monkeypatch):
    """Airflow is a stand-in HTTP server here (a real api-server and scheduler run in the stack test, which
    takes minutes): healthy scheduler, backfill refused with 409. The CLI must stop, not load beside it."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Airflow(BaseHTTPRequestHandler):
        def do_GET(self):
            self._answer(200, {"scheduler": {"status": "healthy"}})

        def do_POST(self):
            self._answer(409, {"detail": "the hour has not ended"})

        def _answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Airflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        [hour] = last_hours(1)
        write_hour(trackway_env / "raw", hour, {"Listing Viewed": 3})
        env = {**os.environ, "TRACKWAY_AIRFLOW_API_URL": f"http://127.0.0.1:{server.server_address[1]}"}
        result = subprocess.run(
            [TRACKWAY, "backfill", "--from", hour_text(hour), "--to", hour_text(hour)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    finally:
        server.shutdown()
    assert result.returncode == 1 and "Airflow refused the backfill" in result.stderr, result
    assert "the hour has not ended" in result.stderr
    assert not (trackway_env / "warehouse.duckdb").exists() or "rows" not in result.stdout
