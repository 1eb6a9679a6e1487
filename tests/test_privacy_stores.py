"""Raw-object rewrites (erasure and retention) on S3 (moto, a versioned bucket) and GCS (fake-gcs-server).

The object is replaced in one put, its old versions are removed, and the load ledger
records the new fingerprint exactly as the loader computes it (through Airflow's
ObjectStoragePath), so the next load does not take the rewrite for new data.
"""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from collector_helpers import s3_env, start_moto
from gcs_emulator import FakeGCS
from raw_files import event
from trackway.cli import main
from trackway.config import load_settings
from trackway.load.loader import load_interval
from trackway.objectstore import open_object_store

HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)
KEY = "events/dt=2026-11-22/hour=10/part-1.ndjson.gz"


def _body() -> bytes:
    lines = [event(f"s-{i}", userId="user-erase") for i in range(3)] + [event(f"o-{i}", userId="u-2") for i in range(5)]
    return gzip.compress(b"".join(json.dumps(e).encode() + b"\n" for e in lines))


@pytest.fixture
def s3_lake(monkeypatch):
    server, endpoint = start_moto()
    for name, value in s3_env(endpoint).items():
        monkeypatch.setenv(name, value)
    # A connection id of its own: ObjectStoragePath caches filesystems per (protocol, conn_id) for the process.
    conn_id = f"trackway_erase_{endpoint.rsplit(':', 1)[1]}"
    connection = {"conn_type": "aws", "extra": {"endpoint_url": endpoint}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    monkeypatch.setenv("TRACKWAY_RAW_CONN_ID", conn_id)
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="erase")
    client.put_bucket_versioning(Bucket="erase", VersioningConfiguration={"Status": "Enabled"})
    monkeypatch.setenv("TRACKWAY_RAW_URL", "s3://erase/trackway")

    def versions(key: str = KEY) -> int:
        listed = client.list_object_versions(Bucket="erase", Prefix="trackway/" + key)
        return len(listed.get("Versions", [])) + len(listed.get("DeleteMarkers", []))

    yield versions
    server.stop()


@pytest.fixture
def gcs_lake(monkeypatch):
    server = FakeGCS().start()
    server.create_bucket("erase")
    for name, value in server.raw_store_env("erase", "trackway").items():
        monkeypatch.setenv(name, value)
    # fake-gcs-server keeps no noncurrent generations (its filesystem backend refuses versioning, the memory
    # one accepts it and keeps one generation): GCSObjectStore.delete_old_versions is not exercised here.
    yield None
    server.stop()


@pytest.mark.parametrize("lake", ["s3_lake", "gcs_lake"])
def test_rewrite_replaces_the_object_removes_old_versions_and_is_not_reloaded(
    lake, trackway_env, monkeypatch, request, capsys
):
    versions = request.getfixturevalue(lake)  # None: the store keeps no versions
    monkeypatch.setenv("TRACKWAY_PRIVACY_LEDGER_KEY", "a" * 64)
    store = open_object_store(load_settings().raw_url)
    store.put_bytes(KEY, _body())
    store.put_bytes(KEY, _body())  # uploaded twice (a retried upload): two versions of the same object
    assert versions is None or versions() == 2
    assert load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1)).rows_loaded == 8

    assert main(["privacy", "request", "--type", "delete_only", "--user-id", "user-erase"]) == 0
    (request_id,) = set(re.findall(r"rq-\d{8}T\d{6}-[0-9a-f]{8}", capsys.readouterr().out))  # (the servers log too)
    assert main(["privacy", "run"]) == 0
    out = capsys.readouterr().out
    removed = 0 if versions is None else 2
    assert f"1 rewritten, 3 line(s) removed, {removed} old version(s) removed, 0 failed" in out, out
    assert versions is None or versions() == 1  # only the rewritten object is left
    lines = gzip.decompress(store.read_bytes(KEY)).split(b"\n")
    assert lines[:3] == [b"", b"", b""] and b"user-erase" not in b"".join(lines) and len(lines) == 9
    again = load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1))
    assert (again.objects_loaded, again.objects_skipped) == (0, 1)  # the ledger knows the rewrite
    assert main(["privacy", "verify", request_id]) == 0


@pytest.mark.parametrize("lake", ["s3_lake", "gcs_lake"])
def test_retention_rewrites_sanitised_deletes_an_emptied_object_and_its_versions(
    lake, trackway_env, monkeypatch, request, capsys
):
    """Retention (docs/privacy.md#retention) through the same rewrite: a sanitised object, a deleted one."""
    versions = request.getfixturevalue(lake)
    monkeypatch.delenv("TRACKWAY_RETENTION_DEFAULT")  # the built-in default, 90 days then sanitize
    monkeypatch.setenv("TRACKWAY_PRIVACY_LEDGER_KEY", "a" * 64)
    plan = trackway_env / "plan"
    (plan / "events").mkdir(parents=True)
    (plan / "events" / "favorited.yaml").write_text(
        "name: Listing Favorited\nretention: {full_days: 30, then: delete}\n"
        "properties: {type: object, properties: {listing_id: {type: string, retain: true}}}\n"
    )
    monkeypatch.setenv("TRACKWAY_PLAN_DIR", str(plan))
    store = open_object_store(load_settings().raw_url)
    # Keys of their own: moto keeps its buckets for the whole process, whatever test ran before.
    hour = HOUR + timedelta(days=1)
    kept_key, doomed = (f"events/dt=2026-11-23/hour=10/part-{n}.ndjson.gz" for n in (1, 2))
    kept = b"".join(json.dumps(event(f"r-{i}", userId="u-kept")).encode() + b"\n" for i in range(8))
    store.put_bytes(kept_key, gzip.compress(kept))  # Listing Viewed: the default rule, sanitised (8 lines)
    store.put_bytes(doomed, gzip.compress(json.dumps(event("f-1", event="Listing Favorited")).encode() + b"\n"))
    store.put_bytes(doomed, gzip.compress(json.dumps(event("f-2", event="Listing Favorited")).encode() + b"\n"))
    assert load_interval(load_settings(), hour, hour + timedelta(hours=1)).rows_loaded == 9

    as_of = (hour + timedelta(days=100)).isoformat()
    assert main(["privacy", "run", "--as-of", as_of]) == 0
    out = capsys.readouterr().out
    assert "events/dt=2026-11-23/: 1 object(s) rewritten, 1 deleted; 8 line(s) sanitized, 1 deleted" in out, out
    assert not store.exists(doomed) and (versions is None or versions(kept_key) == 1)  # part-1's rewrite only
    assert versions is None or versions(doomed) == 1  # both versions of part-2 gone: only S3's delete marker left
    lines = [json.loads(line) for line in gzip.decompress(store.read_bytes(kept_key)).splitlines()]
    assert [line["properties"] for line in lines] == [{"listing_id": None, "price_per_night": None}] * 8
    again = load_interval(load_settings(), hour, hour + timedelta(hours=1))
    assert (again.objects_loaded, again.objects_skipped) == (0, 1)  # the ledger knows the rewrite
