"""`trackway health`: each check fires on the incident it is for, and stays quiet on ordinary traffic.

The warehouse tests load real raw objects with the real loader (DuckDB and
PostgreSQL), then judge them with the CLI, as a cron job or probe would.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from raw_files import event, hour_dir, write_gz_lines
from trackway.cli import main
from trackway.config import load_settings
from trackway.config.errors import ConfigError
from trackway.config.registry import parse_thresholds
from trackway.health.baseline import baseline, baseline_hours
from trackway.health.checks import (
    HourlyCounts,
    State,
    Thresholds,
    erasure_checks,
    event_checks,
    spike_checks,
    volume_checks,
)
from trackway.load.loader import load_interval
from trackway.subjects.ledger import FAILED, FINISHED, LINKED, STORE, RequestEvent

AS_OF = datetime(2026, 11, 30, 11, 20, tzinfo=UTC)  # a Monday; the last complete hour is 10:00
T = Thresholds(upload_lag=(900, 3600), load_age=(7200, 10800), data_age=(10800, 21600), transform_age=(7200, 10800))
START = datetime(2026, 10, 1, tzinfo=UTC)


def _weekly(per_hour: int, hours: list[datetime], weeks: int = 4) -> dict[datetime, int]:
    return {h - timedelta(weeks=w): per_hour for h in hours for w in range(1, weeks + 1)}


# -- the checks, as pure functions -----------------------------------------------------------------


def test_baseline_uses_weeks_when_there_are_four_and_trailing_days_before():
    hour = datetime(2026, 11, 30, 10, tzinfo=UTC)
    hours, basis = baseline_hours(hour, min_weeks=4, max_weeks=4, trailing_days=7, history_start=START)
    assert basis == "weeks" and hours == [hour - timedelta(weeks=n) for n in (1, 2, 3, 4)]
    young = hour - timedelta(days=10)
    hours, basis = baseline_hours(hour, min_weeks=4, max_weeks=4, trailing_days=7, history_start=young)
    assert basis == "days" and hours == [hour - timedelta(days=n) for n in range(1, 8)]
    # One outage week in the history does not move a median.
    counts = dict.fromkeys(hours, 100)
    counts[hours[2]] = 0
    b = baseline(counts, hours, basis)
    assert b is not None and b.median == 100 and b.mad == 0 and b.presence == pytest.approx(6 / 7)


def test_an_event_that_stops_fails_and_one_that_halves_warns():
    hours = [datetime(2026, 11, 30, 9, tzinfo=UTC), datetime(2026, 11, 30, 10, tzinfo=UTC)]
    counts = HourlyCounts()
    for name, now in (("Signed Up", 0), ("Order Completed", 20), ("Listing Viewed", 95), ("Rare Event", 0)):
        history = _weekly(2 if name == "Rare Event" else 100, hours)
        counts.counts[name] = {**history, **dict.fromkeys(hours, now)}
    results = {r.subject: r for r in event_checks(counts, hours, T, START)}
    assert results["Signed Up"].state is State.FAIL and results["Signed Up"].check == "event_stopped"
    assert results["Order Completed"].state is State.WARN and results["Order Completed"].check == "event_dropped"
    assert "Listing Viewed" not in results  # 95% of usual
    assert "Rare Event" not in results  # never steady: its quiet hours are not incidents


def test_one_quiet_hour_is_not_a_dropped_event():
    hours = [datetime(2026, 11, 30, 9, tzinfo=UTC), datetime(2026, 11, 30, 10, tzinfo=UTC)]
    counts = HourlyCounts({"Signed Up": {**_weekly(100, hours), hours[0]: 100, hours[1]: 0}})
    [result] = event_checks(counts, hours, T, START)
    assert result.state is State.OK and result.subject == ""


def test_source_volume_against_its_usual_hour():
    hour = datetime(2026, 11, 30, 10, tzinfo=UTC)
    counts = HourlyCounts()
    for source, now in (("web", 1000), ("ios", 300), ("backend", 0), ("android", 5000)):
        history = {h: 1000 + (17 * i) % 60 for i, h in enumerate(_weekly(1, [hour]))}
        counts.counts[source] = {**history, hour: now}
    results = {r.subject: r.state for r in volume_checks(counts, hour, T, START)}
    assert results == {"web": State.OK, "ios": State.WARN, "backend": State.FAIL, "android": State.WARN}


def test_a_spike_needs_both_a_multiple_and_a_minimum_count():
    hour = datetime(2026, 11, 30, 10, tzinfo=UTC)
    counts = HourlyCounts(
        {
            "Signed Up / schema": {**_weekly(5, [hour]), hour: 90},
            "Order Completed / schema": {**_weekly(0, [hour]), hour: 10},  # under the minimum count
            "Search / schema": {**_weekly(40, [hour]), hour: 60},  # 1.5x usual
        }
    )
    results = spike_checks("quarantine", "quarantine_spike", "events quarantined", counts, hour, T, START)
    assert [(r.subject, r.state) for r in results] == [("Signed Up / schema", State.WARN)]


def _request(request_id: str, due_in: timedelta, *kinds: str) -> tuple[tuple, list[RequestEvent]]:
    """A ledger request due ``due_in`` after AS_OF, with events of ``kinds`` in order (as the health reader reads them)."""
    due = AS_OF + due_in
    events = [RequestEvent(request_id, 1, due - timedelta(days=30), "received")]
    for seq, kind in enumerate(kinds, start=2):
        store = "warehouse" if kind == STORE else None
        events.append(RequestEvent(request_id, seq, AS_OF - timedelta(hours=10 - seq), kind, store, "done"))
    return (request_id, "delete_only", due - timedelta(days=30), due), events


def test_erasure_requests_warn_near_their_due_date_and_fail_past_it():
    made = [
        _request("rq-past", -timedelta(hours=6)),
        _request("rq-soon", timedelta(days=3), STORE, FAILED),
        _request("rq-later", timedelta(days=20)),
        _request("rq-done", -timedelta(days=2), STORE, FINISHED),  # finished: not reported, even past due
        _request("rq-relinked", timedelta(days=2), STORE, FINISHED, LINKED),  # new ids after it finished
    ]
    results = erasure_checks([r for r, _ in made], [e for _, es in made for e in es], AS_OF, 7)
    by_id = {r.subject: r for r in results}
    assert set(by_id) == {"rq-past", "rq-soon", "rq-later", "rq-relinked"}
    assert {r.check for r in results} == {"erasure_request_due"} and {r.family for r in results} == {"privacy"}
    assert by_id["rq-past"].state is State.FAIL and "6.0 h overdue" in by_id["rq-past"].summary
    assert by_id["rq-soon"].state is State.WARN and by_id["rq-soon"].value == 3.0
    assert "delete_only, failed, due 2026-12-03 11:20 UTC: 3.0 days left" in by_id["rq-soon"].summary
    assert by_id["rq-later"].state is State.OK and "pending" in by_id["rq-later"].summary
    assert by_id["rq-relinked"].state is State.WARN and ", pending," in by_id["rq-relinked"].summary
    assert by_id["rq-past"].runbook == "docs/runbook.md#erasure-request-due"
    # The threshold is the setting's: at 2 days, the request due in 3 is fine.
    assert {r.subject: r.state for r in erasure_checks([made[1][0]], made[1][1], AS_OF, 2)} == {"rq-soon": State.OK}


def test_erasure_requests_all_finished_or_none_are_one_ok():
    done, events = _request("rq-done", -timedelta(days=2), STORE, FINISHED)
    [ok] = erasure_checks([done], events, AS_OF, 7)
    assert (ok.state, ok.subject, ok.summary) == (State.OK, "", "1 erasure request, all finished")
    [empty] = erasure_checks([], [], AS_OF, 7)
    assert (empty.state, empty.summary) == (State.OK, "no erasure requests")


@pytest.mark.parametrize("value", ["1h", "1h,30m", "0,1h", "fast,slow", "1h,2h,3h"])
def test_thresholds_say_how_to_write_them(value):
    with pytest.raises(ValueError, match=r"WARN,FAIL|warn limit"):
        parse_thresholds("TRACKWAY_HEALTH_LOAD_AGE", value)
    assert parse_thresholds("X", "15m,1h") == (900, 3600)


def test_a_bad_threshold_is_a_configuration_error(monkeypatch, trackway_env):
    monkeypatch.setenv("TRACKWAY_HEALTH_DATA_AGE", "3 hours")
    with pytest.raises(ConfigError, match="TRACKWAY_HEALTH_DATA_AGE"):
        load_settings().check("health")


# -- on a real warehouse ---------------------------------------------------------------------------

HOURS = [AS_OF.replace(hour=9, minute=0), AS_OF.replace(hour=10, minute=0)]


def _write_hour(raw, hour: datetime, per_event: dict[str, int], source: str = "web") -> None:
    lines = []
    for name, n in per_event.items():
        for i in range(n):
            received = hour + timedelta(seconds=10 + i)
            lines.append(
                event(uuid.uuid4().hex, event=name, sourceId=source, receivedAt=f"{received:%Y-%m-%dT%H:%M:%S}.000Z")
            )
    write_gz_lines(hour_dir(raw, f"{hour:%Y-%m-%d}", hour.hour) / f"{uuid.uuid4().hex}.ndjson.gz", lines)


def _health(capsys, *args: str) -> tuple[int, dict]:
    code = main(["health", "--json", "--as-of", AS_OF.isoformat(), *args])
    return code, json.loads(capsys.readouterr().out)


def _by_check(report: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for check in report["checks"]:
        out.setdefault(check["check"], []).append(check)
    return out


USUAL = {"Listing Viewed": 30, "Signed Up": 12}


def _release_broke_signed_up(settings, raw, as_of: datetime) -> list[datetime]:
    """Four weeks of steady traffic, then the last two complete hours without "Signed Up"; returns those hours."""
    last = as_of.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    hours = [last - timedelta(hours=1), last]
    for hour in hours:
        for weeks in (1, 2, 3, 4):
            _write_hour(raw, hour - timedelta(weeks=weeks), USUAL)
        _write_hour(raw, hour, {"Listing Viewed": 31})  # the release broke "Signed Up"
    for hour in [h - timedelta(weeks=w) for h in hours for w in (4, 3, 2, 1)] + hours:
        load_interval(settings, hour, hour + timedelta(hours=1))
    return hours


def test_health_on_a_warehouse_finds_the_stopped_event(warehouse_env, capsys, monkeypatch):
    settings = load_settings()
    raw = warehouse_env / "raw"
    usual = USUAL
    _release_broke_signed_up(settings, raw, AS_OF)

    code, report = _health(capsys, "--check", "events", "--check", "volume", "--check", "objects")
    checks = _by_check(report)
    assert code == 2 and report["state"] == "fail"
    [stopped] = checks["event_stopped"]
    assert (stopped["subject"], stopped["state"]) == ("Signed Up", "fail")
    assert stopped["runbook"] == "docs/runbook.md#event-stopped"
    [volume] = checks["source_volume"]
    assert volume["subject"] == "web" and volume["state"] == "ok"  # 31 of 42 usual: not a source problem
    assert {c["state"] for c in checks["damaged_objects"] + checks["set_aside_segments"]} == {"ok"}

    # The fix: the event arrives again in the next hours; the check clears.
    later = AS_OF + timedelta(hours=2)
    for hour in (HOURS[1] + timedelta(hours=1), HOURS[1] + timedelta(hours=2)):
        for weeks in (1, 2, 3, 4):
            _write_hour(raw, hour - timedelta(weeks=weeks), usual)
            load_interval(settings, hour - timedelta(weeks=weeks), hour - timedelta(weeks=weeks, hours=-1))
        _write_hour(raw, hour, usual)
        load_interval(settings, hour, hour + timedelta(hours=1))
    code = main(["health", "--json", "--as-of", later.isoformat(), "--check", "events"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert [c["state"] for c in report["checks"]] == ["ok"]


def test_health_freshness_goes_stale_when_loads_stop(warehouse_env, capsys, tmp_path):
    settings = load_settings()
    _write_hour(warehouse_env / "raw", HOURS[1], {"Listing Viewed": 5})
    load_interval(settings, HOURS[1], HOURS[1] + timedelta(hours=1))
    # Judged right after the load: fresh. Judged four hours later (the scheduler died): load_stale fails.
    now = datetime.now(UTC)
    code = main(["health", "--json", "--check", "freshness", "--as-of", now.isoformat()])
    fresh = {c["check"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert fresh["load_stale"]["state"] == "ok"
    assert fresh["transform_stale"]["state"] == "ok" and "no transform" in fresh["transform_stale"]["summary"]
    textfile = tmp_path / "textfile" / "trackway.prom"
    code = main(
        [
            "health",
            "--json",
            "--check",
            "freshness",
            "--as-of",
            (now + timedelta(hours=4)).isoformat(),
            "--prometheus",
            str(textfile),
        ]
    )
    stale = {c["check"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert code == 2 and stale["load_stale"]["state"] == "fail"
    assert stale["load_stale"]["value"] >= 4 * 3600 - 60
    text = textfile.read_text()
    assert 'trackway_health_check_state{check="load_stale",family="freshness",subject=""} 2.0' in text
    assert "trackway_health_last_run_timestamp_seconds" in text


def test_health_is_unknown_without_a_warehouse(trackway_env, capsys):
    assert main(["health"]) == 3
    out = capsys.readouterr().out
    assert "UNKNOWN" in out and "no DuckDB warehouse" in out


def test_pipeline_health_dag_fails_the_family_and_alerts_once(trackway_env, airflow_db, monkeypatch):
    """The DAG's check_events task fails with the runbook section; a second run does not page again."""
    import importlib.util
    from pathlib import Path

    monkeypatch.setenv("TRACKWAY_ALERT_REPEAT_HOURS", "6")
    settings = load_settings()
    _release_broke_signed_up(settings, trackway_env / "raw", datetime.now(UTC))
    path = Path(__file__).resolve().parents[1] / "dags" / "pipeline_health.py"
    spec = importlib.util.spec_from_file_location("dag_pipeline_health", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.pipeline_health()
    for attempt in (1, 2):
        run = dag.test()
        assert run.state == "failed"
        states = {ti.task_id: ti.state for ti in run.get_task_instances()}
        assert states.pop("check_events") == "failed", states
        assert set(states.values()) == {"success"}, states
        alerts = [json.loads(line) for line in (trackway_env / "alerts.ndjson").read_text().splitlines()]
        health = [a for a in alerts if a["key"].startswith("health:")]
        assert [a["key"] for a in health] == ["health:events.event_stopped:Signed Up"], (attempt, alerts)
        assert health[0]["runbook"] == "docs/runbook.md#event-stopped"
        assert "Signed Up" in health[0]["text"] and "what to do: docs/runbook.md#event-stopped" in health[0]["text"]


def test_health_reads_a_remote_collector_from_its_admin_metrics(trackway_env, monkeypatch, capsys):
    """In production the spool is on the collector's machine: its admin /metrics gives the upload lag."""
    from collector_helpers import CollectorProcess

    collector = CollectorProcess(trackway_env).start()
    try:
        monkeypatch.setenv("TRACKWAY_HEALTH_COLLECTOR_METRICS_URL", f"{collector.admin_url}/metrics")
        monkeypatch.setenv("TRACKWAY_SPOOL_DIR", str(trackway_env / "not-this-machine"))
        _write_hour(trackway_env / "raw", HOURS[1], {"Listing Viewed": 1})
        load_interval(load_settings(), HOURS[1], HOURS[1] + timedelta(hours=1))
        code = main(["health", "--json", "--check", "freshness", "--check", "objects"])
        checks = {c["check"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    finally:
        assert collector.stop() == 0
    assert "the collector's metrics" in checks["upload_lag"]["summary"]
    assert checks["upload_lag"]["value"] is not None, checks["upload_lag"]  # read from the gauge
    assert checks["upload_lag"]["state"] == "ok" and checks["set_aside_segments"]["value"] == 0
    assert code in (0, 1, 2)  # the freshness of this synthetic hour is not what this test is about


def test_the_alert_rules_read_what_the_textfile_holds(trackway_env, tmp_path, capsys):
    """ops/prometheus: every trackway_health_* metric a rule uses is in `trackway health --prometheus`'s file."""
    import re
    from pathlib import Path

    import yaml

    ops = Path(__file__).resolve().parents[1] / "ops" / "prometheus"
    groups = {g["name"]: g["rules"] for g in yaml.safe_load((ops / "trackway-alerts.yml").read_text())["groups"]}
    rules = groups["trackway-health"]
    used = {m for rule in rules for m in re.findall(r"trackway_health_\w+", rule["expr"])}
    _write_hour(trackway_env / "raw", HOURS[1], {"Listing Viewed": 1})
    load_interval(load_settings(), HOURS[1], HOURS[1] + timedelta(hours=1))
    textfile = tmp_path / "trackway.prom"
    main(["health", "--prometheus", str(textfile)])
    capsys.readouterr()
    written = {line.split()[2] for line in textfile.read_text().splitlines() if line.startswith("# TYPE")}
    assert used and used <= written, used - written
    assert any("absent(trackway_health_last_run_timestamp_seconds)" in r["expr"] for r in rules)
    anchors = {r["annotations"]["runbook_url"] for r in rules}
    assert "docs/runbook.md#health-checks" in anchors


def test_client_text_stays_inert_in_the_table_and_the_alert_mail():
    """Event names reach the health table (a terminal) and alert mails (HTML rendered by Jinja)."""
    from datetime import UTC, datetime

    from trackway.health.checks import CheckResult
    from trackway.health.observe import HealthReport
    from trackway.health.report import table
    from trackway.orchestration.alert_channels.mail import _inert

    hostile = "Signed Up\x1b[2J\n{% for x in range(9) %}<script>"
    report = HealthReport(
        datetime(2026, 12, 2, tzinfo=UTC), [CheckResult("events", "event_stopped", State.FAIL, "x", hostile)]
    )
    shown = table(report)
    assert "\x1b" not in shown and "\\x1b[2J\\n" in shown
    mail = _inert(hostile)
    assert "<script>" not in mail and "{%" not in mail and "&lt;script&gt;" in mail


def test_the_collector_metrics_url_must_be_http(monkeypatch, trackway_env):
    monkeypatch.setenv("TRACKWAY_HEALTH_COLLECTOR_METRICS_URL", "file:///etc/passwd")
    with pytest.raises(ConfigError, match="not an http"):
        load_settings().check("health")


def test_health_reads_the_collector_metrics_it_names(trackway_env, tmp_path, monkeypatch, capsys):
    """A real collector whose store is unreachable: its acknowledged events wait in its spool, which is not on this
    machine as far as health knows (TRACKWAY_HEALTH_COLLECTOR_METRICS_URL); health sees the lag in its /metrics."""
    import requests

    from collector_helpers import CollectorProcess, wait_for
    from trackway.health.observe import ACCEPTED_METRIC, SET_ASIDE_METRIC, collector_metrics

    load_interval(load_settings(), AS_OF - timedelta(hours=1), AS_OF)  # an empty warehouse to read
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the store's folder should be: every upload fails")
    collector = CollectorProcess(tmp_path / "collector", TRACKWAY_RAW_URL=f"file://{blocked}/raw").start()
    try:
        sent = [event(uuid.uuid4().hex) for _ in range(3)]
        answer = requests.post(f"{collector.url}/v1/batch", json={"batch": sent}, auth=("key-web", ""), timeout=10)
        assert answer.status_code == 200, answer.text
        url = f"{collector.admin_url}/metrics"
        monkeypatch.setenv("TRACKWAY_HEALTH_COLLECTOR_METRICS_URL", url)
        monkeypatch.setenv("TRACKWAY_HEALTH_UPLOAD_LAG", "1s,2s")

        def lag_failing() -> dict | None:
            main(["health", "--json", "--check", "freshness"])
            [lag] = _by_check(json.loads(capsys.readouterr().out))["upload_lag"]
            return lag if lag["state"] == "fail" else None

        lag = wait_for(lag_failing, "health to read the upload lag from the collector's metrics")
        assert "the collector's metrics" in lag["summary"] and lag["value"] >= 2
        metrics = collector_metrics(url)
        assert metrics[ACCEPTED_METRIC] == 3  # what the Airflow page shows as acknowledged
        assert metrics[SET_ASIDE_METRIC] == 0  # the set_aside_segments check reads this one
    finally:
        collector.close()
