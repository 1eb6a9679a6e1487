"""Segment SDK → collector over HTTP → raw objects → events_load → events_transform → analytics.events.

Every part is real: the collector runs as its own process, the official
Segment Python SDK is the client, the DAGs run with ``dag.test()`` against a
SQLite Airflow DB, and dbt builds on DuckDB and on a real PostgreSQL server.
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from segment.analytics import Client

from collector_helpers import WRITE_KEYS, CollectorProcess
from raw_files import event, hour_dir, write_gz_lines
from trackway.config import load_settings
from trackway.health.checks import State
from trackway.health.observe import run_checks
from trackway.rawdata.partitions import hour_floor, hours_between
from trackway.transform.dbt_runner import release_duckdb, run_dbt
from trackway.transform.manifest import compile_manifest
from trackway.warehouse import open_warehouse

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _load_dag(name: str):
    spec = importlib.util.spec_from_file_location(f"dag_{name}", REPO_ROOT / "dags" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)()


def _send_through_sdk(port: int, write_key: str) -> tuple[dict[str, dict], list[str]]:
    """Send a mix of calls; return what was sent by messageId and the ids the SDK saw fail."""
    failed: list[str] = []
    client = Client(
        write_key,
        host=f"http://127.0.0.1:{port}",
        upload_size=10,
        max_retries=1,
        on_error=lambda exc, batch: failed.extend(m["messageId"] for m in batch),
    )
    sent: dict[str, dict] = {}
    t0 = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)

    def call(method: str, **kwargs) -> str:
        message_id = kwargs.setdefault("message_id", str(uuid.uuid4()))
        getattr(client, method)(**kwargs)
        sent[message_id] = {"method": method, **kwargs}
        return message_id

    for i in range(30):
        call(
            "track",
            user_id=f"user-{i % 7}",
            event="Listing Viewed",
            timestamp=t0 + timedelta(minutes=i),
            properties={
                "listing_id": f"lst_{i:05d}",
                "price_per_night": 100 + i,
                "amenities": ["wifi", "pool"],
                "host": {"name": "Zoë", "superhost": i % 2 == 0},
            },
            context={"sessionId": 1_700_000_000_000 + i // 10, "userAgent": "Mozilla/5.0 (test)"},
        )
    call(
        "page",
        anonymous_id="anon-1",
        category="Marketing",
        name="Home",
        timestamp=t0,
        properties={
            "url": "https://nestful.example/?q=1",
            "path": "/",
            "referrer": "https://search.example/",
            "title": "Nestful",
        },
    )
    call("screen", user_id="user-1", name="Listing", timestamp=t0, properties={"listing_id": "lst_00001"})
    call(
        "identify",
        user_id="user-1",
        anonymous_id="anon-1",
        timestamp=t0,
        traits={"email": "a@example.com", "role": "renter"},
    )
    call("group", user_id="user-1", group_id="agency-1", timestamp=t0, traits={"name": "Acme Lettings"})
    call("alias", previous_id="anon-1", user_id="user-1", timestamp=t0)
    # One device, two anonymous sessions 50 minutes apart (the second batch merges and stitches them).
    call("page", anonymous_id="anon-9", name="Home", timestamp=t0, properties={"path": "/"})
    call("page", anonymous_id="anon-9", name="Search", timestamp=t0 + timedelta(minutes=50), properties={"path": "/s"})
    retried = call(
        "track", user_id="user-2", event="Showing Requested", timestamp=t0, properties={"listing_id": "lst_00002"}
    )
    # A client retry: the very same message sent again.
    client.track(
        user_id="user-2",
        event="Showing Requested",
        timestamp=t0,
        properties={"listing_id": "lst_00002"},
        message_id=retried,
    )
    client.flush()
    client.shutdown()
    return sent, failed


def _assert_transform_is_queued_by_the_asset(expected_rows: int) -> None:
    """What the scheduler acts on: the load's asset events, and events_transform queued on them.

    The Airflow DB is shared by the session: the own_asset_events fixture leaves only this test's.
    """
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        asset_id = session.scalar(select(AssetModel.id).where(AssetModel.uri == "trackway://warehouse/raw/events_raw"))
        extras = session.scalars(select(AssetEvent.extra).where(AssetEvent.asset_id == asset_id)).all()
        queued = session.scalars(
            select(AssetDagRunQueue.target_dag_id).where(AssetDagRunQueue.asset_id == asset_id)
        ).all()
    assert sum(extra["rows_loaded"] for extra in extras) == expected_rows
    assert queued == ["events_transform"]


def test_sdk_to_analytics_events(tmp_path, trackway_env, own_asset_events, monkeypatch, request):
    end_to_end("duckdb", tmp_path, trackway_env, monkeypatch, request)


def end_to_end(warehouse: str, tmp_path: Path, trackway_env: Path, monkeypatch, request) -> None:
    """The whole run on one warehouse (PostgreSQL: tests/test_end_to_end_postgres.py, a file of its own so
    that the test order in tests/conftest.py can place it)."""
    monkeypatch.setenv("TRACKWAY_WRITE_KEYS", ",".join(f"{s}:{k}" for k, s in WRITE_KEYS.items()))
    if warehouse == "postgres":
        from postgres_server import create_database

        monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", create_database(request.getfixturevalue("postgres_url"), "e2e"))
    compile_manifest(load_settings())  # `trackway transform compile`: the manifest events_transform loads
    started = hour_floor(datetime.now(UTC))
    collector = CollectorProcess(trackway_env).start()
    try:
        sent, failed = _send_through_sdk(collector.port, "key-web")
        accepted = collector.health()["events_accepted"]
    finally:
        assert collector.stop() == 0  # SIGTERM: flush, upload, exit 0
    assert failed == []
    assert accepted == len(sent) + 1  # the retry was acknowledged too

    # A raw object from another system, with a garbage line in it.
    garbage_dir = hour_dir(trackway_env / "raw", f"{started:%Y-%m-%d}", started.hour)
    write_gz_lines(garbage_dir / "legacy-export.ndjson.gz", ['{"messageId": "broken", "type": "track", ', "%%%"])

    finished = hour_floor(datetime.now(UTC))
    load_dag = _load_dag("events_load")
    for hour in hours_between(started, finished + timedelta(hours=1)):
        run = load_dag.test(logical_date=hour + timedelta(hours=1))
        assert run.state == "success"
    _assert_transform_is_queued_by_the_asset(expected_rows=len(sent) + 1 + 2)
    assert _load_dag("events_transform").test().state == "success"
    _assert_health_sees_the_transform()

    settings = load_settings()
    with open_warehouse(settings.warehouse, read_only=True) as wh:
        rows = wh.query(
            "SELECT event_id, event_type, event_name, user_id, anonymous_id, source_id, "
            "CAST(properties AS VARCHAR), CAST(traits AS VARCHAR), original_timestamp, occurred_at, session_id, "
            "page_path, page_url, referrer, page_name, group_id, previous_id, user_agent, ip "
            "FROM analytics.events"
        )
        garbage = wh.query(
            "SELECT raw, parse_error FROM raw.events_raw WHERE source_object LIKE '%legacy-export%' ORDER BY line_number"
        )
        rejected = wh.query(
            "SELECT count(*) FROM analytics.events_rejected WHERE reject_reason = 'parse_error' AND source_object LIKE '%legacy-export%'"
        )

    by_id = {r[0]: r for r in rows}
    assert len(rows) == len(by_id) == len(sent), "every acknowledged event exactly once"
    assert set(by_id) == set(sent)
    expected_name = {
        "page": "Page Viewed",
        "screen": "Screen Viewed",
        "identify": "Identify",
        "group": "Group",
        "alias": "Alias",
    }
    for message_id, call in sent.items():
        row = by_id[message_id]
        (
            _,
            event_type,
            event_name,
            user_id,
            anonymous_id,
            source_id,
            properties,
            traits,
            original_ts,
            occurred_at,
            session_id,
            page_path,
            page_url,
            referrer,
            page_name,
            group_id,
            previous_id,
            user_agent,
            ip,
        ) = row
        assert event_type == call["method"]
        assert event_name == call.get("event", expected_name.get(call["method"]))
        assert user_id == call.get("user_id")
        assert source_id == "web"
        assert original_ts == call["timestamp"]
        assert abs(occurred_at - call["timestamp"]) < timedelta(minutes=1)  # skew-corrected against sentAt
        assert ip == "127.0.0.0"  # the request address, truncated to its /24 (docs/privacy.md)
        if call["method"] in ("track", "page", "screen"):
            assert json.loads(properties) == call.get("properties", {})
        if call["method"] == "identify":  # no keyring here: traits.email (hash) is dropped, never kept in clear
            assert json.loads(traits) == {k: v for k, v in call["traits"].items() if k != "email"}
            assert anonymous_id == "anon-1"
        if call["method"] == "track" and "context" in call:
            assert session_id == str(call["context"]["sessionId"])
            assert user_agent == "Mozilla/5.0 (test)"
        if call["method"] == "page" and call["anonymous_id"] == "anon-1":
            assert (page_path, page_url, referrer, page_name) == (
                "/",
                "https://nestful.example/?q=1",
                "https://search.example/",
                "Home",
            )
        if call["method"] == "group":
            assert group_id == "agency-1"
        if call["method"] == "alias":
            assert previous_id == "anon-1"

    assert [g[0] for g in garbage] == ['{"messageId": "broken", "type": "track", ', "%%%"]
    assert all(g[1].startswith("invalid JSON") for g in garbage)
    assert rejected == [(2,)]

    _second_batch_then_full_refresh(garbage_dir, sent, started, load_dag)


def _assert_health_sees_the_transform() -> None:
    """Every dbt invocation recorded itself in audit.dbt_results (an on-run-end hook): health reads it."""
    report = run_checks(load_settings(), families=("freshness", "dbt_tests"))
    checks = {r.check: r for r in report.results}
    assert "transform_stale" in checks, [r.summary for r in report.results]
    assert checks["transform_stale"].state is State.OK and checks["transform_stale"].summary.endswith("ago")
    assert checks["load_stale"].state is State.OK
    [tests] = report.family("dbt_tests")
    assert tests.state is State.OK and tests.value and tests.value > 10, tests.summary


def _snapshot(settings) -> dict[str, list]:
    """Every mart, rows sorted, without the bookkeeping column transformed_at."""
    tables = ["events", "events_rejected", "sessions", "identity_map", "users", "daily_active_users"]
    out = {}
    # dag.test() ran dbt in this process, and dbt-duckdb keeps its read-write handle open; queries
    # (query_with_headers) run only on a read-only one, which DuckDB gives once that handle is closed.
    release_duckdb()
    with open_warehouse(settings.warehouse, read_only=True) as wh:
        for table in [*tables, "experiment_assignments"]:
            headers, rows = wh.query_with_headers(f"SELECT * FROM analytics.{table}", limit=1_000_000)
            keep = [i for i, h in enumerate(headers) if h != "transformed_at"]
            out[table] = sorted(repr(tuple(str(row[i]) for i in keep)) for row in rows)
    return out


def _second_batch_then_full_refresh(folder: Path, sent: dict, started: datetime, load_dag) -> None:
    """Duplicates of the first batch, a late event merging anon-9's two sessions, and an identify stitching them."""
    t0 = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
    first_ids = list(sent)[:3]
    duplicates = [
        event(mid, userId="user-0", properties={"copy": "late"}, receivedAt="2026-11-29T10:00:00.000Z")
        for mid in first_ids
    ]
    late = event(
        "late-merge",
        userId=None,
        anonymousId="anon-9",
        event="Filter Changed",
        timestamp=(t0 + timedelta(minutes=25)).isoformat(),
        receivedAt="2026-11-22T11:00:00.000Z",
    )
    identify = event(
        "identify-9",
        type="identify",
        event=None,
        userId="user-9",
        anonymousId="anon-9",
        timestamp="2026-11-23T08:00:00Z",
        receivedAt="2026-11-23T08:00:01.000Z",
        traits={"plan": "pro"},
    )
    write_gz_lines(folder / "second-batch.ndjson.gz", [*duplicates, late, identify])
    assert load_dag.test(logical_date=started + timedelta(hours=1)).state == "success"
    assert _load_dag("events_transform").test().state == "success"

    settings = load_settings()
    with open_warehouse(settings.warehouse, read_only=True) as wh:
        ids = [r[0] for r in wh.query("SELECT event_id FROM analytics.events")]
        kept = wh.query(f"SELECT CAST(properties AS VARCHAR) FROM analytics.events WHERE event_id = '{first_ids[0]}'")[
            0
        ][0]
        anon9 = wh.query(
            "SELECT count(DISTINCT session_id), count(*), min(person_id), max(person_id) "
            "FROM analytics.events WHERE anonymous_id = 'anon-9'"
        )[0]
        sessions = wh.query(
            "SELECT events, person_id, user_id FROM analytics.sessions WHERE anonymous_id = 'anon-9' "
            "ORDER BY started_at"
        )
    assert len(ids) == len(set(ids)) == len(sent) + 2  # the three duplicates added nothing
    assert json.loads(kept) == sent[first_ids[0]].get("properties", {})  # the first copy was kept
    assert anon9 == (2, 4, "user-9", "user-9")  # pages + late merge in one session, identify in its own
    assert sessions[0] == (3, "user-9", "user-9")  # the earlier anonymous session belongs to user-9 now

    incremental = _snapshot(settings)
    run_dbt(settings, "build", "--full-refresh")
    assert _snapshot(settings) == incremental
