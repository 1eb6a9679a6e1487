"""The BigQuery warehouse on bqemulator: load jobs from fake-gcs-server objects, the ledger, reruns, status, query.

Emulator workarounds are in tests/bq_emulator.py; what the emulator cannot show
is listed in README "Scale-out".
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest

from bigquery_stack import bigquery_stack
from raw_files import event
from trackway.cli import main as cli
from trackway.config import load_settings
from trackway.load.loader import load_interval
from trackway.objectstore import open_object_store
from trackway.warehouse import open_warehouse
from trackway.warehouse.bigquery_warehouse import load_job_id

HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)
NEXT = HOUR + timedelta(hours=1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with bigquery_stack(tmp_path_factory.mktemp("bq")) as s:
        yield s


@pytest.fixture
def bq_env(stack, trackway_env, monkeypatch, request):
    prefix = "t_" + request.node.name.replace("test_", "")[:20]
    for key, value in stack.env(prefix).items():
        monkeypatch.setenv(key, value)
    return prefix


def _gz(lines: list) -> bytes:
    body = b"".join((json.dumps(x).encode() if isinstance(x, dict) else x) + b"\n" for x in lines)
    return gzip.compress(body, mtime=0)


@pytest.mark.bigquery
def test_load_jobs_ledger_reruns_status_and_query(bq_env, stack, capsys):
    settings = load_settings()
    assert settings.warehouse.kind == "bigquery"
    store = open_object_store(settings.raw_url, gcs_client=stack.gcs.client())
    part = "events/dt=2026-11-22/hour=10/"
    store.put_bytes(
        part + "a.ndjson.gz",
        _gz([event(f"a-{i}", properties={"i": i, "q": 'say "hi", ok'}) for i in range(30)] + [b"{not json", b""]),
    )
    store.put_bytes(part + "b.ndjson.gz", _gz([event("b-1", userId={"nested": 1}), b"[1, 2]"]))
    store.put_bytes("quarantine/dt=2026-11-22/hour=10/q.ndjson.gz", _gz([{"reason": "no type", "event": "{}"}]))

    first = load_interval(settings, HOUR, NEXT)
    assert (first.objects_loaded, first.rows_loaded, first.parse_errors, first.quarantined_rows) == (3, 33, 2, 1)
    assert first.blank_lines == 1 and first.object_errors == []
    again = load_interval(settings, HOUR, NEXT)
    assert (again.objects_loaded, again.objects_skipped) == (0, 3)

    # Changed content under the same name: only that object's rows are replaced, in one transaction.
    store.put_bytes(part + "b.ndjson.gz", _gz([event("b-1"), event("b-2")]))
    changed = load_interval(settings, HOUR, NEXT)
    assert (changed.objects_loaded, changed.rows_loaded, changed.parse_errors) == (1, 2, 0)
    # reload=True replaces the interval's objects again, still once each.
    assert load_interval(settings, HOUR, NEXT, reload=True).objects_loaded == 3

    with open_warehouse(settings.warehouse) as wh:
        rows = wh.query("SELECT source_object, count(*) FROM raw.events_raw GROUP BY 1 ORDER BY 1")
        assert rows == [
            (f"{settings.raw_url}/events/dt=2026-11-22/hour=10/a.ndjson.gz", 31),
            (f"{settings.raw_url}/events/dt=2026-11-22/hour=10/b.ndjson.gz", 2),
        ]
        assert wh.query("SELECT count(DISTINCT message_id), count(DISTINCT load_id) FROM raw.events_raw") == [(32, 1)]
        errors = wh.query("SELECT parse_error, raw FROM raw.events_raw WHERE parse_error IS NOT NULL")
        assert errors == [("invalid JSON", "{not json")]
        typed = wh.query("SELECT type, event, user_id, timestamp FROM raw.events_raw WHERE message_id = ?", ["a-7"])
        assert typed == [("track", "Listing Viewed", "u-1", "2026-11-22T10:15:00.000Z")]
        line = wh.query("SELECT raw FROM raw.events_raw WHERE message_id = 'a-7'")[0][0]
        assert json.loads(line)["properties"] == {"i": 7, "q": 'say "hi", ok'}  # the line is kept whole
        assert wh.query("SELECT reason FROM raw.events_quarantine") == [("no type",)]
        ledger = wh.query("SELECT rows_loaded, parse_errors, blank_lines FROM raw.loaded_objects ORDER BY 1")
        assert ledger == [(1, 0, 0), (2, 0, 0), (31, 1, 1)]
        assert wh.query("SELECT count(*) FROM raw.load_runs") == [(4,)]
        # Load jobs keep no line order: line numbers are unique per object and load, not positions.
        assert wh.query(
            "SELECT count(*), count(DISTINCT CONCAT(source_object, '#', CAST(line_number AS STRING))) FROM raw.events_raw"
        ) == [(33, 33)]
        assert settings.warehouse.dataset("raw") == f"{bq_env}_raw"  # datasets carry the URL's prefix

    assert cli(["status"]) == 0
    out = capsys.readouterr().out
    assert f"warehouse: bigquery://trackway-test/{bq_env}" in out
    assert "rows in raw.events_raw" in out and " 33" in out
    assert cli(["query", "SELECT event, count(*) AS n FROM raw.events_raw GROUP BY event"]) == 0
    out = capsys.readouterr().out
    assert "Listing Viewed" in out and "(2 rows)" in out
    assert cli(["query", "DELETE FROM raw.events_raw WHERE true"]) == 1  # read-only
    assert "read-only" in capsys.readouterr().err
    with open_warehouse(settings.warehouse) as wh:
        assert wh.query("SELECT count(*) FROM raw.events_raw") == [(33,)]


@pytest.mark.bigquery
def test_non_json_lines_land_with_a_reason_and_damaged_objects_are_recorded(bq_env, stack):
    settings = load_settings()
    store = open_object_store(settings.raw_url, gcs_client=stack.gcs.client())
    part = "events/dt=2026-11-22/hour=10/"
    store.put_bytes(part + "odd.ndjson.gz", _gz([b'"just a string"', b"42", event("ok-1"), b"\xef\xbb\xbf"]))
    store.put_bytes(part + "torn.ndjson.gz", _gz([event("t-1")])[:-12])  # truncated gzip
    report = load_interval(settings, HOUR, NEXT)
    assert report.objects_loaded == 2
    assert len(report.object_errors) == 1 and "torn.ndjson.gz" in report.object_errors[0]
    with open_warehouse(settings.warehouse) as wh:
        reasons = dict(wh.query("SELECT raw, parse_error FROM raw.events_raw WHERE parse_error IS NOT NULL"))
        ledger = wh.query("SELECT object_error IS NOT NULL, rows_loaded FROM raw.loaded_objects ORDER BY 2")
    # BigQuery's JSON_TYPE says "string"/"number"; bqemulator 1.4.0 answers DuckDB's type names
    # ("varchar", "ubigint"), so only the reason's stable part is checked.
    assert reasons['"just a string"'].startswith("not a JSON object (got ")
    assert reasons["42"].startswith("not a JSON object (got ")
    assert ledger == [(True, 0), (False, 4)] or ledger == [(True, 0), (False, 3)]


def test_load_job_ids_are_deterministic_per_object_version_and_day():
    day = datetime(2026, 11, 22, tzinfo=UTC).date()
    a = load_job_id("gs://lake/x/a.ndjson.gz", "size=1;etag=abc", day)
    assert a == load_job_id("gs://lake/x/a.ndjson.gz", "size=1;etag=abc", day)
    assert a != load_job_id("gs://lake/x/a.ndjson.gz", "size=1;etag=abd", day)
    assert a != load_job_id("gs://lake/x/a.ndjson.gz", "size=1;etag=abc", day + timedelta(days=1))
    assert a.startswith("trackway_load_") and len(a) <= 1024


def test_the_apply_script_quotes_hostile_object_urls():
    """Object keys are whatever a writer chose: '@loaded_at', quotes, backslashes, a newline.

    The script is parsed with sqlglot's BigQuery dialect (a real parser of BigQuery SQL):
    each URL must come back as exactly one string literal, unchanged. Before the fix a
    global text replace of '@loaded_at' rewrote such URLs into a timestamp.
    """
    import sqlglot
    from sqlglot import exp

    from trackway.config import WarehouseTarget
    from trackway.rawdata.records import PendingObject
    from trackway.rawdata.schema import EVENTS_RAW_TABLE
    from trackway.warehouse.bigquery_warehouse import BigQueryWarehouse

    urls = [
        "gs://lake/events/dt=2026-11-22/hour=10/a@loaded_at.ndjson.gz",
        "gs://lake/events/dt=2026-11-22/hour=10/it's \\ back'slash\\'.ndjson.gz",
        "gs://lake/events/dt=2026-11-22/hour=10/new\nline.ndjson.gz",
    ]
    wh = BigQueryWarehouse(WarehouseTarget.parse("bigquery://proj/tw"), client=object())
    batch = [PendingObject(url=u, fingerprint="f", size_bytes=1, table=EVENTS_RAW_TABLE) for u in urls]
    staged = [(batch[0], "_stage_a"), (batch[1], "_stage_b")]
    script = wh._apply_script(batch, staged, {urls[2]: "damaged"}, "load-1", "TIMESTAMP '2026-11-22T11:00:00+00:00'")
    literals = [
        node.this
        for statement in sqlglot.parse(script, read="bigquery")
        if statement is not None
        for node in statement.find_all(exp.Literal)
        if node.is_string
    ]
    for url in urls:
        assert url in literals, url
    assert "@loaded_at" not in script.replace(urls[0], "").replace("a@loaded_at", "")
