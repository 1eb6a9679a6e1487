"""events_load reads gs:// through Airflow's ObjectStoragePath (gcsfs): tested against fake-gcs-server.

The collector's side writes with GCSObjectStore; the loader reads with an Airflow
``google_cloud_platform`` connection whose extra ``gcs.endpoint`` names the
emulator, the way production names real GCS (where the extra is left out).
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest

from gcs_emulator import FakeGCS
from raw_files import event
from trackway.config import load_settings
from trackway.load.loader import load_interval
from trackway.objectstore import open_object_store
from trackway.warehouse import open_warehouse

HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)


@pytest.fixture
def fake_gcs(monkeypatch):
    server = FakeGCS().start()
    server.create_bucket("lake")
    # A connection id of its own: ObjectStoragePath caches filesystems per (protocol, conn_id) for the process.
    monkeypatch.setenv("TRACKWAY_RAW_CONN_ID", f"trackway_gcs_{server.port}")
    monkeypatch.setenv(
        f"AIRFLOW_CONN_TRACKWAY_GCS_{server.port}",
        json.dumps(
            {
                "conn_type": "google_cloud_platform",
                # Anonymous: the emulator checks no credentials. In production leave it out and
                # give a key path/JSON or rely on Application Default Credentials.
                "extra": {"gcs.endpoint": server.endpoint, "project": "trackway-test", "is_anonymous": True},
            }
        ),
    )
    yield server
    server.stop()


def _object(ids, extra: bytes = b"") -> bytes:
    return gzip.compress(b"".join(json.dumps(event(i)).encode() + b"\n" for i in ids) + extra, mtime=0)


def test_load_an_hour_from_gcs_exactly_once(trackway_env, fake_gcs, monkeypatch):
    monkeypatch.setenv("TRACKWAY_RAW_URL", "gs://lake/trackway")
    settings = load_settings()
    store = open_object_store(settings.raw_url, gcs_client=fake_gcs.client())
    part = "events/dt=2026-11-22/hour=10/"
    store.put_bytes(part + "a.ndjson.gz", _object([f"a-{i}" for i in range(100)], b"not json\n"))
    store.put_bytes(part + "b.ndjson.gz", _object([f"b-{i}" for i in range(50)]))
    store.put_bytes(part + "_SUCCESS", b"")  # marker: never loaded
    store.put_bytes("events/dt=2026-11-22/hour=11/later.ndjson.gz", _object(["c-1"]))  # next hour: not this load
    store.put_bytes("quarantine/dt=2026-11-22/hour=10/q.ndjson.gz", _object(["q-1"]))

    first = load_interval(settings, HOUR, HOUR + timedelta(hours=1))
    second = load_interval(settings, HOUR, HOUR + timedelta(hours=1))
    assert (first.objects_loaded, first.rows_loaded, first.parse_errors, first.quarantined_rows) == (3, 151, 1, 1)
    assert (second.objects_loaded, second.objects_skipped) == (0, 3)

    # The collector re-uploads the same bytes after a crash: same md5, nothing reloaded.
    store.put_bytes(part + "b.ndjson.gz", _object([f"b-{i}" for i in range(50)]))
    assert load_interval(settings, HOUR, HOUR + timedelta(hours=1)).objects_loaded == 0
    # Changed content under the same name: a new fingerprint, so that object is replaced.
    store.put_bytes(part + "b.ndjson.gz", _object([f"b-{i}" for i in range(60)]))
    changed = load_interval(settings, HOUR, HOUR + timedelta(hours=1))
    assert (changed.objects_loaded, changed.rows_loaded) == (1, 60)

    with open_warehouse(settings.warehouse) as wh:
        assert wh.query("SELECT source_object, count(*) FROM raw.events_raw GROUP BY 1 ORDER BY 1") == [
            ("gs://lake/trackway/events/dt=2026-11-22/hour=10/a.ndjson.gz", 101),
            ("gs://lake/trackway/events/dt=2026-11-22/hour=10/b.ndjson.gz", 60),
        ]
        assert wh.query("SELECT count(DISTINCT message_id) FROM raw.events_raw") == [(160,)]
        fingerprints = [f for (f,) in wh.query("SELECT fingerprint FROM raw.loaded_objects")]
    assert len(fingerprints) == 3 and all("etag=" in f and not f.endswith("etag=") for f in fingerprints)
