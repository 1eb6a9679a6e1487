"""How many events per second does the collector acknowledge, durably?

Runs the real collector (`trackway collect`, its own process) and, in the same
run and with the same client load, two baselines:
  * bare HTTP   — a stdlib threaded HTTP server that reads the body and answers
                  200 without parsing or storing (the HTTP stack's ceiling here)
  * bare fsync  — appends of the same batch bodies to one file with an fsync
                  after each (what durability costs without group commit)

Clients are threads with keep-alive connections sending /v1/batch bodies.
Usage: .venv/bin/python benchmarks/bench_collector.py [--clients 16] [--batch 20] [--seconds 5]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

WRITE_KEY = "bench-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch_body(size: int) -> bytes:
    events = [
        {
            "type": "track",
            "event": "Listing Viewed",
            "userId": f"user-{i}",
            "messageId": str(uuid.uuid4()),
            "timestamp": "2026-11-22T10:15:00.000Z",
            "properties": {"listing_id": f"lst_{i:05d}", "city": "Lisbon", "price_per_night": 120, "currency": "USD"},
            "context": {"library": {"name": "bench", "version": "1"}, "userAgent": "Mozilla/5.0 (bench)"},
        }
        for i in range(size)
    ]
    return json.dumps({"batch": events, "sentAt": "2026-11-22T10:15:01.000Z"}).encode()


def drive(port: int, clients: int, batch: int, seconds: float) -> dict:
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    bodies = [_batch_body(batch) for _ in range(8)]
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, i = [], 0
        while time.monotonic() < stop_at:
            body = bodies[(n + i) % len(bodies)]
            i += 1
            started = time.perf_counter()
            conn.request(
                "POST", "/v1/batch", body=body, headers={"Authorization": auth, "Content-Type": "application/json"}
            )
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status != 200:
                with lock:
                    errors[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "events_per_s": len(latencies) * batch / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
        "errors": errors[0],
    }


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"success": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def bench_bare_http(clients: int, batch: int, seconds: float) -> dict:
    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def server_bind(self):
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().server_bind()

    server = Server(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        return drive(server.server_address[1], clients, batch, seconds)
    finally:
        server.shutdown()


def bench_bare_fsync(batch: int, seconds: float, folder: Path) -> dict:
    body = _batch_body(batch)
    fd = os.open(folder / "fsync.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    writes, latencies = 0, []
    stop_at = time.monotonic() + seconds
    started = time.monotonic()
    while time.monotonic() < stop_at:
        t = time.perf_counter()
        os.write(fd, body)
        os.fsync(fd)
        latencies.append(time.perf_counter() - t)
        writes += 1
    os.close(fd)
    latencies.sort()
    return {
        "requests": writes,
        "events_per_s": writes * batch / (time.monotonic() - started),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
        "errors": 0,
    }


def bench_collector(clients: int, batch: int, seconds: float, home: Path) -> dict:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKWAY_")}
    env.update({"TRACKWAY_HOME": str(home), "TRACKWAY_WRITE_KEYS": f"bench:{WRITE_KEY}"})
    with open(home / "collector.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trackway.cli", "collect", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"collector did not start; see {home / 'collector.log'}") from None
                time.sleep(0.1)
        result = drive(port, clients, batch, seconds)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as resp:
            health = json.load(resp)
        result["accepted"] = health.get("events_accepted")
        return result
    finally:
        proc.terminate()
        proc.wait(120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--batch", type=int, default=20, help="events per /v1/batch request")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trackway-bench-") as tmp:
        home = Path(tmp)
        print(
            f"{args.clients} clients, {args.batch} events per batch, {args.seconds:.0f}s each, {os.cpu_count()} CPUs",
            flush=True,
        )
        rows = [
            ("trackway collector (fsync'd)", bench_collector(args.clients, args.batch, args.seconds, home)),
            ("baseline: bare HTTP, no storage", bench_bare_http(args.clients, args.batch, args.seconds)),
            ("baseline: 1 fsync per batch", bench_bare_fsync(args.batch, args.seconds, home)),
        ]
    print(f"\n{'method':34} {'requests':>9} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, r in rows:
        print(
            f"{name:34} {r['requests']:>9,} {r['events_per_s']:>10,.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['errors']:>7}"
        )
    ours = rows[0][1]
    bound = (
        "HTTP and JSON handling" if rows[2][1]["events_per_s"] > rows[1][1]["events_per_s"] else "the disk's fsync rate"
    )
    print(
        f"\ncollector acknowledged {ours.get('accepted', 0):,} events at "
        f"{ours['events_per_s'] / rows[1][1]['events_per_s']:.0%} of the bare-HTTP rate; "
        f"this disk fsyncs {rows[2][1]['events_per_s']:,.0f} events/s alone, so the limit here is {bound}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
