"""A tracking plan of a real company's size, end to end on DuckDB and a real PostgreSQL (adr/0029).

600 events with hostile names, five with 200 properties, nested objects and arrays
(tests/large_plan.py), imported from a Segment Protocols export, linted, then: the
collector in flag mode, the same calls in a Kinesis Firehose object of the sources file,
the hourly load and transform, and `trackway plan deploy`. The violations in the warehouse
must be exactly what the collector's validator says for every call, whichever way it came
in, and the typed views must all be there, typed.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import requests

from collector_helpers import DEADLINE, CollectorProcess
from large_plan import EVENTS, WIDE_PROPERTIES, sample_messages, write_segment_export
from trackway.cli import main
from trackway.config import load_settings
from trackway.load.loader import load_interval
from trackway.plan import names
from trackway.plan.deploy import require_deployed
from trackway.plan.lint import lint_plan
from trackway.plan.model import load_plan
from trackway.plan.validate import KINDS, CompiledPlan
from trackway.plan.views import view_names
from trackway.rawdata.partitions import hour_floor
from trackway.transform.dbt_runner import run_dbt
from trackway.warehouse import open_warehouse

FORGED = {"plan": "forged", "eventVersion": "1", "violations": []}


def q(sql: str) -> list[tuple]:
    with open_warehouse(load_settings().warehouse, read_only=True) as wh:
        return wh.query(sql)


def expected(compiled: CompiledPlan, message: dict) -> tuple[str | None, list[tuple[str, str | None]]]:
    event_version, violations = compiled.judge(message)
    return event_version, sorted((v.kind, v.property) for v in violations)


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def scale(request, tmp_path_factory):
    home = tmp_path_factory.mktemp(f"plan-scale-{request.param}")
    mp = pytest.MonkeyPatch()
    for key in [k for k in os.environ if k.startswith("TRACKWAY_")]:
        mp.delenv(key)
    mp.setenv("TRACKWAY_HOME", str(home))
    if request.param == "postgres":
        from postgres_server import create_database

        mp.setenv("TRACKWAY_WAREHOUSE_URL", create_database(request.getfixturevalue("postgres_url"), "plan_scale"))
    plan_dir = home / "plan"
    export = write_segment_export(home / "segment-export.json")
    assert main(["plan", "import", "--from", "segment", str(export), "--to", str(plan_dir)]) == 0
    mp.setenv("TRACKWAY_PLAN_DIR", str(plan_dir))
    plan = load_plan(plan_dir)
    compiled = CompiledPlan(plan)
    messages = sample_messages(plan)
    messages[1]["_trackwayPlan"] = FORGED  # a client cannot vouch for itself: the collector's verdict replaces it

    collector = CollectorProcess(home, TRACKWAY_PLAN_DIR=str(plan_dir)).start()  # flag mode, the default
    answers = []
    try:
        for start in range(0, len(messages), 100):
            answer = requests.post(
                collector.url + "/v1/batch",
                json={"batch": messages[start : start + 100]},
                auth=("key-backend", ""),
                timeout=DEADLINE,
            )
            assert answer.status_code == 200 and answer.json()["quarantined"] == 0, answer.text
            answers.append(answer.json())
        assert collector.stop() == 0, collector.stderr
    finally:
        collector.close()

    # The same calls as Kinesis Firehose delivered them to another bucket: concatenated JSON, no collector.
    firehose = [{**m, "messageId": "fh-" + m["messageId"]} for m in messages]
    firehose[0]["_trackwayPlan"] = FORGED
    now = hour_floor(datetime.now(UTC))
    folder = home / "firehose" / f"{now:%Y/%m/%d/%H}"
    folder.mkdir(parents=True)
    (folder / f"app-events-1-{now:%Y-%m-%d-%H}-00-00-5d1c").write_text("".join(json.dumps(m) for m in firehose))
    (home / "sources.yml").write_text(
        f"sources:\n  - name: firehose\n    url: {(home / 'firehose').as_uri()}/\n    layout: firehose\n"
    )
    timings = {}
    started = time.monotonic()
    report = load_interval(load_settings(), now - timedelta(hours=2), now + timedelta(hours=1))
    timings["load"] = time.monotonic() - started
    assert report.object_errors == [] and report.rows_loaded == 2 * len(messages)
    started = time.monotonic()
    dbt = run_dbt(load_settings(), "build")
    timings["transform"] = time.monotonic() - started
    started = time.monotonic()
    assert main(["plan", "deploy"]) == 0
    timings["deploy"] = time.monotonic() - started
    print(f"\n{request.param}: {len(messages)} calls x2; " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    yield {
        "kind": request.param,
        "plan": plan,
        "compiled": compiled,
        "messages": messages,
        "firehose": firehose,
        "answers": answers,
        "dbt": dbt,
    }
    mp.undo()


def test_a_real_size_plan_end_to_end(scale, capsys):
    plan, compiled, messages = scale["plan"], scale["compiled"], scale["messages"]
    assert len(plan.events) == EVENTS and max(len(e.current.properties) for e in plan.events) == WIDE_PROPERTIES
    problems = lint_plan(plan)  # real plans break conventions everywhere; none of it is an invalid schema
    assert problems and not [p for p in problems if "invalid JSON Schema" in p or "refers to something" in p]
    assert scale["dbt"].success and scale["dbt"].tests_failed == 0

    # The collector's answers list what its validator finds, per call.
    answered = [
        sorted((v["kind"], v["property"]) for v in entry["violations"])
        for answer in scale["answers"]
        for entry in sorted(answer.get("violations", []), key=lambda e: e["index"])
    ]
    wanted = {i: expected(compiled, m) for i, m in enumerate(messages)}
    assert answered == [w[1] for w in wanted.values() if w[1]]
    kinds = Counter(k for _, found in wanted.values() for k, _ in found)
    assert set(kinds) == set(KINDS) - {"deprecated_event"}, kinds  # every kind but one the export cannot say

    # The warehouse: every call's violations, through the collector and through Firehose, as the validator says.
    rows = q("select event_id, event_version, kind, property, plan_version from intermediate.plan_violation_rows")
    found: dict[str, list[tuple[str, str | None]]] = {}
    versions: dict[str, set] = {}
    for event_id, event_version, kind, prop, plan_version in rows:
        found.setdefault(event_id, []).append((kind, prop))
        versions.setdefault(event_id, set()).add((event_version, plan_version))
    for i, message in enumerate(messages):
        event_version, violations = wanted[i]
        for event_id in (message["messageId"], scale["firehose"][i]["messageId"]):
            assert sorted(found.get(event_id, [])) == violations, (event_id, message.get("event"))
            if violations:
                assert versions[event_id] == {(event_version, compiled.version)}, event_id
    total = q("select sum(violation_count) from analytics.tracking_plan_violations")[0][0]
    assert total == 2 * sum(len(v) for _, v in wanted.values())

    # The raw line is the call as sent, plus the collector's own fields and its verdict.
    raw = json.loads(q(f"select raw from raw.events_raw where message_id = '{messages[1]['messageId']}'")[0][0])
    assert raw["_trackwayPlan"]["plan"] == compiled.version and raw["_trackwayPlan"] != FORGED
    assert {k: raw[k] for k in messages[1] if k not in ("context", "_trackwayPlan")} == {
        k: v for k, v in messages[1].items() if k not in ("context", "_trackwayPlan")
    }

    # Typed views: one per planned event, deployed, recorded, typed.
    schema = "analytics_typed"
    views = q(f"select count(*) from information_schema.tables where table_schema = '{schema}' and table_type = 'VIEW'")
    assert views == [(EVENTS,)]
    assert "deployed to analytics_typed" in require_deployed(load_settings())
    aliases = view_names(plan)
    wide = next(e for e in plan.events if len(e.current.properties) == WIDE_PROPERTIES)
    columns = q(
        "select count(*) from information_schema.columns "
        f"where table_schema = '{schema}' and table_name = '{aliases[wide.key]}'"
    )
    assert columns[0][0] > WIDE_PROPERTIES
    hostile = next(e for e in plan.events if '"' in e.name and "'" not in e.name)
    sent = next(m for m in messages if m.get("event") == hostile.name)
    typed = q(f"select event_id, event_name from {schema}.{aliases[hostile.key]}")
    assert (sent["messageId"], hostile.name) in typed
    prop = next(p for p in hostile.current.properties if p.main_type == "integer")
    value = q(
        f"select {names.quote_ident(names.unique_columns([p.name for p in hostile.current.properties])[prop.name])} "
        f"from {schema}.{aliases[hostile.key]} where event_id = '{sent['messageId']}'"
    )
    assert value == [(sent["properties"][prop.name],)]

    # Deploying again changes nothing.
    capsys.readouterr()
    assert main(["plan", "deploy"]) == 0
    assert f"0 view(s) created, 0 replaced, 0 dropped, {EVENTS} unchanged" in capsys.readouterr().out


def test_the_loader_judges_records_of_other_systems_by_their_source_mode(tmp_path):
    """Records of the sources file's objects never passed the collector: the loader's verdict, per source mode."""
    from plan_fixtures import DEMO_PLAN
    from trackway.config import Source
    from trackway.plan.verdict import record_judge
    from trackway.rawdata.layouts import map_record
    from trackway.rawdata.schema import RAW_TEXT_FIELDS

    compiled = CompiledPlan(load_plan(DEMO_PLAN))
    judge = record_judge(compiled, {"quiet": "allow", "strict": "block"}, "flag")
    columns = [c for c, _ in RAW_TEXT_FIELDS]
    record = {"name": "Listing Viewed", "properties": {"listing_id": 7}, "_trackwayPlan": FORGED}

    def mapped(source_name: str) -> dict:
        source = Source(
            name=source_name, url="file:///x/", layout="firehose", fields=(("event", "$.name"),), type="track"
        )
        values = map_record([None] * len(columns), record, json.dumps(record), source, columns, None, str, judge)
        return dict(zip(columns, values, strict=True))

    flagged = json.loads(mapped("firehose")["plan_verdict"])  # type and event name as the source maps them
    assert flagged["plan"] == compiled.version and flagged != FORGED
    assert {(v["kind"], v["property"]) for v in flagged["violations"]} == {
        ("wrong_type", "listing_id"),
        ("missing_required", "city"),
        ("missing_required", "price_per_night"),
        ("missing_required", "context.sessionId"),
    }
    assert json.loads(mapped("strict")["plan_verdict"]) == flagged  # block judges like flag: nothing is dropped
    assert mapped("quiet")["plan_verdict"] is None  # allow: no verdict, and the record's own key is not trusted
    no_plan = map_record(
        [None] * len(columns), record, "{}", Source(name="x", url="file:///x/", layout="firehose"), columns, None, str
    )
    assert no_plan[columns.index("plan_verdict")] is None


def test_plan_generate_writes_each_view(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRACKWAY_HOME", str(tmp_path))
    plan_dir = tmp_path / "plan"
    import_plan_args = ["plan", "import", "--from", "segment", str(write_segment_export(tmp_path / "e.json"))]
    assert main([*import_plan_args, "--to", str(plan_dir)]) == 0
    assert main(["plan", "generate", str(plan_dir), "--out", str(tmp_path / "views"), "--dialect", "postgres"]) == 0
    files = sorted((tmp_path / "views").glob("*.sql"))
    assert len(files) == EVENTS and "600 typed view(s) for postgres" in capsys.readouterr().out
    assert all(
        f.read_text().startswith("-- ") and "create or replace view analytics_typed." in f.read_text()
        for f in files[:5]
    )
