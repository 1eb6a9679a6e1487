"""Back-pressure under faults: the object store goes away, the disk fills up. Bounded in time.

Invariant in both: every event that got a 200 reaches the store exactly once, requests that could
not be stored got 503 + Retry-After (never a 200 that is later lost), and the collector recovers
by itself once the fault is gone. (Repeated SIGKILL of the whole process group with several
workers is tests/test_collector_chaos.py.)
"""

from __future__ import annotations

import base64
import json
import resource
import threading
import time
import uuid
from collections import Counter

import boto3
import psutil
import requests

from collector_helpers import (
    CollectorProcess,
    free_port,
    local_store,
    read_lines,
    s3_env,
    start_moto,
    wait_for,
)
from trackway.objectstore import open_object_store

AUTH = {"Authorization": "Basic " + base64.b64encode(b"key-web:").decode()}


class Load:
    """Threads posting small batches with unique messageIds, recording what each answer was."""

    def __init__(self, url: str, senders: int = 4, batch: int = 5) -> None:
        self.url, self.batch = url, batch
        self.acked: list[str] = []
        self.refused: list[str] = []
        self.statuses: Counter = Counter()
        self.retry_after: set[str] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(senders)]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def _run(self, n: int) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                ids = [f"fault-{n}-{uuid.uuid4().hex}" for _ in range(self.batch)]
                body = {
                    "batch": [
                        {
                            "type": "track",
                            "event": "Fault",
                            "userId": f"u{n}",
                            "messageId": i,
                            "properties": {"p": "x" * 200},
                        }
                        for i in ids
                    ]
                }
                try:
                    r = session.post(self.url + "/v1/batch", json=body, headers=AUTH, timeout=30)
                except requests.RequestException:
                    with self.lock:
                        self.refused += ids
                        self.statuses["error"] += 1
                    continue
                with self.lock:
                    self.statuses[r.status_code] += 1
                    if r.status_code == 200:
                        self.acked += ids
                    else:
                        self.refused += ids
                        if r.status_code == 503:
                            self.retry_after.add(r.headers.get("Retry-After", ""))
                if r.status_code != 200:
                    time.sleep(0.05)

    def count(self, status) -> int:
        with self.lock:
            return self.statuses[status]


def _metric(proc: CollectorProcess, name: str) -> float:
    text = proc.metrics()  # the admin listener: all workers together
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def _exactly_once(stored: list[dict], acked: list[str], refused: list[str]) -> None:
    counts = Counter(r["messageId"] for r in stored)
    missing = [m for m in acked if counts[m] == 0]
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:3]}"
    twice = [m for m, c in counts.items() if c > 1]
    assert not twice, f"{len(twice)} events stored twice"
    assert not set(refused) & counts.keys(), "an event refused with a non-200 was stored"


def test_object_store_outage_past_the_spool_cap_gives_503s_then_drains(tmp_path):
    port = free_port()
    server, endpoint = start_moto(port)
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket="lake")
    store = open_object_store("s3://lake/raw", s3_client=client)
    proc = CollectorProcess(
        tmp_path,
        TRACKWAY_RAW_URL="s3://lake/raw",
        TRACKWAY_SPOOL_MAX_PENDING_BYTES="300000",  # 150 KB per worker
        TRACKWAY_SPOOL_MAX_BYTES="30000",
        TRACKWAY_SPOOL_MAX_AGE_SECONDS="1",
        TRACKWAY_UPLOAD_BACKOFF_INITIAL_SECONDS="0.2",
        TRACKWAY_UPLOAD_BACKOFF_MAX_SECONDS="1",
        AWS_MAX_ATTEMPTS="1",
        **s3_env(endpoint),
    ).start()
    try:
        with Load(proc.url) as load:
            wait_for(lambda: load.count(200) >= 20, "some events acknowledged while the store is up")
            server.stop()  # the object store goes away under load
            wait_for(lambda: load.count(503) >= 5, "503s once the spool passes its cap", deadline=90)
            assert proc.health()["spool_pending_bytes"] <= 300000
            wait_for(
                lambda: _metric(proc, "trackway_collector_upload_retries_total") >= 2,
                "upload retries to show in /metrics",
            )
            server, _ = start_moto(port)  # back, same data
            acked_during_outage = len(load.acked)
            wait_for(lambda: len(load.acked) > acked_during_outage + 50, "200s again once uploads drain", deadline=90)
        assert _metric(proc, "trackway_collector_upload_failures_total") >= 2
        assert load.retry_after and all(v.isdigit() for v in load.retry_after)
        assert proc.stop() == 0
        _exactly_once(read_lines(store, "events/"), load.acked, load.refused)
        print(
            f"\nstore outage: {len(load.acked)} events acknowledged, {load.count(503)} requests got 503, "
            f"statuses {dict(load.statuses)}, 0 lost"
        )
    finally:
        proc.close()
        server.stop()


def _workers(proc: CollectorProcess) -> list[psutil.Process]:
    return wait_for(lambda: psutil.Process(proc.proc.pid).children(), "the worker processes")


def test_full_disk_gives_503s_loses_nothing_and_recovers(tmp_path):
    # A file-size limit on the running workers (RLIMIT_FSIZE via prlimit) makes the spool's
    # writes fail with EFBIG exactly like ENOSPC on a full disk, without root or a tiny filesystem.
    proc = CollectorProcess(
        tmp_path, TRACKWAY_SPOOL_MAX_AGE_SECONDS="3600", TRACKWAY_SPOOL_MAX_BYTES="100000000"
    ).start()
    workers = _workers(proc)
    try:
        with Load(proc.url, senders=2) as load:
            wait_for(lambda: load.count(200) >= 10, "some events acknowledged")
            for w in workers:  # each worker's disk is "full" 100 bytes past what it has written so far
                index = next(a.split("=")[1] for a in w.cmdline() if a.startswith("--index="))
                written = max((p.stat().st_size for p in (proc.spool_dir / f"w{index}").glob("*.open")), default=0)
                resource.prlimit(w.pid, resource.RLIMIT_FSIZE, (written + 100, resource.RLIM_INFINITY))
            wait_for(lambda: load.count(503) >= 10, "503s while the disk is full")
            r = requests.post(
                proc.url + "/v1/track",
                json={"userId": "u", "event": "Full", "messageId": "full-1", "properties": {"p": "x" * 4000}},
                headers=AUTH,
            )
            assert r.status_code == 503 and "could not store events durably" in r.json()["error"], r.text
            assert r.headers["Retry-After"].isdigit()
            for w in workers:
                resource.prlimit(w.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            acked_while_full = len(load.acked)
            wait_for(lambda: len(load.acked) > acked_while_full + 50, "200s again once there is space")
        assert proc.stop() == 0
        _exactly_once(read_lines(local_store(tmp_path), "events/"), load.acked, [*load.refused, "full-1"])
        print(
            f"\nfull disk: {len(load.acked)} events acknowledged, {load.count(503)} requests got 503, "
            f"statuses {dict(load.statuses)}, 0 lost"
        )
        assert "spool: write to" in proc.stderr  # the operator is told why
    finally:
        proc.close()


def test_spool_cap_is_reported(tmp_path):
    proc = CollectorProcess(tmp_path, TRACKWAY_SPOOL_MAX_PENDING_BYTES="123456").start()
    try:
        health = proc.health()
        assert health["spool_max_pending_bytes"] == 123456 and health["workers"] == 2
        # each worker holds half of the cap; their shares add up once both have started
        wait_for(
            lambda: _metric(proc, "trackway_collector_spool_pending_cap_bytes") == 123456 // 2 * 2,
            "both workers' shares of the cap in /metrics",
        )
    finally:
        proc.close()
    json.dumps(health)
