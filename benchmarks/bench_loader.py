"""How fast does events_load put raw lines into raw.events_raw?

Compares, on the same gzip'd NDJSON objects in the same run:
  * trackway loader  — load_interval(): parse, extract text columns, keep the line, ledger (DuckDB)
  * baseline: parse  — gzip + json.loads of every line in Python, nothing stored (the floor for any Python loader)
  * baseline: duckdb — DuckDB's own C++ reader copying each line as text into a table (no parsing, no lineage)

Usage: .venv/bin/python benchmarks/bench_loader.py [--events 200000] [--objects 8]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path


def write_objects(root: Path, events: int, objects: int) -> tuple[Path, int]:
    from trackway.demo.marketplace import generate_day

    calls = []
    day = date(2026, 11, 22)
    while len(calls) < events:
        calls.extend(generate_day(day, people=300, seed=len(calls)))
        day += timedelta(days=1)
    calls = calls[:events]
    folder = root / "raw" / "events" / "dt=2026-11-23" / "hour=10"
    folder.mkdir(parents=True)
    per = -(-events // objects)
    total_bytes = 0
    for n in range(objects):
        lines = []
        for call in calls[n * per : (n + 1) * per]:
            body = dict(call.kwargs.items())
            msg = {
                "type": call.method,
                "messageId": body.pop("message_id"),
                "timestamp": body.pop("timestamp").isoformat(),
                "receivedAt": "2026-11-23T10:00:00.000Z",
                "sentAt": "2026-11-23T10:00:00.000Z",
                "sourceId": "web",
            }
            for key, value in body.items():
                parts = key.split("_")
                msg[parts[0] + "".join(p.title() for p in parts[1:])] = value
            lines.append(json.dumps(msg, default=str))
        data = ("\n".join(lines) + "\n").encode()
        total_bytes += len(data)
        (folder / f"part-{n:03d}.ndjson.gz").write_bytes(gzip.compress(data, compresslevel=6))
    return folder, total_bytes


def bench_trackway(home: Path) -> tuple[int, float]:
    os.environ["TRACKWAY_HOME"] = str(home)
    from trackway.config import load_settings
    from trackway.load.loader import load_interval

    settings = load_settings()
    hour = datetime(2026, 11, 23, 10, tzinfo=UTC)
    load_interval(settings, hour, hour + timedelta(hours=1), progress=lambda m: None, reload=True)  # warm imports
    started = time.perf_counter()
    report = load_interval(settings, hour, hour + timedelta(hours=1), progress=lambda m: None, reload=True)
    return report.rows_loaded, time.perf_counter() - started


def bench_parse_only(folder: Path) -> tuple[int, float]:
    started = time.perf_counter()
    rows = 0
    for path in sorted(folder.glob("*.ndjson.gz")):
        with gzip.open(path, "rb") as body:
            for line in body:
                json.loads(line)
                rows += 1
    return rows, time.perf_counter() - started


def bench_duckdb_native(folder: Path, home: Path) -> tuple[int, float]:
    import duckdb

    con = duckdb.connect(str(home / "baseline.duckdb"))
    started = time.perf_counter()
    con.execute(
        "CREATE TABLE lines AS SELECT line AS raw, filename FROM read_csv(?, columns={'line': 'VARCHAR'}, "
        "delim=chr(1), quote='', escape='', header=false, filename=true, compression='gzip')",
        [str(folder / "*.ndjson.gz")],
    )
    rows = con.execute("SELECT count(*) FROM lines").fetchone()[0]
    elapsed = time.perf_counter() - started
    con.close()
    return rows, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--objects", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trackway-bench-") as tmp:
        home = Path(tmp)
        print(f"writing {args.events:,} events into {args.objects} gzip'd NDJSON objects ...", flush=True)
        folder, raw_bytes = write_objects(home, args.events, args.objects)
        results = [
            ("trackway loader (DuckDB)", *bench_trackway(home)),
            ("baseline: gzip+json.loads only", *bench_parse_only(folder)),
            ("baseline: DuckDB read_csv lines", *bench_duckdb_native(folder, home)),
        ]
    print(f"\n{args.events:,} events, {raw_bytes / 1e6:,.1f} MB uncompressed, {os.cpu_count()} CPUs\n")
    print(f"{'method':34} {'rows':>10} {'seconds':>9} {'rows/s':>11} {'MB/s':>7}")
    for name, rows, seconds in results:
        print(f"{name:34} {rows:>10,} {seconds:>9.2f} {rows / seconds:>11,.0f} {raw_bytes / 1e6 / seconds:>7.1f}")
    ours = results[0][2]
    print(
        f"\ntrackway loader takes {ours / results[1][2]:.1f}x the pure-parse time and "
        f"{ours / results[2][2]:.1f}x DuckDB's native line copy."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
