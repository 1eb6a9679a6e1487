"""events_load reads S3 through Airflow's ObjectStoragePath: tested against moto in server mode on loopback.

The collector writes with its own S3ObjectStore; the loader reads with
ObjectStoragePath and an Airflow connection, the way production does.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest

from collector_helpers import s3_env, start_moto
from raw_files import event
from trackway.config import load_settings
from trackway.load.loader import load_interval
from trackway.objectstore import open_object_store
from trackway.warehouse import open_warehouse

HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)


@pytest.fixture
def moto_s3(monkeypatch):
    server, endpoint = start_moto()
    for key, value in s3_env(endpoint).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(
        "AIRFLOW_CONN_TRACKWAY_RAW", json.dumps({"conn_type": "aws", "extra": {"endpoint_url": endpoint}})
    )
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="lake")
    yield endpoint
    server.stop()


def test_load_from_s3_exactly_once(trackway_env, moto_s3, monkeypatch, tmp_path):
    monkeypatch.setenv("TRACKWAY_RAW_URL", "s3://lake/trackway")
    monkeypatch.setenv("TRACKWAY_RAW_CONN_ID", "trackway_raw")
    settings = load_settings()
    store = open_object_store(settings.raw_url)
    body = gzip.compress(b"".join(json.dumps(event(f"m-{i}")).encode() + b"\n" for i in range(100)) + b"not json\n")
    local = tmp_path / "part.ndjson.gz"
    local.write_bytes(body)
    store.put_file("events/dt=2026-11-22/hour=10/part-1.ndjson.gz", local)
    store.put_file("events/dt=2026-11-22/hour=10/_SUCCESS", local)

    first = load_interval(settings, HOUR, HOUR + timedelta(hours=1))
    second = load_interval(settings, HOUR, HOUR + timedelta(hours=1))
    assert (first.objects_loaded, first.rows_loaded, first.parse_errors) == (1, 101, 1)
    assert (second.objects_loaded, second.objects_skipped) == (0, 1)
    with open_warehouse(settings.warehouse) as wh:
        assert wh.query("SELECT DISTINCT source_object FROM raw.events_raw") == [
            ("s3://lake/trackway/events/dt=2026-11-22/hour=10/part-1.ndjson.gz",)
        ]
        (fingerprint,) = wh.query("SELECT fingerprint FROM raw.loaded_objects")[0]
    assert "etag=" in fingerprint and fingerprint != "etag="
