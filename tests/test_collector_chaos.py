"""kill -9 the collector at random moments under load, again and again.

Invariant: every event that got a 200 is in the raw store exactly once, and
nothing that was never sent appears there. Kills land during appends, fsyncs,
rotations and uploads (small segments, 1 s rotation age).
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import random
import threading
import time
import uuid

from collector_helpers import CollectorProcess, local_store, spool_segments

KILLS = 6
SENDERS = 4
AUTH = {"Authorization": "Basic " + base64.b64encode(b"key-web:").decode(), "Content-Type": "application/json"}


def test_acknowledged_events_survive_repeated_sigkill(tmp_path):
    rng = random.Random(20261123)
    collector = CollectorProcess(
        tmp_path / "collector", TRACKWAY_SPOOL_MAX_AGE_SECONDS="1", TRACKWAY_SPOOL_MAX_BYTES="65536"
    ).start()
    acked: set[str] = set()
    sent: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()
    port = [collector.port]

    def sender(n: int) -> None:
        conn, conn_port = None, None
        while not stop.is_set():
            ids = [f"chaos-{n}-{uuid.uuid4().hex}" for _ in range(5)]
            body = json.dumps(
                {
                    "batch": [
                        {"type": "track", "event": "Chaos", "userId": f"u{n}", "messageId": i, "properties": {"n": n}}
                        for i in ids
                    ]
                }
            )
            with lock:
                sent.update(ids)
            try:
                if conn is None or conn_port != port[0]:
                    conn_port = port[0]
                    conn = http.client.HTTPConnection("127.0.0.1", conn_port, timeout=10)
                conn.request("POST", "/v1/batch", body=body, headers=AUTH)
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    with lock:
                        acked.update(ids)
            except (OSError, http.client.HTTPException):
                conn = None  # the collector died under us: not acknowledged
                time.sleep(0.02)

    threads = [threading.Thread(target=sender, args=(n,), daemon=True) for n in range(SENDERS)]
    for t in threads:
        t.start()
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.2, 1.5))
            collector.kill()  # SIGKILL: no flush, no upload, no cleanup
            collector.start()  # recovers the spool, then serves again
            port[0] = collector.port
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert collector.stop() == 0  # SIGTERM: flush and upload everything

    store = local_store(collector.home)
    stored: list[str] = []
    for key in store.list("events/"):
        for line in gzip.decompress(store.read_bytes(key)).splitlines():
            stored.append(json.loads(line)["messageId"])
    print(f"chaos: {KILLS} SIGKILLs, {len(sent)} sent, {len(acked)} acknowledged, {len(stored)} stored")
    assert len(acked) > 500, "the load was too light to mean anything"
    missing = acked - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"
    duplicates = len(stored) - len(set(stored))
    assert duplicates == 0, f"{duplicates} events stored twice"
    assert set(stored) <= sent
    assert spool_segments(collector.spool_dir) == []
