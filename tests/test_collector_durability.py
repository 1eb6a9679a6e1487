"""Acknowledged events survive crashes, shutdowns, store outages and concurrency, exactly once."""

from __future__ import annotations

import gzip
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import boto3
import requests
from segment.analytics import Client

from trackway.collector.spool import SealedSegment, Spool, hour_key, trim_partial_line
from trackway.collector.stats import Stats
from trackway.collector.uploader import Uploader
from trackway.objectstore import LocalObjectStore, open_object_store

try:
    from collector_helpers import (
        CollectorProcess,
        free_port,
        local_store,
        read_lines,
        s3_env,
        spool_segments,
        start_moto,
        wait_for,
        wait_for_events,
    )
    from gcs_emulator import FakeGCS, gcs_env
except ImportError:  # tests/ imported as a package
    from tests.collector_helpers import (
        CollectorProcess,
        free_port,
        local_store,
        read_lines,
        s3_env,
        spool_segments,
        start_moto,
        wait_for,
        wait_for_events,
    )
    from tests.gcs_emulator import FakeGCS, gcs_env

LONG = "3600"  # max segment age that never triggers during a test


def _send_sdk(url: str, n: int, key: str = "key-web") -> list[str]:
    client = Client(key, host=url, sync_mode=True)
    return [client.track(f"u{i}", "Durable", {"i": i})[1]["messageId"] for i in range(n)]


def _segments(spool: Path) -> list[Path]:
    return spool_segments(spool)  # every worker's spool


def _exactly_once(rows: list[dict], ids: list[str]) -> None:
    counts = Counter(r["messageId"] for r in rows)
    assert {i: counts[i] for i in ids} == dict.fromkeys(ids, 1)


def test_sigkill_before_rotation_then_restart_delivers_every_ack_once(tmp_path):
    proc = CollectorProcess(tmp_path, TRACKWAY_SPOOL_MAX_AGE_SECONDS=LONG).start()
    try:
        ids = _send_sdk(proc.url, 25)
        r = requests.post(
            proc.url + "/v1/batch",
            json={
                "writeKey": "key-web",
                "batch": [
                    {"type": "track", "event": "x"},
                    {"type": "track", "userId": "u", "event": "ok", "messageId": "m-batch"},
                ],
            },
        )
        assert r.json()["quarantined"] == 1
        ids.append("m-batch")
        proc.kill()
    finally:
        proc.close()
    store = local_store(tmp_path)
    assert store.list() == []  # nothing was rotated: all acked events live only in the spool
    open_segments = [p for p in _segments(proc.spool_dir) if p.name.startswith("events~")]
    # One open segment per worker that took events, each in that worker's own spool folder.
    assert 1 <= len(open_segments) <= 2 and {p.suffix for p in open_segments} == {".open"}
    assert {p.parent.name for p in open_segments} <= {"w0", "w1"}
    with open(open_segments[0], "ab") as f:  # a write torn by the crash, never acknowledged
        f.write(b'{"type":"track","userId":"torn","mess')

    proc.start()  # same TRACKWAY_HOME: same spool
    try:
        # Leftovers are uploaded before the collector serves.
        _exactly_once(read_lines(store, "events/"), ids)
        assert not any(r.get("userId") == "torn" for r in read_lines(store, "events/"))
        assert len(read_lines(store, "quarantine/")) == 1
        assert "cut 37 bytes of a partial last line" in proc.stderr
        assert proc.stop() == 0
    finally:
        proc.close()
    _exactly_once(read_lines(store, "events/"), ids)
    assert _segments(proc.spool_dir) == []


def test_sigterm_flushes_and_uploads_before_exit(tmp_path):
    proc = CollectorProcess(tmp_path, TRACKWAY_SPOOL_MAX_AGE_SECONDS=LONG).start()
    try:
        ids = _send_sdk(proc.url, 10)
        assert local_store(tmp_path).list() == []
        assert proc.stop(signal.SIGTERM) == 0
    finally:
        proc.close()
    _exactly_once(read_lines(local_store(tmp_path), "events/"), ids)
    assert _segments(proc.spool_dir) == []
    assert "stopped cleanly: 10 event(s) accepted" in proc.stderr
    assert "listening on http://127.0.0.1:" in proc.stdout and "sources: backend, web" in proc.stdout
    assert "key-web" not in proc.stdout + proc.stderr  # keys are never printed


def test_sigint_also_stops_cleanly_and_startup_warns_about_demo_key(tmp_path):
    proc = CollectorProcess(tmp_path, TRACKWAY_WRITE_KEYS="").start()  # empty = unset: demo key
    try:
        ids = _send_sdk(proc.url, 3, key="trackway-demo-key")
        assert proc.stop(signal.SIGINT) == 0
    finally:
        proc.close()
    rows = read_lines(local_store(tmp_path), "events/")
    _exactly_once(rows, ids)
    assert {r["sourceId"] for r in rows} == {"demo"}
    assert "demo write key" in proc.stderr and "trackway-demo-key" not in proc.stdout + proc.stderr


def test_concurrent_senders_every_ack_exactly_once_with_size_rotation(tmp_path):
    proc = CollectorProcess(tmp_path, TRACKWAY_SPOOL_MAX_BYTES="20000").start()
    threads, per_thread, per_request = 8, 25, 4
    acked: list[str] = []
    lock = threading.Lock()
    errors = []

    def sender(t: int) -> None:
        with requests.Session() as session:
            for r in range(per_thread):
                batch = [
                    {"type": "track", "userId": f"t{t}", "event": "Load", "messageId": f"{t}-{r}-{e}-{uuid.uuid4()}"}
                    for e in range(per_request)
                ]
                resp = session.post(proc.url + "/v1/batch", json={"writeKey": "key-web", "batch": batch}, timeout=30)
                if resp.status_code != 200:
                    errors.append(resp.text)
                    continue
                with lock:
                    acked.extend(e["messageId"] for e in batch)

    try:
        started = time.monotonic()
        workers = [threading.Thread(target=sender, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.monotonic() - started
        assert errors == []
        health = proc.health()
        assert proc.stop() == 0
    finally:
        proc.close()
    assert len(acked) == threads * per_thread * per_request
    store = local_store(tmp_path)
    _exactly_once(read_lines(store, "events/"), acked)
    assert len(store.list("events/")) > 1  # 20 kB segments: size rotation happened
    print(f"\n{threads * per_thread} requests / {len(acked)} events in {elapsed:.2f}s; health: {health}")


def test_second_collector_on_same_spool_refuses_to_start(tmp_path):
    proc = CollectorProcess(tmp_path).start()
    try:
        other = subprocess.run(
            [sys.executable, "-m", "trackway.cli", "collect", "--port", str(free_port())],
            env=proc.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert other.returncode == 1
        assert "in use by another collector" in other.stderr
    finally:
        proc.close()


# -- S3 (moto server) ----------------------------------------------------------


def test_end_to_end_into_s3(tmp_path):
    server, endpoint = start_moto()
    try:
        env = s3_env(endpoint)
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket="lake")
        proc = CollectorProcess(tmp_path, TRACKWAY_RAW_URL="s3://lake/trackway/raw", **env).start()
        try:
            ids = _send_sdk(proc.url, 12)
            store = _s3_store(endpoint, "s3://lake/trackway/raw")
            wait_for_events(store, ids)
            assert proc.stop() == 0
        finally:
            proc.close()
        _exactly_once(read_lines(store, "events/"), ids)
        keys = store.client.list_objects_v2(Bucket="lake")["Contents"]
        assert all(k["Key"].startswith("trackway/raw/events/dt=") for k in keys)
    finally:
        server.stop()


def _s3_store(endpoint: str, url: str):
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return open_object_store(url, s3_client=client)


def test_s3_outage_keeps_events_in_spool_and_retries(tmp_path):
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"  # nothing listens here yet: the store is "down"
    proc = CollectorProcess(tmp_path, TRACKWAY_RAW_URL="s3://lake/raw", **s3_env(endpoint)).start()
    server = None
    try:
        wait_for(lambda: "not reachable" in proc.stderr, "the startup store check to warn")
        assert "cannot read the suppressed subjects" in proc.stderr  # one attempt (test_objectstore counts them)
        ids = _send_sdk(proc.url, 5)  # acknowledged: they are in the spool
        wait_for(lambda: "could not store" in proc.stderr, "an upload failure to be logged")
        assert proc.health()["upload_failures"] >= 1
        assert _segments(proc.spool_dir)  # kept, not dropped

        server, _ = start_moto(port)
        store = _s3_store(endpoint, "s3://lake/raw")
        store.client.create_bucket(Bucket="lake")
        wait_for_events(store, ids)  # the uploader's retry got through
        assert proc.stop() == 0
        _exactly_once(read_lines(store, "events/"), ids)
    finally:
        proc.close()
        if server is not None:
            server.stop()


def test_shutdown_while_store_is_down_keeps_spool_for_next_start(tmp_path):
    port = free_port()
    env = s3_env(f"http://127.0.0.1:{port}")
    proc = CollectorProcess(
        tmp_path, TRACKWAY_RAW_URL="s3://lake/raw", TRACKWAY_SPOOL_MAX_AGE_SECONDS=LONG, **env
    ).start()
    try:
        ids = _send_sdk(proc.url, 4)
        proc.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "could not store" in proc.stderr, "the shutdown upload to fail")
        assert proc.proc.poll() is None  # still trying: it does not exit and drop data
        assert proc.stop(signal.SIGTERM) == 1  # second signal: give up for now
    finally:
        proc.close()
    assert "safe in" in proc.stderr
    assert {p.suffix for p in _segments(proc.spool_dir)} == {".sealed"}

    server, endpoint = start_moto()
    try:
        store = _s3_store(endpoint, "s3://lake/raw")
        store.client.create_bucket(Bucket="lake")
        proc.env.update(s3_env(endpoint))
        proc.start()
        try:
            _exactly_once(read_lines(store, "events/"), ids)  # uploaded before serving
            assert proc.stop() == 0
        finally:
            proc.close()
    finally:
        server.stop()


# -- GCS (fake-gcs-server) -----------------------------------------------------


def test_gcs_sigkill_then_restart_delivers_every_ack_once(tmp_path):
    gcs = FakeGCS().start()
    try:
        gcs.create_bucket("lake")
        store = open_object_store("gs://lake/trackway/raw", gcs_client=gcs.client())
        proc = CollectorProcess(
            tmp_path,
            TRACKWAY_RAW_URL="gs://lake/trackway/raw",
            TRACKWAY_SPOOL_MAX_AGE_SECONDS=LONG,
            **gcs_env(gcs.endpoint),
        ).start()
        try:
            ids = _send_sdk(proc.url, 15)
            proc.kill()  # acknowledged, never rotated: only in the spool
            assert store.list() == []
            proc.start()  # leftovers are uploaded to gs:// before it serves again
            _exactly_once(read_lines(store, "events/"), ids)
            more = _send_sdk(proc.url, 5)
            assert proc.stop() == 0
        finally:
            proc.close()
        _exactly_once(read_lines(store, "events/"), ids + more)
        names = [b.name for b in gcs.client().list_blobs("lake")]
        assert names and all(n.startswith("trackway/raw/events/dt=") and n.endswith(".ndjson.gz") for n in names)
        assert _segments(proc.spool_dir) == []
    finally:
        gcs.stop()


def test_gcs_outage_keeps_events_in_spool_and_retries(tmp_path):
    gcs = FakeGCS(port=free_port())  # not started yet: GCS is "down"
    proc = CollectorProcess(tmp_path, TRACKWAY_RAW_URL="gs://lake/raw", **gcs_env(gcs.endpoint)).start()
    try:
        wait_for(lambda: "not reachable" in proc.stderr, "the startup store check to warn")
        # The start read the suppressed subjects once, not for the client's 20-s retry deadline: an outage does
        # not keep a restarting collector from serving (it did, for about 30 s: master, then each worker).
        assert "cannot read the suppressed subjects" in proc.stderr
        assert "Timeout of" not in proc.stderr, proc.stderr
        ids = _send_sdk(proc.url, 5)  # acknowledged: they are in the spool
        wait_for(lambda: "could not store" in proc.stderr, "an upload failure to be logged")
        assert proc.health()["upload_failures"] >= 1
        assert _segments(proc.spool_dir)  # kept, not dropped

        gcs.start()
        gcs.create_bucket("lake")
        store = open_object_store("gs://lake/raw", gcs_client=gcs.client())
        wait_for_events(store, ids)  # the uploader's retry got through
        assert proc.stop() == 0
        _exactly_once(read_lines(store, "events/"), ids)
    finally:
        proc.close()
        gcs.stop()


# -- spool and uploader units ---------------------------------------------------------


def test_each_received_hour_gets_its_own_segment_and_idle_hour_change_rotates(tmp_path):
    sealed: list[SealedSegment] = []
    spool = Spool(tmp_path / "spool", max_bytes=10**9, max_age_seconds=3600, on_sealed=sealed.append)
    spool.lock()
    spool.recover()
    spool.start()
    try:
        now = hour_key(datetime.now(UTC))
        spool.append(
            [
                ("events", "2020-01-01", "23", b'{"a":1}\n'),
                ("events", *now, b'{"b":2}\n'),
                ("events", "2020-01-01", "23", b'{"c":3}\n'),
            ]
        )
        # No more traffic: the background timer alone seals the past hour's segment.
        wait_for(lambda: sealed, "the past hour's segment to be sealed")
        (past,) = sealed
        assert (past.dt, past.hour, past.reason) == ("2020-01-01", "23", "hour change")
        assert past.path.read_bytes() == b'{"a":1}\n{"c":3}\n'
        assert past.object_key.startswith("events/dt=2020-01-01/hour=23/") and past.object_key.endswith(".ndjson.gz")
    finally:
        spool.close()
    assert [(s.dt, s.hour) for s in sealed] == [("2020-01-01", "23"), now]
    assert sealed[1].path.read_bytes() == b'{"b":2}\n'


def test_reupload_after_crash_overwrites_the_same_object(tmp_path):
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    seg_path = spool_dir / "events~2026-11-23~14~20261123T140000-host-abc.sealed"
    content = b'{"messageId":"m1"}\n{"messageId":"m2"}\n'
    store = LocalObjectStore(tmp_path / "raw")
    uploader = Uploader(store, spool_dir, Stats())
    segment = SealedSegment(seg_path, "events", "2026-11-23", "14", "20261123T140000-host-abc")
    for _ in range(2):  # the second time plays a crash between upload and spool delete
        seg_path.write_bytes(content)
        assert uploader.upload(segment)
    key = "events/dt=2026-11-23/hour=14/20261123T140000-host-abc.ndjson.gz"
    # An upload long after its hour also leaves one pointer (the loader's sweep finds late objects by it).
    assert store.list() == [key, f"late/{key}.late.json"]
    assert gzip.decompress(store.read_bytes(key)) == content
    assert not seg_path.exists() and list(spool_dir.iterdir()) == []


def test_trim_partial_line(tmp_path):
    f = tmp_path / "seg"
    f.write_bytes(b'{"a":1}\n{"b":')
    assert trim_partial_line(f) == 5 and f.read_bytes() == b'{"a":1}\n'
    assert trim_partial_line(f) == 0
    f.write_bytes(b"no newline at all")
    assert trim_partial_line(f) == 17 and f.read_bytes() == b""
    big = b"x" * 200_000 + b"\n" + b"y" * 100_000
    f.write_bytes(big)
    assert trim_partial_line(f) == 100_000 and f.read_bytes() == b"x" * 200_000 + b"\n"


def test_leftovers_of_every_worker_and_layout_are_uploaded_once_before_serving(tmp_path):
    spool = tmp_path / "spool"
    (spool / "w5").mkdir(parents=True)  # a worker index this run (2 workers) does not have
    (spool / "w5" / "events~2026-11-23~14~20261123T140000-host-w5-aaa.open").write_bytes(
        b'{"messageId":"orphan-1"}\n{"messageId":"orphan-2"}\n{"messageId":"torn'
    )
    (spool / "w1").mkdir()
    (spool / "w1" / "events~2026-11-23~14~20261123T140000-host-w1-ccc.sealed").write_bytes(b'{"messageId":"w1-1"}\n')
    # the single-process layout of earlier versions: segments directly in the spool folder
    (spool / "events~2026-11-23~14~20261123T140000-host-bbb.sealed").write_bytes(b'{"messageId":"legacy-1"}\n')
    proc = CollectorProcess(tmp_path).start()
    try:
        store = local_store(tmp_path)
        _exactly_once(read_lines(store, "events/"), ["orphan-1", "orphan-2", "legacy-1", "w1-1"])  # before serving
        assert sorted(k.rsplit("/", 1)[1] for k in store.list("events/")) == [
            "20261123T140000-host-bbb.ndjson.gz",
            "20261123T140000-host-w1-ccc.ndjson.gz",
            "20261123T140000-host-w5-aaa.ndjson.gz",
        ]
        assert proc.stop() == 0
    finally:
        proc.close()
    assert len(read_lines(local_store(tmp_path), "events/")) == 4 and _segments(spool) == []


def test_leftovers_of_a_worker_that_no_longer_runs_move_to_one_that_does_when_the_store_is_down(tmp_path, monkeypatch):
    from trackway.collector.app import recover_leftovers
    from trackway.config import load_settings

    spool = tmp_path / "spool"
    (spool / "w3").mkdir(parents=True)
    name = "events~2026-11-23~14~20261123T140000-host-w3-ddd.sealed"
    (spool / "w3" / name).write_bytes(b'{"messageId":"m"}\n')
    broken = tmp_path / "not-a-folder"
    broken.write_text("a file where the store's folder should be: every upload fails")
    monkeypatch.setenv("TRACKWAY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRACKWAY_SPOOL_DIR", str(spool))
    settings = load_settings()
    assert recover_leftovers(settings, LocalObjectStore(broken / "raw"), workers=2) == 1
    assert (spool / "w1" / name).read_bytes() == b'{"messageId":"m"}\n'  # same name: same object key later
    assert not (spool / "w3" / name).exists()
