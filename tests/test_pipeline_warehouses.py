"""The loader's output is exactly what the dbt project expects, on every warehouse backend.

Raw objects (collector-shaped and hand-written garbage) → load_interval → dbt build,
on DuckDB and on a real PostgreSQL server.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from raw_files import event, hour_dir, write_gz_lines
from trackway.config import load_settings
from trackway.load.loader import load_interval
from trackway.status import stage_counts
from trackway.transform.dbt_runner import run_dbt
from trackway.warehouse import open_warehouse

HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_load_then_transform(backend, trackway_env, request, monkeypatch):
    if backend == "postgres":
        from postgres_server import create_database

        monkeypatch.setenv(
            "TRACKWAY_WAREHOUSE_URL", create_database(request.getfixturevalue("postgres_url"), "pipeline")
        )
    folder = hour_dir(trackway_env / "raw", "2026-11-22", 10)
    page = event(
        "p-1",
        type="page",
        name="Home",
        event=None,
        anonymousId="a-1",
        userId=None,
        properties={"path": "/", "url": "https://nestful.example/", "title": "Nestful"},
        context={
            "page": {"path": "/", "url": "https://nestful.example/", "referrer": "https://ref.example/"},
            "sessionId": 1732270000000,
        },
    )
    # RudderStack SDKs send identify traits in context.traits only.
    rudder_identify = event("i-1", type="identify", event=None, properties=None, context={"traits": {"plan": "pro"}})
    write_gz_lines(
        folder / "a.ndjson.gz",
        [event(f"m-{i}", properties={"i": i, "tags": ["x", "ü"]}) for i in range(20)] + [page, rudder_identify],
    )
    write_gz_lines(
        folder / "b.ndjson.gz",
        [event("m-3"), "{garbage", '{"messageId": "m-nul", "type": "track", "userId": "u", "event": "a\\u0000b"}'],
    )

    report = load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1))
    assert (report.rows_loaded, report.parse_errors) == (25, 2)
    dbt = run_dbt(load_settings(), "build")
    assert dbt.success and dbt.tests_failed == 0 and dbt.models >= 4
    # A second build in the same process (a long-lived worker, or a retry) works and changes nothing.
    assert run_dbt(load_settings(), "build").success

    counts = stage_counts(load_settings())
    assert (counts.raw_rows, counts.raw_parse_errors, counts.rejected, counts.events) == (25, 2, 2, 22)
    assert counts.duplicates == 1  # m-3 came twice

    with open_warehouse(load_settings().warehouse) as wh:
        events = dict(wh.query("SELECT event_id, event_type FROM analytics.events"))
        rejected = wh.query("SELECT reject_reason, count(*) FROM analytics.events_rejected GROUP BY reject_reason")
        page_row = wh.query(
            "SELECT page_path, referrer, session_id, anonymous_id FROM analytics.events WHERE event_id = 'p-1'"
        )
        props = wh.query("SELECT CAST(properties AS VARCHAR) FROM analytics.events WHERE event_id = 'm-7'")[0][0]
        traits = wh.query("SELECT CAST(traits AS VARCHAR) FROM analytics.events WHERE event_id = 'i-1'")[0][0]
    assert len(events) == 22 and events["p-1"] == "page"  # m-3 twice → once
    assert dict(rejected) == {"parse_error": 2}
    assert page_row == [("/", "https://ref.example/", "1732270000000", "a-1")]
    assert json.loads(props) == {"i": 7, "tags": ["x", "ü"]}
    assert json.loads(traits) == {"plan": "pro"}
