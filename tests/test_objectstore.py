"""The object-store contract, run against a local folder, a real S3 API (moto server) and GCS (fake-gcs-server)."""

from __future__ import annotations

import gzip
import os

import boto3
import pytest

from trackway.config import ConfigError
from trackway.objectstore import LocalObjectStore, S3ObjectStore, is_hidden_key, open_object_store
from trackway.objectstore.gcs import GCSObjectStore

try:
    from collector_helpers import s3_env, start_moto
    from gcs_emulator import FakeGCS
except ImportError:  # tests/ imported as a package
    from tests.collector_helpers import s3_env, start_moto
    from tests.gcs_emulator import FakeGCS


@pytest.fixture(scope="module")
def moto_endpoint():
    server, endpoint = start_moto()
    yield endpoint
    server.stop()


@pytest.fixture
def s3_env_vars(moto_endpoint, monkeypatch):
    for name, value in s3_env(moto_endpoint).items():
        monkeypatch.setenv(name, value)
    return moto_endpoint


@pytest.fixture(scope="module")
def fake_gcs():
    server = FakeGCS().start()
    yield server
    server.stop()


_bucket_counter = iter(range(10_000))


@pytest.fixture(params=["file", "s3", "gs"])
def store(request, tmp_path):
    if request.param == "file":
        return open_object_store((tmp_path / "raw").as_uri())
    if request.param == "gs":
        gcs = request.getfixturevalue("fake_gcs")
        bucket = f"trackway-test-{next(_bucket_counter)}"
        gcs.create_bucket(bucket)
        return open_object_store(f"gs://{bucket}/some/prefix", gcs_client=gcs.client())
    request.getfixturevalue("s3_env_vars")
    bucket = f"trackway-test-{next(_bucket_counter)}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return open_object_store(f"s3://{bucket}/some/prefix")


def test_put_list_read_round_trip(store, tmp_path):
    src = tmp_path / "payload.bin"
    src.write_bytes(b"line1\nline2\n")
    store.put_file("events/dt=2026-11-23/hour=14/a.ndjson.gz", src)
    store.put_bytes("events/dt=2026-11-23/hour=15/b.ndjson.gz", b"other")
    store.put_bytes("quarantine/dt=2026-11-23/hour=14/c.ndjson.gz", b"q")

    assert store.list("events/") == [
        "events/dt=2026-11-23/hour=14/a.ndjson.gz",
        "events/dt=2026-11-23/hour=15/b.ndjson.gz",
    ]
    assert store.list("events/dt=2026-11-23/hour=15/") == ["events/dt=2026-11-23/hour=15/b.ndjson.gz"]
    assert store.list("events/dt=2026-11-2") == store.list("events/")  # prefix may end mid-name
    assert len(store.list()) == 3
    assert store.read_bytes("events/dt=2026-11-23/hour=14/a.ndjson.gz") == b"line1\nline2\n"
    with store.open("quarantine/dt=2026-11-23/hour=14/c.ndjson.gz") as f:
        assert f.read() == b"q"
    assert store.exists("quarantine/dt=2026-11-23/hour=14/c.ndjson.gz")
    assert not store.exists("quarantine/nope.ndjson.gz")
    assert store.list("nothing-here/") == []


def test_overwrite_replaces_and_delete_is_idempotent(store):
    key = "events/dt=2026-11-23/hour=14/x.ndjson.gz"
    store.put_bytes(key, b"first")
    store.put_bytes(key, b"second")
    assert store.read_bytes(key) == b"second"
    assert store.list("events/") == [key]
    store.delete(key)
    store.delete(key)
    assert store.list("events/") == []
    with pytest.raises(FileNotFoundError):
        store.read_bytes(key)


def test_hidden_names_are_not_listed(store):
    store.put_bytes("events/dt=2026-11-23/hour=14/.in-progress", b"x")
    store.put_bytes("events/dt=2026-11-23/hour=14/_SUCCESS", b"x")
    store.put_bytes("events/_tmp/whatever.ndjson.gz", b"x")
    store.put_bytes("events/dt=2026-11-23/hour=14/done.ndjson.gz", b"x")
    assert store.list("events/") == ["events/dt=2026-11-23/hour=14/done.ndjson.gz"]


def test_keys_must_be_plain_relative_paths(store):
    for bad in ("", "/", "a/../b", "a//b", "./a"):
        with pytest.raises(ValueError):
            store.put_bytes(bad, b"x")


def test_url_for_names_the_object(store):
    assert store.url_for("events/a.ndjson.gz") == store.url.rstrip("/") + "/events/a.ndjson.gz"


def test_check_passes_on_reachable_store(store):
    store.check()


def test_local_put_is_atomic_rename_and_leaves_no_temp(tmp_path, monkeypatch):
    store = LocalObjectStore(tmp_path / "raw")
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((os.path.basename(src), os.path.basename(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    store.put_bytes("events/dt=2026-11-23/hour=14/a.ndjson.gz", b"data")
    ((tmp_name, final_name),) = seen
    assert tmp_name.startswith(".") and not tmp_name.endswith(".ndjson.gz")
    assert final_name == "a.ndjson.gz"
    assert sorted(p.name for p in (tmp_path / "raw/events/dt=2026-11-23/hour=14").iterdir()) == ["a.ndjson.gz"]


def test_s3_store_keeps_prefix_and_missing_bucket_is_clear(s3_env_vars):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="prefixed")
    store = open_object_store("s3://prefixed/deep/pre/")
    assert isinstance(store, S3ObjectStore)
    assert store.url == "s3://prefixed/deep/pre"
    store.put_bytes("events/a.ndjson.gz", b"x")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="prefixed")["Contents"]]
    assert keys == ["deep/pre/events/a.ndjson.gz"]
    assert store.list() == ["events/a.ndjson.gz"]
    with pytest.raises(Exception, match=r"404|Not Found|NoSuchBucket"):
        open_object_store("s3://no-such-bucket/x").check()


def test_factory_schemes(tmp_path):
    local = open_object_store((tmp_path / "r").as_uri())
    assert isinstance(local, LocalObjectStore) and local.root == (tmp_path / "r").resolve()
    assert open_object_store("file://localhost" + str(tmp_path / "r")).root == local.root
    with pytest.raises(ConfigError, match="no bucket"):
        open_object_store("gs:///prefix", gcs_client=object())
    with pytest.raises(ConfigError, match="use file:///path"):
        open_object_store("ftp://host/x")
    with pytest.raises(ConfigError, match="no bucket"):
        open_object_store("s3:///prefix")


def test_is_hidden_key():
    assert is_hidden_key(".tmp") and is_hidden_key("a/_b/c") and is_hidden_key("a/.x.ndjson.gz.tmp")
    assert not is_hidden_key("events/dt=2026-11-23/hour=14/x.ndjson.gz")


def test_gcs_store_keeps_prefix_uploads_bytes_as_is_and_missing_bucket_is_clear(fake_gcs, monkeypatch):
    from google.api_core.exceptions import NotFound

    fake_gcs.create_bucket("prefixed-gs")
    # The default client (no client passed): STORAGE_EMULATOR_HOST, as the collector uses it.
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs.endpoint)
    store = open_object_store("gs://prefixed-gs/deep/pre/")
    assert isinstance(store, GCSObjectStore)
    assert store.url == "gs://prefixed-gs/deep/pre"
    body = gzip.compress(b'{"a":1}\n', mtime=0)
    store.put_bytes("events/a.ndjson.gz", body)
    blob = fake_gcs.client().bucket("prefixed-gs").get_blob("deep/pre/events/a.ndjson.gz")
    assert blob is not None and blob.content_encoding is None  # no transcoding: readers get the .gz bytes
    assert store.list() == ["events/a.ndjson.gz"] and store.read_bytes("events/a.ndjson.gz") == body
    with pytest.raises(NotFound):
        open_object_store("gs://no-such-bucket/x").check()


class _Unavailable:
    """A loopback HTTP server that answers every request 503 (a store in an outage) and counts them."""

    def __init__(self):
        import http.server
        import threading

        requests: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _unavailable(self):
                requests.append(f"{self.command} {self.path}")
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = do_PUT = do_POST = _unavailable

            def log_message(self, *args):
                pass

        self.requests = requests
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def unavailable():
    server = _Unavailable()
    yield server
    server.close()


def test_a_read_once_makes_one_attempt_where_a_read_retries(unavailable, monkeypatch):
    """Start-up reads (the collector's suppressed subjects) use once=True: a store outage must not hold the
    collector's start for the clients' retry deadlines (20 s on GCS per read, before the socket was bound)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    for name, value in s3_env(unavailable.endpoint).items():
        monkeypatch.setenv(name, value)
    gcs_client = storage.Client(
        project="trackway-test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": unavailable.endpoint},
    )
    from botocore.exceptions import ClientError
    from google.api_core.exceptions import ServiceUnavailable

    stores = {
        "s3": (open_object_store("s3://lake/raw"), ClientError),
        "gs": (open_object_store("gs://lake/raw", gcs_client=gcs_client), ServiceUnavailable),
    }
    for scheme, (store, unavailable_error) in stores.items():
        del unavailable.requests[:]
        with pytest.raises(unavailable_error):
            store.read_bytes("_privacy/subjects.json", once=True)
        reads = [r for r in unavailable.requests if "subjects.json" in r]  # GCS also looks up the bucket once
        assert len(reads) == 1, (scheme, unavailable.requests)
    # The same read without once: the client retries (S3: four attempts in all, the first included).
    del unavailable.requests[:]
    with pytest.raises(ClientError):
        stores["s3"][0].read_bytes("_privacy/subjects.json")
    reads = [r for r in unavailable.requests if r == "GET /lake/raw/_privacy/subjects.json"]
    assert len(reads) == 4, unavailable.requests
