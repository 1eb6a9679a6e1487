"""Erasure on the BigQuery warehouse (bqemulator, fake-gcs-server): the ledger, load filtering, deletion, rewrite.

The warehouse part of issue 17's end-to-end scenario: raw objects loaded by BigQuery load
jobs, a deletion request, the run, verify showing 0, and a reload that brings nobody back.
dbt's marts on BigQuery are covered by tests/test_end_to_end_bigquery.py, not rebuilt here.
"""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from bigquery_stack import bigquery_stack
from raw_files import event
from trackway.cli import main
from trackway.config import load_settings
from trackway.load.loader import load_interval
from trackway.objectstore import open_object_store
from trackway.warehouse import open_warehouse

pytestmark = [pytest.mark.slow, pytest.mark.bigquery]
HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)
NEXT = HOUR + timedelta(hours=1)


@pytest.fixture
def bq_env(tmp_path_factory, trackway_env, monkeypatch):
    with bigquery_stack(tmp_path_factory.mktemp("bq-privacy")) as stack:
        for key, value in stack.env("t_privacy").items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("TRACKWAY_PRIVACY_LEDGER_KEY", "d" * 64)
        yield stack


def _gz(lines: list[dict]) -> bytes:
    return gzip.compress(b"".join(json.dumps(x).encode() + b"\n" for x in lines), mtime=0)


def _staging_copies() -> list[str]:
    """The load jobs' staging tables (``raw._stage_<hash>``): an object's lines, as loaded."""
    with open_warehouse(load_settings().warehouse, read_only=True) as wh:
        return [table for table in wh.table_columns(("raw",)) if table.startswith("raw._stage_")]


def test_erasure_on_bigquery(bq_env, capsys):
    settings = load_settings()
    store = open_object_store(settings.raw_url, gcs_client=bq_env.gcs.client())
    erased = [event(f"s-{i}", userId="user-bq", anonymousId="anon-bq") for i in range(3)]
    kept = [event(f"k-{i}", userId="user-keep") for i in range(4)]
    store.put_bytes("events/dt=2026-11-22/hour=10/a.ndjson.gz", _gz(erased + kept))
    assert load_interval(settings, HOUR, NEXT).rows_loaded == 7

    assert main(["privacy", "request", "--type", "suppress_with_delete", "--user-id", "user-bq"]) == 0
    (request_id,) = set(re.findall(r"rq-\d{8}T\d{6}-[0-9a-f]{8}", capsys.readouterr().out))
    pending = load_interval(settings, HOUR, NEXT, reload=True)  # a pending deletion: the load leaves them out
    assert (pending.rows_loaded, pending.erased_lines) == (4, 3)
    assert len(_staging_copies()) == 1  # the load job's copy of the object, every line (kept 2 days for retries)
    assert main(["privacy", "run"]) == 0
    out = capsys.readouterr().out
    assert "1 finished, 0 failed" in out and "1 rewritten, 3 line(s) removed" in out, out
    assert _staging_copies() == []  # the rewrite took the erased lines' last copy with it

    assert main(["privacy", "verify", request_id, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["clean"] and result["raw_objects"]["lines"] == 0 and result["warehouse"]["raw.events_raw"] == 0
    assert main(["privacy", "status", request_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["subjects"] == {"requested": 1, "linked": 1}  # anon-bq, from raw
    reload = load_interval(settings, HOUR, NEXT, reload=True)
    assert (reload.rows_loaded, reload.erased_lines) == (4, 0)  # rewritten: nothing left to filter
    with open_warehouse(settings.warehouse) as wh:
        assert wh.query("SELECT count(*) FROM raw.events_raw WHERE user_id = 'user-bq'") == [(0,)]
        assert wh.query("SELECT count(*) FROM privacy.requests") == [(1,)]


def test_retention_reaches_the_marts_on_bigquery(bq_env, monkeypatch, capsys):
    """`trackway privacy run --as-of` 100 days later on BigQuery: the raw table, the raw objects on GCS and dbt's
    tables keep only the allowlist, and a delete rule's rows go, as on DuckDB and PostgreSQL
    (tests/test_privacy_retention.py, whose plan and events this reuses). dbt-bigquery builds analytics.events
    and what it reads (`--select +events`), from .dbt-venv."""
    from test_privacy_retention import SECRETS, _events, _plan
    from trackway.privacy.retention import MART_SCHEMAS
    from trackway.rawdata.partitions import hour_floor
    from trackway.transform.dbt_runner import run_dbt

    settings = load_settings()
    monkeypatch.setenv("TRACKWAY_PLAN_DIR", str(_plan(settings.home)))
    monkeypatch.delenv("TRACKWAY_RETENTION_DEFAULT", raising=False)  # the built-in default
    settings = load_settings()
    hour = hour_floor(datetime.now(UTC)) - timedelta(hours=2)
    store = open_object_store(settings.raw_url, gcs_client=bq_env.gcs.client())
    kept, deleted, _ = _events(hour)
    folder = f"events/dt={hour:%Y-%m-%d}/hour={hour:%H}"
    store.put_bytes(f"{folder}/part-1.ndjson.gz", _gz(kept))
    store.put_bytes(f"{folder}/part-2.ndjson.gz", _gz(deleted))  # only the delete rule's lines: the object goes
    assert load_interval(settings, hour, hour + timedelta(hours=1)).rows_loaded == 5
    build = run_dbt(settings, "run", "--select", "+events")
    assert build.success, build.summary()

    def leftovers() -> list[str]:
        found = []
        with open_warehouse(load_settings().warehouse, read_only=True) as wh:
            for table in sorted(wh.table_columns(("raw", *MART_SCHEMAS))):
                for (text,) in wh.query(f"SELECT TO_JSON_STRING(t) FROM {table} AS t"):
                    found += [f"{value} in {table}" for value in (*SECRETS, "m-fav-") if value in text]
        return sorted(set(found))

    assert any("analytics.events" in place for place in leftovers())  # everything is there, whole
    as_of = (datetime.now(UTC) + timedelta(days=100)).isoformat()
    assert main(["privacy", "run", "--as-of", as_of]) == 0
    out = capsys.readouterr().out
    assert "raw.events_raw: delete 2 row(s), sanitize 3" in out, out
    assert "analytics.events: delete 2 row(s), sanitize 3" in out, out
    assert leftovers() == []  # the staging copies of the rewritten objects included
    with open_warehouse(load_settings().warehouse, read_only=True) as wh:
        rows = dict(wh.query("SELECT event_id, ip FROM analytics.events"))
    assert rows == {"m-identify": None, "m-signup": None, "m-page": None}
    assert not store.exists(f"{folder}/part-2.ndjson.gz")
    text = gzip.decompress(store.read_bytes(f"{folder}/part-1.ndjson.gz")).decode()
    assert not [value for value in SECRETS if value in text] and "m-signup" in text
