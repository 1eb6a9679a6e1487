"""Faults between the loader and its stores: a flaky network, and concurrent loads of one object.

Real parts: moto's S3 server behind a TCP proxy that cuts responses mid-body
(tests/fault_proxy.py), read by the loader through ObjectStoragePath/s3fs; a real
PostgreSQL server for the concurrent loads.
"""

from __future__ import annotations

import gzip
import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import pytest

from collector_helpers import s3_env, start_moto
from fault_proxy import FaultProxy
from raw_files import event, hour_dir, write_gz_lines
from trackway.config import load_settings
from trackway.load.loader import load_interval
from trackway.objectstore import open_object_store
from trackway.warehouse import open_warehouse

HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)
KEY = "events/dt=2026-11-22/hour=10/part-1.ndjson.gz"
EVENTS = 6000


@pytest.fixture
def flaky_s3(monkeypatch):
    """moto on loopback, written directly, read by the loader through a proxy that can cut bodies."""
    server, endpoint = start_moto()
    for key, value in s3_env(endpoint).items():
        monkeypatch.setenv(key, value)
    parsed = urlparse(endpoint)
    proxy = FaultProxy(parsed.hostname or "127.0.0.1", parsed.port or 80)
    # A connection id per test: ObjectStoragePath caches filesystems per connection id.
    conn_id = f"flaky_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        # Short client timeouts, as a production connection would set them: a cut body fails in seconds.
        json.dumps(
            {
                "conn_type": "aws",
                "extra": {
                    "endpoint_url": proxy.endpoint,
                    "config_kwargs": {"connect_timeout": 3, "read_timeout": 3, "retries": {"max_attempts": 1}},
                },
            }
        ),
    )
    bucket = f"faults-{uuid.uuid4().hex[:12]}"  # moto keeps buckets for the whole process: one per test
    monkeypatch.setenv("TRACKWAY_RAW_URL", f"s3://{bucket}/trackway")
    monkeypatch.setenv("TRACKWAY_RAW_CONN_ID", conn_id)
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    yield proxy
    proxy.close()
    server.stop()


def _big_object() -> bytes:
    """About 2.5 MB gzip'd: random payloads, so a cut after 256 KB lands far inside the body."""
    lines = []
    for i in range(EVENTS):
        body = event(f"m-{i}")
        body["properties"] = {"noise": secrets.token_hex(200)}
        lines.append(json.dumps(body).encode())
    return gzip.compress(b"\n".join(lines) + b"\n")


def test_a_body_cut_mid_transfer_fails_the_load_and_ledgers_nothing(warehouse_env, flaky_s3, tmp_path):
    """End to end through s3fs: the load fails while the network cuts bodies, and loads exactly once after.

    The proxy resets the connection after 256 KB of a body. s3fs surfaces that as its own error
    types (aiohttp's ClientPayloadError after its retries, or the loader's ObjectReadError), so this
    guards the whole path rather than the OSError classification, which
    ``test_a_connection_reset_inside_the_object_is_not_damage`` pins. (Until 2026-12-04 the proxy's
    reset reached the client only when the client's 3-s read timeout fired: a stalled body, which
    the loader handles the same way, 20 s a run.)
    """
    settings = load_settings()
    local = tmp_path / "part.ndjson.gz"
    local.write_bytes(_big_object())
    open_object_store(settings.raw_url).put_file(KEY, local)

    flaky_s3.cut_after = 256 * 1024
    with pytest.raises(Exception) as failure:  # the task fails; Airflow retries it (retries in dag_defaults)
        load_interval(settings, HOUR, HOUR + timedelta(hours=1))
    assert flaky_s3.cuts > 0, "the proxy never cut a response: the test did not exercise a flaky network"
    print(f"load failed as it should, after {flaky_s3.cuts} cut responses: {type(failure.value).__name__}")
    with open_warehouse(settings.warehouse) as wh:
        assert wh.query("SELECT count(*) FROM raw.loaded_objects")[0][0] == 0, "a transport error was ledgered"
        assert wh.query("SELECT count(*) FROM raw.events_raw")[0][0] == 0, "rows of a half-read object stayed"

    flaky_s3.cut_after = None  # the network heals; the retry reads the object whole
    report = load_interval(settings, HOUR, HOUR + timedelta(hours=1))
    assert (report.objects_loaded, report.rows_loaded, report.object_errors) == (1, EVENTS, [])
    with open_warehouse(settings.warehouse) as wh:
        assert wh.query("SELECT count(*), count(DISTINCT message_id) FROM raw.events_raw") == [(EVENTS, EVENTS)]
        assert wh.query("SELECT rows_loaded, object_error FROM raw.loaded_objects") == [(EVENTS, None)]


def test_a_corrupt_object_is_still_recorded_as_damaged(warehouse_env):
    """Content errors keep their old meaning: rows read so far are kept, the reason is ledgered."""
    settings = load_settings()
    folder = hour_dir(warehouse_env / "raw", "2026-11-22", 10)
    path = write_gz_lines(folder / "torn.ndjson.gz", [json.dumps(event(f"t-{i}")) for i in range(500)])
    path.write_bytes(path.read_bytes()[:-40])  # a truncated gzip member
    report = load_interval(settings, HOUR, HOUR + timedelta(hours=1))
    assert len(report.object_errors) == 1 and "torn.ndjson.gz" in report.object_errors[0]
    with open_warehouse(settings.warehouse) as wh:
        ((error,),) = wh.query("SELECT object_error FROM raw.loaded_objects")
    assert "truncated or corrupt" in error


@pytest.mark.postgres
def test_concurrent_reloads_of_one_hour_never_duplicate_rows(trackway_env, postgres_url, monkeypatch):
    """Two `trackway load --reload` of one hour beside an ordinary (DAG) load, at once, on a real PostgreSQL.

    Each runs ``load_interval`` with its own connection, released together by a barrier,
    as separate processes would. Without a per-object lock, READ COMMITTED lets each
    load's DELETE see nothing of the others' uncommitted rows, and all of them insert.
    """
    import threading

    from postgres_server import create_database

    db_url = create_database(postgres_url, f"concurrent_{uuid.uuid4().hex[:10]}")
    monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", db_url)
    folder = hour_dir(trackway_env / "raw", "2026-11-22", 10)
    objects, per_object = 4, 30_000
    for n in range(objects):
        write_gz_lines(folder / f"part-{n}.ndjson.gz", [json.dumps(event(f"c-{n}-{i}")) for i in range(per_object)])
    settings = load_settings()
    with open_warehouse(settings.warehouse) as wh:
        wh.ensure_raw_tables()
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def load(reload: bool) -> None:
        try:
            start.wait()
            load_interval(settings, HOUR, HOUR + timedelta(hours=1), reload=reload, triggered_by="concurrency-test")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(reload,)) for reload in (True, True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert errors == []
    with open_warehouse(settings.warehouse) as wh:
        total, distinct = wh.query("SELECT count(*), count(DISTINCT message_id) FROM raw.events_raw")[0]
        ledger = wh.query("SELECT count(*) FROM raw.loaded_objects")[0][0]
    assert (total - distinct, distinct, ledger) == (0, objects * per_object, objects), f"{total - distinct} duplicates"


class _ResettingServer:
    """Serves ``body`` over a real TCP connection, then resets it after ``cut_after`` bytes."""

    def __init__(self, body: bytes, cut_after: int) -> None:
        import socket
        import threading

        self.body, self.cut_after = body, cut_after
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import socket

        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.sendall(self.body[: self.cut_after])
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()  # RST: the reader sees ConnectionResetError, an OSError, mid-body

    def open(self):
        import socket
        import time

        sock = socket.create_connection(("127.0.0.1", self.port))
        time.sleep(0.2)  # let the reset arrive before the reader drains the buffered bytes
        return sock.makefile("rb")

    def close(self) -> None:
        self._listener.close()


def test_a_connection_reset_inside_the_object_is_not_damage(warehouse_env):
    """An OSError from the transport mid-body (here a real reset socket) is not a corrupt object.

    The backends read remote objects through the stream ``RawObject.open`` returns
    (ObjectStoragePath in production): DuckDB copies it to a temporary file, PostgreSQL
    streams it into COPY. Before the fix both caught the OSError as damage and ledgered
    the object with the rows read so far.
    """
    from trackway.rawdata.lines import ObjectReadError
    from trackway.rawdata.records import RawObject

    body = _big_object()
    server = _ResettingServer(body, cut_after=len(body) // 3)
    settings = load_settings()
    url = "s3://lake/trackway/" + KEY
    obj = RawObject(
        source_object=url,
        fingerprint="size=1;etag=x",
        size_bytes=len(body),
        load_id="fault-test",
        loaded_at=datetime.now(UTC),
        open=server.open,
    )
    try:
        with open_warehouse(settings.warehouse) as wh:
            wh.ensure_raw_tables()
            with pytest.raises(ObjectReadError, match="ConnectionResetError"):
                wh.load_objects([obj])
            assert wh.query("SELECT count(*) FROM raw.loaded_objects")[0][0] == 0, "a transport error was ledgered"
            assert wh.query("SELECT count(*) FROM raw.events_raw")[0][0] == 0
    finally:
        server.close()
