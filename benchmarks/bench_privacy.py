"""What does erasure cost? `trackway privacy run` for 1 user and for 1,000 users, per store, and the rewrite's speed.

Rows printed (nothing here asserts time):

  * erase N users, DuckDB (``--duckdb-events``, default 10 M) and PostgreSQL (``--pg-events``, default 1 M):
    the run's seconds per store (warehouse deletion, raw-object rewrite, verification) and in total;
    the first run also hashes every id into privacy.id_hashes once (its "total" includes that);
  * raw-object rewrite, MB/s of decompressed data: ``rewrite_object`` with the erasing edit for 1,000
    users (ids found, the subjects' lines parsed and blanked, the copy read back and checked, then put)
    against a plain gzip re-compress of the same objects in the same run (decompress, compress at the
    collector's level, write), on the DuckDB corpus; target >= 0.5x.

The corpus: events of about 600 bytes from 50,000 users with 3 devices each (anonymous ids), gzip'd
NDJSON as the collector writes it, cached under the system temp dir. It is loaded by the real loader.
The marts are not built by dbt here (a dbt build over 10 M events takes far longer than the erasure):
analytics.events, identity_map, sessions and users are made by SQL with the marts' id columns, so the
deletion touches tables of the real shape and size. Each scenario works on its own copy of the objects.

Usage: .venv/bin/python benchmarks/bench_privacy.py [--duckdb-events 10000000] [--pg-events 1000000]
           [--objects 40] [--skip postgres]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # postgres_server: a private PostgreSQL for the run
HOUR = datetime(2026, 11, 23, 10, tzinfo=UTC)
CACHE = Path(tempfile.gettempdir()) / "trackway-bench-cache"
USERS = 50_000
KEY = "bench-" + "0" * 58

MARTS = [
    "CREATE SCHEMA IF NOT EXISTS analytics",
    "CREATE TABLE analytics.events AS SELECT message_id AS event_id, user_id, anonymous_id, previous_id, "
    "coalesce(user_id, anonymous_id) AS person_id, event AS event_name, received_at FROM raw.events_raw",
    "CREATE TABLE analytics.identity_map AS SELECT DISTINCT anonymous_id, user_id, user_id AS person_id "
    "FROM raw.events_raw WHERE user_id IS NOT NULL AND anonymous_id IS NOT NULL",
    "CREATE TABLE analytics.sessions AS SELECT anonymous_id AS session_id, anonymous_id, max(user_id) AS user_id, "
    "max(user_id) AS person_id, count(*) AS events FROM raw.events_raw GROUP BY anonymous_id",
    "CREATE TABLE analytics.users AS SELECT user_id, user_id AS person_id, count(*) AS events "
    "FROM raw.events_raw WHERE user_id IS NOT NULL GROUP BY user_id",
]


def _event(i: int, rng: random.Random) -> bytes:
    user = rng.randrange(USERS)
    anonymous = f"a-{user:05d}-{rng.randrange(3)}"
    body = {
        "messageId": f"m-{i:010d}",
        "type": "track",
        "event": "Listing Viewed",
        "anonymousId": anonymous,
        "timestamp": "2026-11-23T10:15:00.000Z",
        "receivedAt": "2026-11-23T10:15:01.000Z",
        "sourceId": "web",
        "properties": {"listing_id": f"lst_{rng.randrange(10_000)}", "price": rng.randrange(40, 900)},
        "context": {"ip": "203.0.113.7", "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"},
    }
    if rng.random() < 0.7:  # most events of an identified device carry its user
        body["userId"] = f"u-{user:05d}"
    return json.dumps(body).encode()


def corpus(events: int, objects: int) -> Path:
    """The cached raw store (``<root>/raw``) of ``events`` events in ``objects`` gzip'd objects."""
    root = CACHE / f"privacy-{events}-{objects}"
    done = root / "done"
    if not done.exists():
        print(f"  writing the corpus: {events:,} events in {objects} objects under {root} ...", flush=True)
        folder = root / "raw" / "events" / "dt=2026-11-23" / "hour=10"
        folder.mkdir(parents=True, exist_ok=True)
        rng = random.Random(events)
        per = -(-events // objects)
        for n in range(objects):
            with gzip.open(folder / f"part-{n:04d}.ndjson.gz", "wb", compresslevel=1) as out:
                for start in range(n * per, min(events, (n + 1) * per), 20_000):
                    stop = min(events, (n + 1) * per, start + 20_000)
                    out.write(b"\n".join(_event(i, rng) for i in range(start, stop)) + b"\n")
        done.write_text("ok")
    return root / "raw"


def _environment(home: Path, raw: Path, warehouse_url: str | None) -> None:
    for name in [k for k in os.environ if k.startswith("TRACKWAY_")]:
        del os.environ[name]
    os.environ.update(
        {"TRACKWAY_HOME": str(home), "TRACKWAY_RAW_URL": raw.as_uri(), "TRACKWAY_PRIVACY_LEDGER_KEY": KEY}
    )
    if warehouse_url:
        os.environ["TRACKWAY_WAREHOUSE_URL"] = warehouse_url


def prepare(name: str, events: int, objects: int, work: Path, warehouse_url: str | None) -> Path:
    """A home with its own copy of the corpus, loaded, with marts of the real shape."""
    from trackway.config import load_settings
    from trackway.load.loader import load_interval
    from trackway.warehouse import open_warehouse

    home = work / name
    raw = home / "raw"
    shutil.copytree(corpus(events, objects), raw)
    _environment(home, raw, warehouse_url)
    started = time.perf_counter()
    report = load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1), progress=lambda m: None)
    print(f"  {name}: loaded {report.rows_loaded:,} rows in {time.perf_counter() - started:.1f}s", flush=True)
    with open_warehouse(load_settings().warehouse) as wh:
        for statement in MARTS:
            wh.execute(statement)
    return raw


def erase(users: int, seed: int) -> tuple[float, dict[str, float], int, int]:
    """Request deletion of ``users`` users (as `trackway privacy request` does), then run; (rows, seconds...)."""
    from trackway.config import load_settings
    from trackway.privacy.runs import request, run

    ids = [f"u-{n:05d}" for n in random.Random(seed).sample(range(USERS), users)]
    settings = load_settings("privacy")
    request(settings, "delete_only", user_ids=ids)
    started = time.perf_counter()
    report = run(settings)
    total = time.perf_counter() - started
    assert not report.failed and not report.objects_failed, report.lines()
    return total, report.seconds, sum(report.rows.values()), report.lines_removed


def rewrite_speed(raw: Path, objects: int, work: Path) -> dict[str, float]:
    """MB/s of the rewrite and of a plain re-compress of the same objects, by wall clock and by CPU time.

    CPU time (this process) is the steadier figure on a shared machine: both are one thread.
    """
    from trackway.objectstore import open_object_store
    from trackway.privacy.rewrite import COMPRESS_LEVEL, erasing, rewrite_object
    from trackway.subjects.keys import SubjectKey
    from trackway.subjects.sets import SubjectMatcher, everything_of

    keys = sorted(p.relative_to(raw).as_posix() for p in (raw / "events").rglob("*.ndjson.gz"))[:objects]
    key = SubjectKey(KEY.encode())
    doomed = {key.hash(f"u-{n:05d}") for n in random.Random(3).sample(range(USERS), 1000)}
    edit = erasing(SubjectMatcher(key, everything_of(doomed, key.key_id)))
    copy = work / "rewrite-copy"
    shutil.copytree(raw / "events", copy / "events")
    store = open_object_store(copy.as_uri())
    size = 0
    started, cpu = time.perf_counter(), time.process_time()
    for name in keys:
        size += rewrite_object(store, name, edit).bytes_read
    rewrite_seconds, rewrite_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    for name in keys:  # the baseline: the same bytes, decompressed and compressed again, no parsing
        plain = work / "plain.ndjson.gz"
        with gzip.open(raw / name, "rb") as body, gzip.open(plain, "wb", compresslevel=COMPRESS_LEVEL) as out:
            while chunk := body.read(1 << 20):
                out.write(chunk)
        plain.unlink()
    plain_seconds, plain_cpu = time.perf_counter() - started, time.process_time() - cpu
    shutil.rmtree(copy)
    mb = size / 1e6
    return {
        "mb": mb,
        "rewrite": mb / rewrite_seconds,
        "plain": mb / plain_seconds,
        "rewrite_cpu": mb / rewrite_cpu,
        "plain_cpu": mb / plain_cpu,
    }


def scenario(name: str, events: int, objects: int, work: Path, warehouse_url: str | None) -> list[str]:
    prepare(name, events, objects, work, warehouse_url)
    rows = []
    for users, seed in ((1, 1), (1000, 2)):
        total, seconds, deleted, lines = erase(users, seed)
        per_store = "  ".join(
            f"{store} {seconds.get(store, 0):6.2f}s" for store in ("warehouse", "raw_objects", "verification")
        )
        rows.append(
            f"{name:<10} {events:>11,} events  erase {users:>5} user(s): {per_store}  total {total:6.2f}s  "
            f"({deleted:,} rows, {lines:,} raw lines)"
        )
        print("  " + rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duckdb-events", type=int, default=10_000_000)
    parser.add_argument("--pg-events", type=int, default=1_000_000)
    parser.add_argument("--objects", type=int, default=40, help="objects per corpus (collector segments)")
    parser.add_argument("--rewrite-objects", type=int, default=8, help="objects timed for the rewrite row")
    parser.add_argument("--skip", default="", help="comma list: duckdb, postgres, rewrite")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    work = Path(tempfile.mkdtemp(prefix="trackway-bench-privacy-"))
    rows: list[str] = []
    try:
        if "duckdb" not in skip:
            rows += scenario("duckdb", args.duckdb_events, args.objects, work, None)
        if "postgres" not in skip:
            from postgres_server import create_database, postgres_server

            with postgres_server() as url:
                rows += scenario("postgres", args.pg_events, args.objects, work, create_database(url, "bench_privacy"))
        if "rewrite" not in skip:
            # The largest corpus: its ids repeat as a real day's do (a small corpus has a new id in almost every
            # event, and hashing new ids, once each, would dominate).
            speed = rewrite_speed(corpus(args.duckdb_events, args.objects), args.rewrite_objects, work)
            ratio = speed["rewrite_cpu"] / speed["plain_cpu"]
            rows.append(
                f"raw-object rewrite, {speed['mb']:,.0f} MB decompressed in {args.rewrite_objects} objects "
                f"(MB/s wall | MB/s of CPU time):\n"
                f"  rewrite (parse, erase, gzip, read back, put) {speed['rewrite']:7.1f} | {speed['rewrite_cpu']:7.1f}\n"
                f"  plain gzip re-compress                       {speed['plain']:7.1f} | {speed['plain_cpu']:7.1f}\n"
                f"  ratio {speed['rewrite'] / speed['plain']:.2f}x wall, {ratio:.2f}x CPU "
                f"(target >= 0.5x: {'met' if ratio >= 0.5 else 'missed'})"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("\n".join(rows))


if __name__ == "__main__":
    main()
