"""The tracking plan end to end, on DuckDB and a real PostgreSQL: HTTP clients -> collector
(flag and block) -> quarantine replay -> load -> app_sync -> dbt -> `trackway plan deploy`.

Checks analytics.tracking_plan_violations (from the verdicts the collector recorded) and the
daily compliance table, the typed views in analytics_typed (casts, NULL for what does not
cast), hostile names (views build, data intact), plan descriptions as PostgreSQL comments, a
plan change (judged from then on, the hourly check failing until `plan deploy`, `plan diff`
showing the column), `trackway plan test`, the data dictionary in headless Chromium, and the
analytics_x views joining events with the product's rows (docs/app-data.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml

from app_fixtures import sources_yaml, write_app_db
from collector_helpers import DEADLINE, CollectorProcess, local_store, make_keyring, read_lines
from plan_fixtures import DEMO_PLAN, HOSTILE_EVENT, HOSTILE_PROPS, hostile_plan
from trackway.cli import main
from trackway.config import load_settings
from trackway.health.checks import State
from trackway.health.observe import run_checks
from trackway.load.app_sync import sync_named
from trackway.load.loader import load_interval
from trackway.plan import names
from trackway.pseudonym import pseudonymise
from trackway.rawdata.partitions import hour_floor, partition_path
from trackway.transform.dbt_runner import run_dbt
from trackway.warehouse import open_warehouse

SDK_DIR = Path(__file__).resolve().parent / "sdk_clients"
CTX = {"sessionId": 1795910400000}
HOSTILE_VALUES = {name: f"v'al\"ue; -- {i} \\ ☕ {{{{x}}}}" for i, name in enumerate(HOSTILE_PROPS)}


def msg(event: str, properties: dict, etype: str = "track", **extra) -> dict:
    body = {"type": etype, "messageId": str(uuid.uuid4()), "anonymousId": "anon-1", "context": dict(CTX), **extra}
    if etype == "track":
        body["event"] = event
    if etype in ("identify", "group"):
        body["traits"] = properties
    else:
        body["properties"] = properties
    return body


def build_plan(root: Path) -> Path:
    plan = shutil.copytree(DEMO_PLAN, root / "plan")
    hostile = hostile_plan(root / "hostile")
    for i, path in enumerate(sorted((hostile / "events").glob("*.yaml"))):
        shutil.copy(path, plan / "events" / f"zz_hostile_{i}.yaml")
    return plan


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def pipeline(request, tmp_path_factory):
    home = tmp_path_factory.mktemp(f"plan-pipeline-{request.param}")
    plan = build_plan(home)
    keyring = make_keyring(home / "keys.yaml")  # identify's traits.email is stored as a pseudonym (docs/privacy.md)
    env = {
        "TRACKWAY_HOME": str(home),
        "TRACKWAY_PLAN_DIR": str(plan),
        "TRACKWAY_PLAN_MODES": "web:block,backend:flag",
        "TRACKWAY_PSEUDONYM_KEYS": str(home / "keys.yaml"),
    }
    if request.param == "postgres":
        from postgres_server import create_database

        env["TRACKWAY_WAREHOUSE_URL"] = create_database(request.getfixturevalue("postgres_url"), "plan_pipeline")
    collector = CollectorProcess(home, **env).start()
    sent = {
        "good": msg(
            "Listing Viewed", {"listing_id": "lst_1", "city": "Lisbon", "price_per_night": 99.5, "bedrooms": 2}
        ),
        "wrong_type": msg("Listing Viewed", {"listing_id": "lst_2", "city": "Lisbon", "price_per_night": "99.50"}),
        "missing": msg("Listing Viewed", {"listing_id": "lst_3", "city": "Lisbon"}),
        "unplanned": msg("Listing Teleported", {"to": "Mars"}),
        "search": msg(
            "Listings Searched",
            {"city": "Austin", "check_in": "2026-12-01", "check_out": "2026-12-03", "guests": 2, "results_count": 0},
        ),
        "bad_date": msg(
            "Listings Searched",
            {"city": "Austin", "check_in": "2026-02-30", "check_out": "2026-12-03", "guests": 2, "results_count": 4},
        ),
        "signup": msg("Signed Up", {"method": "email", "role": "renter"}),
        "identify": msg(
            "",
            {"email": "ana@example.com", "role": "renter", "plan": "free", "created_at": "2026-11-22T10:00:00Z"},
            etype="identify",
            userId="u-1",
        ),
        "page": msg("", {"path": "/", "url": "https://nestful.example/"}, etype="page", name="Home"),
        "hostile": msg(
            HOSTILE_EVENT,
            {**HOSTILE_VALUES, "back\\slash\\": 42, "select": "2026-11-22", "from": 1.5, 'it\'s "quoted"': "o'k"},
        ),
        "hostile_bad": msg(HOSTILE_EVENT, {'it\'s "quoted"': "nope", "back\\slash\\": "NaN-ish", "select": "soon"}),
        "order_extra": msg("Order Completed", {"order_id": "o-1", "total": 10, "coupon": "X"}),
    }
    blocked = msg("Listing Viewed", {"listing_id": "lst_9", "city": "Atlantis", "price_per_night": 10})
    try:
        answer = requests.post(
            collector.url + "/v1/batch", json={"batch": list(sent.values())}, auth=("key-backend", ""), timeout=DEADLINE
        )
        assert answer.status_code == 200 and answer.json()["accepted"] == len(sent), answer.text
        answer = requests.post(
            collector.url + "/v1/batch", json={"batch": [blocked]}, auth=("key-web", ""), timeout=DEADLINE
        )
        assert answer.json()["quarantined"] == 1, answer.text
        assert collector.stop() == 0, collector.stderr
    finally:
        collector.close()
    mp = pytest.MonkeyPatch()
    for key in [k for k in os.environ if k.startswith("TRACKWAY_")]:
        mp.delenv(key)
    for key, value in env.items():
        mp.setenv(key, value)
    # The plan is fixed (Atlantis becomes a city), then the quarantine is replayed, twice.
    viewed = plan / "events" / "listing_viewed.yaml"
    doc = yaml.safe_load(viewed.read_text())
    doc["properties"]["properties"]["city"]["enum"].append("Atlantis")
    viewed.write_text(yaml.safe_dump(doc))
    assert main(["quarantine", "replay"]) == 0
    assert main(["quarantine", "replay"]) == 0
    store = local_store(home)
    replays = [k for k in store.list("events/") if "/replay-" in k]
    assert len(replays) == 1  # same input, same hour: the same object
    # A replay an hour earlier/later writes a second object (another hour) with the same events.
    now = hour_floor(datetime.now(UTC))
    name = replays[0].rsplit("/", 1)[1]
    store.put_bytes(f"events/{partition_path(now - timedelta(hours=1))}/{name}", store.read_bytes(replays[0]))
    report = load_interval(load_settings(), now - timedelta(hours=3), now + timedelta(hours=2))
    assert report.object_errors == []
    # The product's own database: the listings the events name (the demo plan references app.listings.id).
    app_db = write_app_db(home / "app.sqlite", ["lst_1", "lst_2", "lst_3", "lst_9"])
    (home / "sources.yml").write_text(sources_yaml(f"sqlite:///{app_db}", listings=", deletes: remove"))
    assert sync_named(load_settings(), "product").rows == 8
    # As events_transform runs: the models, then the typed views' check (nothing was ever deployed here, so it
    # deploys them itself), then the plan's analytics_x views, which read them.
    from trackway.orchestration.plan_tasks import build_analytics_x, check_typed_views
    from trackway.transform.plan_models import WITHOUT_PLAN_MODELS

    dbt = run_dbt(load_settings(), "build", *WITHOUT_PLAN_MODELS)
    first = check_typed_views()
    x = build_analytics_x()
    assert x.startswith("dbt build: 3 models") and " 0 failed" in x, x  # two views and x_reference_health
    yield {
        "kind": request.param,
        "home": home,
        "plan": plan,
        "sent": sent,
        "blocked": blocked,
        "dbt": dbt,
        "first_check": first,
        "store": store,
        "mp": mp,
        "app_db": app_db,
        "keyring": keyring,
    }
    mp.undo()


def q(pipeline, sql: str) -> list[tuple]:
    with open_warehouse(load_settings().warehouse, read_only=True) as wh:
        return wh.query(sql)


def test_build_passes_and_the_plan_is_deployed(pipeline, capsys):
    dbt = pipeline["dbt"]
    assert dbt.success and dbt.tests_failed == 0
    from trackway.plan.deploy import require_deployed

    assert pipeline["first_check"].startswith("typed views: first deploy: plan ")
    assert "deployed to analytics_typed" in require_deployed(load_settings())
    assert main(["plan", "deploy"]) == 0  # nothing changed: nothing is redone
    assert "0 view(s) created, 0 replaced, 0 dropped, 13 unchanged" in capsys.readouterr().out


def test_violations_table_from_the_plan(pipeline):
    rows = q(
        pipeline,
        "select event_name, kind, property, violation_count, example_event_id, first_seen, last_seen, "
        "source_id, event_version from analytics.tracking_plan_violations",
    )
    found = {(r[0], r[1], r[2]): r for r in rows}
    sent = pipeline["sent"]
    assert found[("Listing Viewed", "wrong_type", "price_per_night")][3:5] == (1, sent["wrong_type"]["messageId"])
    assert found[("Listing Viewed", "missing_required", "price_per_night")][4] == sent["missing"]["messageId"]
    assert found[("Listing Teleported", "unplanned_event", None)][3] == 1
    assert found[("Listings Searched", "bad_format", "check_in")][3] == 1
    assert found[("Order Completed", "unexpected_property", "coupon")][3] == 1
    assert found[(HOSTILE_EVENT, "not_in_enum", 'it\'s "quoted"')][3] == 1
    assert found[(HOSTILE_EVENT, "wrong_type", "back\\slash\\")][3] == 1
    assert found[(HOSTILE_EVENT, "bad_format", "select")][3] == 1
    assert found[(HOSTILE_EVENT, "missing_required", "x" * 300)][3] == 1
    wrong = found[("Listing Viewed", "wrong_type", "price_per_night")]
    assert wrong[7] == "backend" and str(wrong[8]) == "1" and wrong[5] is not None and wrong[6] is not None
    assert ("Listing Viewed", "not_in_enum", "city") not in found  # Atlantis replayed after the plan was fixed
    for key in found:  # the clean events have no violations
        assert key[0] not in ("Signed Up", "Identify", "Page Viewed"), key
    daily = q(
        pipeline,
        "select source_id, events, events_with_violations, compliance_rate "
        "from analytics.tracking_plan_compliance_daily where event_name = 'Listing Viewed'",
    )
    assert sorted(daily) == [("backend", 3, 2, pytest.approx(1 / 3)), ("web", 1, 0, 1.0)]  # web: the replayed one


def test_replayed_event_keeps_its_id_and_arrival_and_lands_once(pipeline):
    blocked = pipeline["blocked"]
    quarantined = [
        r for r in read_lines(pipeline["store"], "quarantine/") if r["event"]["messageId"] == blocked["messageId"]
    ]
    assert len(quarantined) == 1
    rows = q(
        pipeline,
        f"select event_id, received_at, source_id from analytics.events where event_id = '{blocked['messageId']}'",
    )
    assert len(rows) == 1  # replayed twice, in two objects: still one row
    received = datetime.fromisoformat(quarantined[0]["receivedAt"].replace("Z", "+00:00"))
    assert rows[0][1] == received and rows[0][2] == "web"
    raw = q(pipeline, f"select count(*) from raw.events_raw where message_id = '{blocked['messageId']}'")
    assert raw == [(2,)]


def test_typed_views_cast_to_plan_types(pipeline):
    sent = pipeline["sent"]
    rows = q(
        pipeline,
        "select event_id, listing_id, city, price_per_night, bedrooms, event_version "
        "from analytics_typed.listing_viewed",
    )
    by_id = {r[0]: r[1:] for r in rows}
    assert by_id[sent["good"]["messageId"]][:4] == ("lst_1", "Lisbon", 99.5, 2)
    assert by_id[sent["wrong_type"]["messageId"]][2] is None  # "99.50" does not cast: NULL, and counted above
    assert str(by_id[sent["good"]["messageId"]][4]) == "1"
    search = q(pipeline, "select check_in, guests from analytics_typed.listings_searched order by guests")
    assert {str(r[0]) for r in search} == {"2026-12-01", "None"}
    ident = q(pipeline, "select email, created_at from analytics_typed.identify")
    # A pseudonym, typed as a string (not NULL for failing the plan's format: email; plan/privacy.stored_plan).
    assert ident[0][0] == pseudonymise("ana@example.com", pipeline["keyring"])
    assert ident[0][1] == datetime(2026, 11, 22, 10, tzinfo=UTC)
    group = q(pipeline, "select count(*) from analytics_typed.group_event")
    assert group == [(0,)]


def test_hostile_names_build_and_keep_the_data(pipeline):
    sent = pipeline["sent"]
    view = names.relation_name(HOSTILE_EVENT)
    columns = names.unique_columns(HOSTILE_PROPS)
    select = ", ".join(names.quote_ident(columns[p]) for p in HOSTILE_PROPS)
    rows = q(pipeline, f"select event_id, {select} from analytics_typed.{view}")
    by_id = {r[0]: r[1:] for r in rows}
    good = dict(zip(HOSTILE_PROPS, by_id[sent["hostile"]["messageId"]], strict=True))
    for prop in HOSTILE_PROPS:
        if prop in ("back\\slash\\", "select", "from", 'it\'s "quoted"'):
            continue
        assert good[prop] == HOSTILE_VALUES[prop], prop
    assert good['it\'s "quoted"'] == "o'k" and good["back\\slash\\"] == 42 and good["from"] == 1.5
    assert str(good["select"]) == "2026-11-22"
    bad = dict(zip(HOSTILE_PROPS, by_id[sent["hostile_bad"]["messageId"]], strict=True))
    assert bad["back\\slash\\"] is None and bad["select"] is None
    events = q(pipeline, "select count(*) from analytics.events")
    assert events[0][0] == len(sent) + 1
    name = q(pipeline, f"select event_name from analytics.events where event_id = '{sent['hostile']['messageId']}'")
    assert name == [(HOSTILE_EVENT,)]


def test_plan_descriptions_reach_the_warehouse(pipeline):
    if pipeline["kind"] != "postgres":
        pytest.skip("persist_docs comments are a PostgreSQL feature here")
    comment = q(pipeline, "select obj_description('analytics_typed.listing_viewed'::regclass, 'pg_class')")[0][0]
    assert comment.startswith("A listing's detail page or screen was shown.") and "owner search-team" in comment
    cols = q(
        pipeline,
        "select a.attname, col_description(a.attrelid, a.attnum) from pg_attribute a "
        "where a.attrelid = 'analytics_typed.listing_viewed'::regclass and a.attnum > 0",
    )
    described = dict(cols)
    assert "privacy public" in described["price_per_night"] and "Nightly price" in described["price_per_night"]
    hostile = q(
        pipeline,
        f"select obj_description('analytics_typed.{names.relation_name(HOSTILE_EVENT)}'::regclass, 'pg_class')",
    )
    assert "it's {{ not jinja }} -- and /* not a comment */; $$ dollar $$" in hostile[0][0]


def test_plan_test_runs_the_analyst_queries(pipeline, capsys):
    assert main(["plan", "test"]) == 0
    out = capsys.readouterr().out
    assert "ok   queries/searches_by_city.sql" in out and "FAIL" not in out
    broken = pipeline["plan"] / "queries" / "broken.sql"
    broken.write_text("select * from analytics_typed.no_such_view")
    empty = pipeline["plan"] / "queries" / "empty.sql"
    empty.write_text("select * from analytics.events where 1 = 0")
    signed = pipeline["plan"] / "events" / "signed_up.yaml"
    original = signed.read_text()
    doc = yaml.safe_load(original)
    doc["queries"] += ["queries/broken.sql", "queries/empty.sql"]
    signed.write_text(yaml.safe_dump(doc))
    try:
        assert main(["plan", "test"]) == 1
        out = capsys.readouterr().out
        assert (
            "FAIL queries/broken.sql (Signed Up)" in out
            and "FAIL queries/empty.sql (Signed Up): returned no rows" in out
        )
    finally:
        signed.write_text(original)


def test_data_dictionary_in_chromium(pipeline, tmp_path):
    if pipeline["kind"] != "duckdb":
        pytest.skip("the dictionary is the same whatever the warehouse; checked once")
    out_dir = pipeline["home"] / "docs"
    assert main(["plan", "docs", "--out", str(out_dir)]) == 0
    html = (out_dir / "index.html").read_text()
    md = (out_dir / "data-dictionary.md").read_text()
    assert "Seen <b>4</b> times" in html and "wrong_type price_per_night × 1" in html
    assert "Listing Teleported" in html  # seen but not planned
    assert (
        "<script src" not in html
        and "<link" not in html
        and "http" not in re.sub(r"https://nestful\.example/?", "", html.split("<main>")[0])
    )
    assert "| `price_per_night` | `price_per_night` | number |" in md and "privacy" not in md.split("## ")[0][:0]
    assert "Robert&#x27;); DROP TABLE" in html and "<script>alert" not in html
    node = shutil.which("node")
    assert node and (SDK_DIR / "node_modules" / "playwright-core").is_dir(), "run `make sdk-clients` (Node.js 20+)"
    assert Path("/usr/bin/chromium").exists(), "run `make browser` (Debian's chromium package)"
    shot = pipeline["home"] / "docs" / "dictionary.png"
    proc = subprocess.run(
        [
            node,
            str(SDK_DIR / "plan_docs_page.js"),
            (out_dir / "index.html").as_uri(),
            str(tmp_path / "profile"),
            str(shot),
            "pii",
        ],
        capture_output=True,
        text=True,
        timeout=2 * DEADLINE,
        cwd=SDK_DIR,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["errors"] == [] and all(u.startswith("file://") for u in result["requests"]), result
    assert result["title"] == "Nestful data dictionary"
    assert result["cards"] == result["visibleBefore"] >= 13
    # "pii" appears on events with personal data only (Identify's email, the hostile event's select).
    assert 1 <= result["visibleAfter"] < result["cards"] and any("Identify" in n for n in result["visibleNames"])
    assert (
        result["countText"] == f"{result['visibleAfter']} of {result['cards'] - 2} events"
    )  # not the common/unplanned cards
    assert shot.stat().st_size > 10_000 and Path(str(shot).replace(".png", "-search.png")).exists()
    print(f"\ndata dictionary screenshots: {shot} and -search.png")


def test_bi_datasets_run_here_and_read_only_documented_columns(pipeline):
    """Every Superset dataset (include/superset, docs/bi.md) runs on this warehouse and returns the columns it
    declares; a table's columns are documented columns of its dbt model, and a query reads only models (or app).
    """
    from trackway.bi.bundle import assets, dataset_sql, manifest_models, read_bundle, relations

    manifest = json.loads((pipeline["home"] / "dbt" / "target" / "manifest.json").read_text())
    models = manifest_models(manifest)
    datasets = list(assets(read_bundle(), "datasets"))
    assert len(datasets) == 10
    with open_warehouse(load_settings().read_warehouse, read_only=True) as wh:
        for name, doc in datasets:
            declared = [c["column_name"] for c in doc["columns"]]
            if doc.get("sql"):
                read = relations(doc["sql"])
                assert read and all(r in models or r[0] == "app" for r in read), (name, read)
            else:
                documented = set(models[(doc["schema"], doc["table_name"])]["columns"])
                assert not set(declared) - documented, (name, sorted(set(declared) - documented))
            headers, _ = wh.query_with_headers(dataset_sql(doc), limit=5)
            assert list(headers) == declared, name


def test_analytics_x_joins_events_with_the_rows_they_reference(pipeline):
    """Each Listing Viewed carries its listing (neighbourhood, price) and, one hop on, its host; a reference
    that stops resolving fails the share test and the app_refs health check, and recovers with the data."""
    got = q(
        pipeline,
        "SELECT listing_id, listing__neighbourhood, listing__price, listing__host__name, price_per_night "
        "FROM analytics_x.listing_viewed ORDER BY listing_id",
    )
    assert [r[:4] for r in got] == [
        ("lst_1", "Alfama", 100.0, "Ana Silva"),
        ("lst_2", "Baixa", 101.0, "Ben Costa"),
        ("lst_3", "Alfama", 102.0, "Ana Silva"),
        ("lst_9", "Baixa", 103.0, "Ben Costa"),
    ]
    assert got[0][4] == 99.5  # the typed view's own columns are all there
    assert not q(pipeline, "SELECT * FROM analytics_x.showing_requested")  # a view even with no events yet

    # The product deletes two listings (entry: deletes: remove); the views read app live.
    with sqlite3.connect(pipeline["app_db"]) as con:
        con.execute("DELETE FROM listings WHERE id IN ('lst_2', 'lst_3')")
    settings = load_settings()
    assert {t.table: t.deleted for t in sync_named(settings, "product").tables}["listings"] == 2
    [health] = run_checks(settings, families=("app_refs",)).family("app_refs")
    assert health.state is State.FAIL and health.subject == "listing_viewed.listing_id"
    assert health.summary.startswith("2 of 4 values (50.0%) find no row of app.listings.id")
    if pipeline["kind"] == "duckdb":  # one dbt test run is enough to show the share test fails
        tested = run_dbt(settings, "test", "--select", "x__listing_viewed", raise_on_failure=False)
        assert (tested.tests_failed, tested.tests_warned) == (1, 1)  # the share above 5%; relationships warns

    with sqlite3.connect(pipeline["app_db"]) as con:  # back, as a fixed sync would bring them
        con.executemany(
            "INSERT INTO listings VALUES (?, ?, 'Baixa', 38.7, -9.1, 100, '2026-11-30 00:00:00', 'Lisbon')",
            [("lst_2", "h2"), ("lst_3", "h1")],
        )
    sync_named(settings, "product")
    [health] = run_checks(settings, families=("app_refs",)).family("app_refs")
    assert health.state is State.OK


def test_a_plan_change_applies_from_then_on_and_needs_a_deploy(pipeline, capsys):
    """Violations are the verdicts recorded when events arrived: a plan change does not rewrite them.
    The hourly check fails until the views are deployed, and `plan diff` shows the new column first."""
    if pipeline["kind"] != "duckdb":
        pytest.skip("the same code on both warehouses; once is enough")
    from trackway.plan.deploy import PlanNotDeployed, require_deployed

    viewed = pipeline["plan"] / "events" / "listing_viewed.yaml"
    original = viewed.read_text()
    before = shutil.copytree(pipeline["plan"], pipeline["home"] / "plan-before", dirs_exist_ok=True)
    doc = yaml.safe_load(original)
    doc["properties"]["required"].append("bedrooms")
    doc["properties"]["properties"]["square_meters"] = {"type": "integer", "privacy": "public"}
    doc["version"] = "2-0-0"
    viewed.write_text(yaml.safe_dump(doc))
    try:
        assert run_dbt(load_settings(), "build").success
        rows = q(
            pipeline,
            "select count(*) from analytics.tracking_plan_violations "
            "where event_name = 'Listing Viewed' and kind = 'missing_required' and property = 'bedrooms'",
        )
        assert rows == [(0,)]  # judged by the plan in force when they arrived
        with pytest.raises(PlanNotDeployed, match=r"the plan changed since the last deploy.*trackway plan deploy"):
            require_deployed(load_settings())
        _the_hourly_check_alerts(pipeline)
        capsys.readouterr()
        assert main(["plan", "deploy", "--dry-run"]) == 0
        assert "view listing_viewed: column square_meters (bigint) added" in capsys.readouterr().out
        with pytest.raises(PlanNotDeployed):
            require_deployed(load_settings())  # a dry run changes nothing
        assert main(["plan", "diff", str(before), str(pipeline["plan"])]) == 0
        out = capsys.readouterr().out
        assert "view analytics_typed.listing_viewed: column square_meters (bigint) added" in out
        assert main(["plan", "deploy"]) == 0
        assert "1 replaced" in capsys.readouterr().out
        assert "deployed to" in require_deployed(load_settings())
        assert q(pipeline, "select count(square_meters) from analytics_typed.listing_viewed") == [(0,)]
    finally:
        viewed.write_text(original)
        assert main(["plan", "deploy"]) == 0


def _the_hourly_check_alerts(pipeline) -> None:
    """events_transform's check_typed_views fails without retrying, and the DAGs' notifier sends the alert."""
    from airflow.sdk.exceptions import AirflowFailException

    from trackway.orchestration.alerts import TrackwayAlertNotifier
    from trackway.orchestration.plan_tasks import check_typed_views

    with pytest.raises(AirflowFailException) as failed:
        check_typed_views()
    TrackwayAlertNotifier().notify({"run_id": "hourly", "exception": failed.value})
    alert = json.loads((pipeline["home"] / "alerts.ndjson").read_text().splitlines()[-1])
    assert (
        "typed views in analytics_typed are out of date" in alert["text"] and "trackway plan deploy" in alert["error"]
    )
