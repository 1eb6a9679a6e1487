"""The loader's output is exactly what the dbt project expects, on every warehouse backend.

Raw objects (collector-shaped and hand-written garbage) → load_interval → dbt build,
on DuckDB, on a real PostgreSQL server, and on BigQuery (bqemulator, raw objects in
fake-gcs-server, dbt-bigquery from the dbt environment).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from raw_files import event, hour_dir, write_gz_lines
from trackway.config import load_settings
from trackway.load.loader import load_interval
from trackway.objectstore import open_object_store
from trackway.status import stage_counts
from trackway.transform.dbt_runner import run_dbt
from trackway.warehouse import open_warehouse

HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def bigquery(tmp_path_factory):
    from bigquery_stack import bigquery_stack

    with bigquery_stack(tmp_path_factory.mktemp("bq")) as stack:
        yield stack


@pytest.mark.parametrize("backend", ["duckdb", "postgres", pytest.param("bigquery", marks=pytest.mark.bigquery)])
def test_load_then_transform(backend, trackway_env, request, monkeypatch):
    if backend == "postgres":
        from postgres_server import create_database

        monkeypatch.setenv(
            "TRACKWAY_WAREHOUSE_URL", create_database(request.getfixturevalue("postgres_url"), "pipeline")
        )
    if backend == "bigquery":
        stack = request.getfixturevalue("bigquery")
        for key, value in stack.env("pipeline").items():
            monkeypatch.setenv(key, value)
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

    if backend == "bigquery":  # the same objects, in gs:// where BigQuery load jobs read them
        store = open_object_store(load_settings().raw_url, gcs_client=stack.gcs.client())
        for path in sorted(folder.iterdir()):
            store.put_file(f"events/dt=2026-11-22/hour=10/{path.name}", path)
    report = load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1))
    # "a\u0000b": the DuckDB/PostgreSQL loader refuses the escape at load (jsonb cannot store it);
    # BigQuery's JSON type stores it, so there the line is a JSON object and dbt rejects it for
    # its next fault (no receivedAt): still rejected with a reason, one stage later.
    nul_ok = backend == "bigquery"
    assert (report.rows_loaded, report.parse_errors) == (25, 1 if nul_ok else 2)
    dbt = run_dbt(load_settings(), "build")
    assert dbt.success and dbt.tests_failed == 0 and dbt.models >= 4
    if backend == "bigquery":
        # (dbt-bigquery's incremental MERGEs: tests/test_dbt_incremental_bigquery.py)
        _parse_compiled_sql_as_bigquery(trackway_env / "dbt" / "target")
    else:
        # A second build in the same process (a long-lived worker, or a retry) works and changes nothing.
        assert run_dbt(load_settings(), "build").success

    counts = stage_counts(load_settings())
    expected = (25, 1, 2, 22) if nul_ok else (25, 2, 2, 22)
    assert (counts.raw_rows, counts.raw_parse_errors, counts.rejected, counts.events) == expected
    assert counts.duplicates == 1  # m-3 came twice

    with open_warehouse(load_settings().warehouse) as wh:
        events = dict(wh.query("SELECT event_id, event_type FROM analytics.events"))
        rejected = wh.query("SELECT reject_reason, count(*) FROM analytics.events_rejected GROUP BY reject_reason")
        page_row = wh.query(
            "SELECT page_path, referrer, session_id, anonymous_id FROM analytics.events WHERE event_id = 'p-1'"
        )
        # BigQuery's client returns JSON columns parsed. (bqemulator 1.4.0's TO_JSON_STRING(json)
        # double-encodes, so the test reads the column itself.)
        as_text = "{}" if backend == "bigquery" else "CAST({} AS VARCHAR)"
        props = wh.query(f"SELECT {as_text.format('properties')} FROM analytics.events WHERE event_id = 'm-7'")[0][0]
        traits = wh.query(f"SELECT {as_text.format('traits')} FROM analytics.events WHERE event_id = 'i-1'")[0][0]
    assert len(events) == expected[3] and events["p-1"] == "page"  # m-3 twice → once
    assert dict(rejected) == ({"parse_error": 1, "missing_received_at": 1} if nul_ok else {"parse_error": 2})
    assert page_row == [("/", "https://ref.example/", "1732270000000", "a-1")]
    assert (json.loads(props) if isinstance(props, str) else props) == {"i": 7, "tags": ["x", "ü"]}
    assert (json.loads(traits) if isinstance(traits, str) else traits) == {"plan": "pro"}


def _parse_compiled_sql_as_bigquery(target: Path) -> None:
    """bqemulator runs SQL on DuckDB and accepts things BigQuery would not: parse every compiled
    model and test, and every statement dbt ran, with sqlglot's BigQuery dialect."""
    import sqlglot

    files = sorted((target / "compiled").rglob("*.sql")) + sorted((target / "run").rglob("*.sql"))
    models = [f for f in files if "/models/" in f.as_posix()]
    assert len(models) >= 10, files  # 5 models, compiled and run
    for path in files:
        try:
            statements = sqlglot.parse(path.read_text(), read="bigquery")
        except sqlglot.errors.SqlglotError as exc:
            raise AssertionError(f"{path.relative_to(target)} is not valid BigQuery SQL: {exc}") from exc
        assert any(statements), path
