"""The tracking plan at a real collector process: flag and block modes, the response's
violations, reload on folder change and SIGHUP, and quarantine replay."""

from __future__ import annotations

import gzip
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from collector_helpers import (
    DEADLINE,
    WORKERS,
    WRITE_KEYS_SPEC,
    CollectorProcess,
    clean_env,
    free_port,
    local_store,
    read_lines,
    wait_for,
    wait_for_events,
)
from plan_fixtures import DEMO_PLAN, SEGMENT_EXPORT, write_plan

CTX = {"sessionId": 1795910400000}
VIEWED = {"listing_id": "lst_00001", "city": "Lisbon", "price_per_night": 99.5}


def msg(event: str = "Listing Viewed", properties: dict | None = None, **extra) -> dict:
    return {
        "type": "track",
        "event": event,
        "messageId": str(uuid.uuid4()),
        "anonymousId": "anon-1",
        "properties": VIEWED if properties is None else properties,
        "context": dict(CTX),
        **extra,
    }


def post(collector: CollectorProcess, key: str, body: dict, path: str = "/v1/batch") -> requests.Response:
    return requests.post(collector.url + path, json=body, auth=(key, ""), timeout=DEADLINE)


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    home = tmp_path_factory.mktemp("plan-collector")
    plan = shutil.copytree(DEMO_PLAN, home / "plan")
    proc = CollectorProcess(home, TRACKWAY_PLAN_DIR=str(plan), TRACKWAY_PLAN_MODES="web:block,backend:flag").start()
    proc.plan = plan
    yield proc
    proc.close()


def test_flag_mode_passes_events_unchanged_and_lists_violations(planned):
    good = msg()
    wrong_type = msg(properties={**VIEWED, "price_per_night": "99.50"})
    unplanned = msg("Listing Teleported", {"to": "Mars"})
    missing = msg(properties={"listing_id": "lst_1", "city": "Lisbon"})
    answer = post(planned, "key-backend", {"batch": [good, wrong_type, unplanned, missing]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["quarantined"]) == (4, 0)
    by_index = {v["index"]: v for v in body["violations"]}
    assert set(by_index) == {1, 2, 3}
    assert by_index[1]["action"] == "flagged" and by_index[1]["event"] == "Listing Viewed"
    assert [(v["kind"], v["property"]) for v in by_index[1]["violations"]] == [("wrong_type", "price_per_night")]
    assert [v["kind"] for v in by_index[2]["violations"]] == ["unplanned_event"]
    assert [(v["kind"], v["property"]) for v in by_index[3]["violations"]] == [("missing_required", "price_per_night")]
    stored = wait_for_events(
        local_store(planned.home), [m["messageId"] for m in (good, wrong_type, unplanned, missing)]
    )
    assert stored[wrong_type["messageId"]]["properties"] == wrong_type["properties"]  # unchanged
    assert stored[unplanned["messageId"]]["event"] == "Listing Teleported"


def test_flag_mode_records_the_verdict_with_each_event(planned):
    """adr/0029: the verdict is stored with the event (a key the collector owns, appended last), so the
    warehouse never validates again; what a client sends under that key is dropped."""
    from trackway.plan.model import load_plan, plan_version

    good = msg()
    wrong = msg(properties={**VIEWED, "price_per_night": "99.50"}, _trackwayPlan={"plan": "mine", "violations": []})
    unplanned = msg("Listing Teleported", {"to": "Mars"}, context={**CTX, "protocols": {"event_version": 3}})
    assert post(planned, "key-backend", {"batch": [good, wrong, unplanned]}).status_code == 200
    single = msg(properties={"listing_id": "lst_2"})
    assert post(planned, "key-backend", single, path="/v1/track").status_code == 200
    ids = [m["messageId"] for m in (good, wrong, unplanned, single)]
    stored = wait_for_events(local_store(planned.home), ids)
    version = plan_version(load_plan(planned.plan))
    assert stored[good["messageId"]]["_trackwayPlan"] == {"plan": version, "eventVersion": "1", "violations": []}
    assert stored[wrong["messageId"]]["_trackwayPlan"] == {
        "plan": version,
        "eventVersion": "1",
        "violations": [{"kind": "wrong_type", "property": "price_per_night"}],
    }
    assert stored[unplanned["messageId"]]["_trackwayPlan"]["eventVersion"] == "3"
    assert stored[unplanned["messageId"]]["_trackwayPlan"]["violations"] == [
        {"kind": "unplanned_event", "property": None}
    ]
    assert [v["kind"] for v in stored[single["messageId"]]["_trackwayPlan"]["violations"]] == [
        "missing_required",
        "missing_required",
    ]
    store = local_store(planned.home)
    lines = [line for key in store.list("events/") for line in gzip.decompress(store.read_bytes(key)).splitlines()]
    line = next(line for line in lines if good["messageId"].encode() in line)
    assert line.endswith(b',"_trackwayPlan":{"plan":"' + version.encode() + b'","eventVersion":"1","violations":[]}}')


def test_block_mode_quarantines_violating_events_with_their_violations(planned):
    good = msg()
    bad = msg(properties={**VIEWED, "city": "Atlantis"})
    body = post(planned, "key-web", {"batch": [good, bad]}).json()
    assert (body["accepted"], body["quarantined"]) == (1, 1)
    assert body["violations"][0]["index"] == 1 and body["violations"][0]["action"] == "quarantined"
    single = msg(properties={"listing_id": 5})
    answer = post(planned, "key-web", single, path="/v1/track")
    assert answer.status_code == 200 and answer.json()["quarantined"] == 1
    store = local_store(planned.home)
    wait_for_events(store, [good["messageId"]])
    records = wait_for(
        lambda: (r := read_lines(store, "quarantine/")) and len(r) >= 2 and r, "two quarantine records", DEADLINE
    )
    by_id = {r["event"]["messageId"]: r for r in records}
    assert by_id[bad["messageId"]]["reason"].startswith("tracking plan: not in enum at 'city'")
    assert by_id[bad["messageId"]]["violations"][0]["kind"] == "not_in_enum"
    assert by_id[bad["messageId"]]["event"]["receivedAt"]  # stored enriched, for replay
    assert {v["kind"] for v in by_id[single["messageId"]]["violations"]} == {"wrong_type", "missing_required"}
    stored = {r["messageId"]: r for r in read_lines(store, "events/")}
    assert bad["messageId"] not in stored
    assert stored[good["messageId"]]["_trackwayPlan"]["violations"] == []  # what block mode lets through was judged
    assert "_trackwayPlan" not in by_id[bad["messageId"]]["event"]  # replay judges it again


def test_health_counts_plan_checks(planned):
    plan = planned.health()["plan"]
    assert plan["events_checked"] >= 7
    assert plan["events_flagged"] >= 3 and plan["events_blocked"] >= 2
    assert plan["violations"] >= 6 and plan["events"] == 11
    exposition = planned.metrics()
    assert 'trackway_collector_plan_violations_total{kind="unplanned_event",source="backend"}' in exposition


def _add_event(plan: Path, name: str) -> None:
    doc = {"name": name, "type": "track", "description": "d", "owner": "o", "properties": {"type": "object"}}
    (plan / "events" / "teleported.yaml").write_text(yaml.safe_dump(doc))


def _flagged(planned) -> bool:
    return bool(post(planned, "key-backend", {"batch": [msg("Listing Teleported", {})]}).json().get("violations"))


def _every_worker(planned, flagged: bool) -> bool:
    """Several answers in a row agree: every worker (the test collector runs 2) has the same plan."""
    return all(_flagged(planned) is flagged for _ in range(6))


def _log_count(planned, line: str) -> int:
    return (planned.stderr + planned.stdout).count(line)


def test_plan_changes_are_picked_up_without_restart(planned):
    reloaded, refused = _log_count(planned, "tracking plan reloaded"), _log_count(planned, "tracking plan not reloaded")
    _add_event(planned.plan, "Listing Teleported")
    # Each worker logs its own reload. Waiting for answers alone is not enough: six answers in a row can all
    # come from one worker (SO_REUSEPORT picks by hash), and a worker that had not reloaded before the broken
    # file below appeared rightly keeps the plan it had, the one without the new event (CI failure of 2026-11-23).
    wait_for(lambda: _log_count(planned, "tracking plan reloaded") >= reloaded + WORKERS, "every worker to reload")
    assert _every_worker(planned, False)
    # The admin /health reads each worker's plan size from the metrics its timer writes (within a second).
    wait_for(lambda: planned.health()["plan"]["events"] == 12, "the new plan size in the admin /health")
    # A broken plan is refused by every worker; the last good one stays in force.
    (planned.plan / "events" / "broken.yaml").write_text("name: [oops\n")
    wait_for(
        lambda: _log_count(planned, "tracking plan not reloaded") >= refused + WORKERS,
        "every worker to refuse the broken plan",
    )
    assert _every_worker(planned, False)
    (planned.plan / "events" / "broken.yaml").unlink()
    (planned.plan / "events" / "teleported.yaml").unlink()
    planned.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: _every_worker(planned, True), "SIGHUP (or the watcher) to reload the plan in every worker")


def test_without_a_plan_nothing_is_validated(collector):
    forged = msg("Anything Goes", {"x": 1}, _trackwayPlan={"plan": "forged", "violations": []})
    body = post(collector, "key-web", {"batch": [forged]}).json()
    assert body == {"success": True, "accepted": 1, "quarantined": 0}
    assert "plan" not in collector.health()
    stored = wait_for_events(local_store(collector.home), [forged["messageId"]])
    assert "_trackwayPlan" not in stored[forged["messageId"]]  # no verdict, and a client cannot supply one


# ---- plans as they come from other tools


@pytest.mark.parametrize("where", ["event", "common"])
def test_a_plan_the_collector_cannot_compile_stops_it_with_file_property_and_lint_command(tmp_path, where):
    """Segment's "any" copied as is: the collector refuses to start, saying where and how to see the full report."""
    untranslated = {"type": ["any"], "description": "copied from an export as it was"}
    event = {"name": "Order Completed", "properties": {"type": "object", "properties": {"total": {"type": "number"}}}}
    if where == "event":
        event["properties"]["properties"]["payload"] = untranslated
    plan = write_plan(
        tmp_path / "plan",
        [event],
        common={"type": "object", "properties": {"experiments": untranslated}} if where == "common" else None,
    )
    env = clean_env(TRACKWAY_HOME=str(tmp_path), TRACKWAY_WRITE_KEYS=WRITE_KEYS_SPEC, TRACKWAY_PLAN_DIR=str(plan))
    done = subprocess.run(
        [sys.executable, "-m", "trackway.cli", "collect", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    file, prop = (
        ("events/e000.yaml", "property 'payload'") if where == "event" else ("common.yaml", "property 'experiments'")
    )
    assert f"{plan / file}" in output and f"{prop} at 'type': invalid JSON Schema" in output, output
    assert f"`trackway plan lint {plan}` shows the full report" in output, output
    assert "Traceback" not in output, output


def test_an_imported_segment_export_with_any_types_starts_the_collector_and_validates(tmp_path_factory):
    """The issue's case: a real-shaped Segment export (any types, $ref, versions) imported unchanged, then
    a real collector in flag mode judges events by it."""
    from trackway.cli import main

    home = tmp_path_factory.mktemp("segment-export")
    plan = home / "plan"
    assert main(["plan", "import", "--from", "segment", str(SEGMENT_EXPORT), "--to", str(plan)]) == 0
    proc = CollectorProcess(home, TRACKWAY_PLAN_DIR=str(plan), TRACKWAY_PLAN_MODES="flag").start()
    try:
        assert proc.health()["plan"]["events"] == 5
        order = {
            "order_id": "ord_20261130",
            "total": 120.5,
            "currency": "EUR",
            "payment_method": None,
            "products": [{"product_id": "prd_abc123", "price": 60.25, "attributes": ["any", {"thing": 1}]}],
            "metadata": {"free": ["form"]},
            "tracking_source": 7,
        }
        good = msg("Order Completed", order)
        anything = msg("Order Completed", {**order, "metadata": None, "tracking_source": "utm"})
        wrong = msg("Order Completed", {**order, "currency": "JPY", "total": "120.50"})
        nested = msg("Order Completed", {**order, "products": [{"product_id": "nope", "price": 1}]})
        old_client = msg("Order Completed", {"order_id": "o-1", "total": 3})
        old_client["context"] = {**CTX, "protocols": {"event_version": 1}}
        page = {"type": "page", "messageId": str(uuid.uuid4()), "anonymousId": "anon-1", "context": dict(CTX)}
        page["properties"] = {"path": "/listing/1", "referrer": {"any": "value"}}
        batch = [good, anything, wrong, nested, old_client, page]
        answer = post(proc, "key-web", {"batch": batch})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["accepted"], body["quarantined"]) == (6, 0)
        flagged = {v["index"]: {(x["kind"], x["property"]) for x in v["violations"]} for v in body["violations"]}
        assert flagged == {
            2: {("not_in_enum", "currency"), ("wrong_type", "total")},
            3: {("invalid_value", "products")},
        }
        stored = wait_for_events(local_store(home), [m["messageId"] for m in batch])
        assert stored[good["messageId"]]["properties"] == order  # flag mode: unchanged
    finally:
        proc.close()
