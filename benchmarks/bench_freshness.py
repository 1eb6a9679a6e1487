"""How long after the collector acknowledges an event can an analyst query it? (micro-batch mode, adr/0033)

For each warehouse (the embedded DuckDB of `make up`; PostgreSQL on the tests'
throwaway server), `trackway up` runs the whole stack in micro-batch mode (its
default). Once its first hourly load and full transform are done, a steady
stream goes through the real Segment SDK (segment-analytics-python): --rate
events/s for --minutes, batched by an async client; once a second one probe
event goes through a second client in sync mode, so its acknowledgement time is
exact. The probes are looked for where analysts read (a read-only connection,
opened for each look, as `trackway query` does) in analytics.events and in
analytics.sessions. Printed: p50, p95 and max from acknowledgement to visible,
beside Firehose's minimum buffer (60 s, before it even writes), where the
seconds go (median per stage, from the rows' own timestamps), and whether every
acknowledged event arrived once (0 lost, 0 duplicated).

Stages: upload (ack → the object is in the raw store: its mtime), schedule (→ the
micro-batch load starts: the watcher's poll and Airflow's scheduling), load (→ the
rows are committed), transform (→ dbt wrote the row: events_transform's
scheduling and the dbt run), read (→ the reader saw it: its poll and lock wait).

The benchmark asserts nothing about time.

Usage: .venv/bin/python benchmarks/bench_freshness.py [--minutes 10] [--rate 200] [--warehouse duckdb|postgres|both]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
TRACKWAY = str(Path(sys.executable).parent / "trackway")
FIREHOSE_MIN_BUFFER_SECONDS = 60
KEY = "trackway-demo-key"  # the demo key: the collector listens on loopback only


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Stack:
    def __init__(self, home: Path, warehouse_url: str | None) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TRACKWAY_"))}
        self.env.update(
            {
                "TRACKWAY_HOME": str(home),
                "TRACKWAY_COLLECTOR_PORT": str(_free_port()),
                "TRACKWAY_AIRFLOW_PORT": str(_free_port()),
                "TRACKWAY_COLLECTOR_WORKERS": "1",
                # On a fresh home the first transform's freshness check fails (raw is empty): at once, not after
                # two retries a minute apart.
                "TRACKWAY_TASK_RETRIES": "0",
            }
        )
        if warehouse_url:
            self.env["TRACKWAY_WAREHOUSE_URL"] = warehouse_url
        self.collector_url = f"http://127.0.0.1:{self.env['TRACKWAY_COLLECTOR_PORT']}"
        self.airflow_url = f"http://127.0.0.1:{self.env['TRACKWAY_AIRFLOW_PORT']}"
        self.output = home.parent / "up.out"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.home.mkdir(parents=True)
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen([TRACKWAY, "up"], env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.wait("the stack", lambda: "Trackway is up in" in self.output.read_text(errors="replace"), 600)

    def wait(self, what: str, predicate, deadline: float, interval: float = 2.0):
        end = time.monotonic() + deadline
        while not (value := predicate()):
            if self.proc is not None and self.proc.poll() is not None:
                raise SystemExit(f"trackway up exited waiting for {what}; see {self.output}")
            if time.monotonic() > end:
                raise SystemExit(f"timed out waiting for {what}; see {self.output}")
            time.sleep(interval)
        return value

    def api(self):
        from pydantic import SecretStr

        from trackway.orchestration.airflow_api import AirflowApi

        passwords = json.loads((self.home / "airflow" / "simple_auth_manager_passwords.json.generated").read_text())
        return AirflowApi(self.airflow_url, "admin", SecretStr(passwords["admin"]))

    def idle(self) -> bool:
        """The first full transform is done and nothing runs: the steady state begins."""
        runs = self.api().get("dags/events_transform/dagRuns?limit=50")["dag_runs"]
        return bool(runs) and all(r["state"] in ("success", "failed") for r in runs)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=200)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Reader:
    """Reads as analysts do: a read-only connection per look (DuckDB: never held between looks)."""

    def __init__(self, stack: Stack) -> None:
        os.environ.update({k: v for k, v in stack.env.items() if k.startswith("TRACKWAY_")})
        from trackway.config import load_settings

        self.settings = load_settings()

    def query(self, sql: str) -> list[tuple]:
        from trackway.warehouse import open_warehouse

        try:
            with open_warehouse(self.settings.read_warehouse, read_only=True) as wh:
                return wh.query(sql)
        except FileNotFoundError:
            return []
        except Exception as exc:  # a table not built yet
            if "does not exist" in str(exc) or "Catalog Error" in str(exc):
                return []
            raise


def _in(ids) -> str:
    return ", ".join(f"'{i}'" for i in ids)


def run_one(warehouse: str, minutes: float, rate: int, pg_url: str | None) -> dict:
    from segment.analytics import Client

    tmp = Path(tempfile.mkdtemp(prefix=f"bench-freshness-{warehouse}-"))
    url = None
    if warehouse == "postgres":
        from postgres_server import create_database

        url = create_database(pg_url, f"bench_fresh_{uuid.uuid4().hex[:8]}")
    stack = Stack(tmp / "home", url)
    started = time.monotonic()
    print(f"[{warehouse}] starting trackway up in {tmp} ...", flush=True)
    stack.start()
    print(f"[{warehouse}] up in {time.monotonic() - started:.0f}s; waiting for the first full transform", flush=True)
    stack.wait("the first events_transform", stack.idle, 1200, 5)
    reader = Reader(stack)
    tag = uuid.uuid4().hex[:8]
    failed: list[str] = []
    bulk = Client(
        KEY,
        host=stack.collector_url,
        upload_size=100,
        upload_interval=0.2,
        max_queue_size=1_000_000,
        on_error=lambda exc, batch: failed.extend(m["messageId"] for m in batch),
    )
    probe_client = Client(KEY, host=stack.collector_url, sync_mode=True, max_retries=3)
    acked: dict[str, float] = {}  # probe id -> wall time of its acknowledgement
    seen_events: dict[str, float] = {}
    seen_sessions: dict[str, float] = {}
    sent = 0
    stop = threading.Event()

    def look() -> None:
        while not stop.is_set() or len(seen_sessions) < len(acked):
            pending = [p for p in list(acked) if p not in seen_events]
            if pending:
                rows = reader.query(f"SELECT event_id FROM analytics.events WHERE event_id IN ({_in(pending)})")
                now = time.time()
                for (event_id,) in rows:
                    seen_events.setdefault(event_id, now)
            pending = [p for p in seen_events if p not in seen_sessions]
            if pending:
                rows = reader.query(
                    "SELECT e.event_id FROM analytics.events AS e JOIN analytics.sessions AS s "
                    f"ON s.session_id = e.session_id WHERE e.event_id IN ({_in(pending)})"
                )
                now = time.time()
                for (event_id,) in rows:
                    seen_sessions.setdefault(event_id, now)
            if stop.is_set() and time.monotonic() > drain_deadline[0]:
                return
            time.sleep(1.0)

    drain_deadline = [float("inf")]
    looker = threading.Thread(target=look, daemon=True)
    looker.start()
    print(f"[{warehouse}] sending {rate} events/s for {minutes:g} min", flush=True)
    t0 = time.monotonic()
    second = 0
    while time.monotonic() - t0 < minutes * 60:
        for i in range(rate - 1):
            bulk.track(
                user_id=f"u-{i % 500}",
                event="Bench Freshness",
                properties={"i": i},
                message_id=f"b-{tag}-{second}-{i}",
            )
        probe = f"p-{tag}-{second}"
        probe_client.track(user_id=f"u-{second % 500}", event="Bench Freshness", message_id=probe)
        acked[probe] = time.time()
        sent += rate
        second += 1
        time.sleep(max(0.0, t0 + second - time.monotonic()))
    bulk.flush()
    print(f"[{warehouse}] sent {sent} ({len(failed)} refused); waiting for the last probes", flush=True)
    drain_deadline[0] = time.monotonic() + 900
    stop.set()
    looker.join()
    # Every acknowledged event, once: wait for the last micro-batch to land everything.
    like = f"b-{tag}-%"

    def counts() -> tuple[int, int]:
        rows = reader.query(
            "SELECT count(*), count(DISTINCT event_id) FROM analytics.events "
            f"WHERE event_id LIKE '{like}' OR event_id LIKE 'p-{tag}-%'"
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    expected = sent - len(failed)
    end = time.monotonic() + 900
    while counts()[1] < expected and time.monotonic() < end:
        time.sleep(5)
    total, distinct = counts()
    breakdown = stages(reader, acked, seen_events)
    api = stack.api()
    micro_runs = api.get("dags/events_microbatch/dagRuns?limit=1")["total_entries"]
    transform_runs = api.get("dags/events_transform/dagRuns?limit=1")["total_entries"]
    stack.stop()
    ev = [seen_events[p] - acked[p] for p in seen_events]
    se = [seen_sessions[p] - acked[p] for p in seen_sessions]
    return {
        "warehouse": warehouse,
        "minutes": minutes,
        "rate": rate,
        "sent": sent,
        "refused": len(failed),
        "probes": len(acked),
        "events": _pcts(ev),
        "sessions": _pcts(se),
        "probes_missing": len(acked) - len(seen_events),
        "lost": expected - distinct,
        "duplicated": total - distinct,
        "stages": breakdown,
        "micro_batch_runs": micro_runs,
        "transform_runs": transform_runs,
    }


def stages(reader: Reader, acked: dict[str, float], seen: dict[str, float]) -> dict[str, float]:
    """Median seconds per stage over the probes, from the rows' own timestamps."""
    if not seen:
        return {}
    rows = reader.query(
        "SELECT r.message_id, r.source_object, lr.started_at, r.loaded_at, e.transformed_at "
        "FROM raw.events_raw AS r JOIN raw.load_runs AS lr ON lr.load_id = r.load_id "
        "JOIN analytics.events AS e ON e.event_id = r.message_id "
        f"WHERE r.message_id IN ({_in(seen)})"
    )
    parts: dict[str, list[float]] = {k: [] for k in ("upload", "schedule", "load", "transform", "read")}
    for message_id, source_object, load_started_at, loaded_at_, transformed_at in rows:
        ack = acked[message_id]
        uploaded = Path(urlparse(source_object).path).stat().st_mtime
        load_started, loaded_at = _utc(load_started_at).timestamp(), _utc(loaded_at_).timestamp()
        transformed = _utc(transformed_at).timestamp()
        parts["upload"].append(uploaded - ack)
        parts["schedule"].append(load_started - uploaded)
        parts["load"].append(loaded_at - load_started)
        parts["transform"].append(transformed - loaded_at)
        parts["read"].append(seen[message_id] - transformed)
    return {k: statistics.median(v) for k, v in parts.items() if v}


def _pcts(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "p50": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "max": ordered[-1],
    }


def table(results: list[dict]) -> str:
    def f(d: dict, k: str) -> str:
        return f"{d[k]:.0f} s" if k in d else "–"

    lines = [
        "| warehouse | events (rate × min) | probes | to analytics.events p50 / p95 / max | to analytics.sessions "
        "p50 / p95 / max | lost | duplicated | Firehose's minimum buffer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['warehouse']} | {r['sent']:,} ({r['rate']}/s × {r['minutes']:g}) | {r['probes']} | "
            f"{f(r['events'], 'p50')} / {f(r['events'], 'p95')} / {f(r['events'], 'max')} | "
            f"{f(r['sessions'], 'p50')} / {f(r['sessions'], 'p95')} / {f(r['sessions'], 'max')} | "
            f"{r['lost']} | {r['duplicated']} | {FIREHOSE_MIN_BUFFER_SECONDS} s (before it writes) |"
        )
    lines += [
        "",
        "| warehouse | upload | schedule | load | transform | read | micro-batch loads | transform runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["stages"]
        cells = " | ".join(
            f"{s[k]:.1f} s" if k in s else "–" for k in ("upload", "schedule", "load", "transform", "read")
        )
        lines.append(f"| {r['warehouse']} | {cells} | {r['micro_batch_runs']} | {r['transform_runs']} |")
    lines.append("(stages: medians over the probes; the percentiles are from acknowledgement to visible)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=200, help="events per second (one of them a probe)")
    parser.add_argument("--warehouse", choices=("duckdb", "postgres", "both"), default="both")
    args = parser.parse_args()
    warehouses = ["duckdb", "postgres"] if args.warehouse == "both" else [args.warehouse]
    results = []
    pg = None
    try:
        if "postgres" in warehouses:
            from postgres_server import postgres_server

            pg = postgres_server()
            pg_url = pg.__enter__()
        else:
            pg_url = None
        for warehouse in warehouses:
            results.append(run_one(warehouse, args.minutes, args.rate, pg_url))
            print(json.dumps(results[-1], default=str), flush=True)
    finally:
        if pg is not None:
            pg.__exit__(None, None, None)
    print()
    print(f"Freshness, micro-batch mode ({datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} cores):")
    print(table(results))


if __name__ == "__main__":
    main()
