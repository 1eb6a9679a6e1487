"""How fast, and in how much memory, does events_load put raw objects into raw.events_raw?

Every row runs on the same corpus in the same run; each figure is the median of ``--runs`` runs:

  * DuckDB ceiling       -- count(*) over read_ndjson_objects of the files (DuckDB only scans)
  * DuckDB native        -- DuckDB's own INSERT ... SELECT of the raw line and the 13 text columns
  * trackway -> DuckDB   -- load_interval(): every line kept with its number, 13 text columns, ledger
  * PostgreSQL ceiling   -- COPY of the bare lines into a one-text-column table (no parsing at all)
  * trackway -> PostgreSQL -- into a fresh database each run, as the DuckDB row; then a rerun of the
                           same hour into the loaded one (each object's rows deleted and copied again)
  * dlt -> DuckDB / PostgreSQL -- dlt's filesystem source + read_jsonl into the same warehouses
  * peak RSS             -- a `trackway load` subprocess on one big object (VmHWM of the child)

The corpus (Segment-style events of about 1 KB, gzip'd NDJSON) is generated once and cached
under the system temp dir, keyed by its size. Nothing here asserts time.

Usage: .venv/bin/python benchmarks/bench_loader.py [--events 1000000] [--objects 8] [--runs 3]
           [--dlt-events 100000] [--big-mb 2048] [--skip dlt,postgres,rss]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # postgres_server: a private PostgreSQL for the run
HOUR = datetime(2026, 11, 23, 10, tzinfo=UTC)
CACHE = Path(tempfile.gettempdir()) / "trackway-bench-cache"
EVENTS = ["Listing Viewed", "Search Performed", "Booking Started", "Booking Completed", "Message Sent"]


def segment_event(i: int, rng: random.Random) -> dict:
    """A Segment-style track event of about 1 KB, like analytics.js sends."""
    return {
        "messageId": f"bench-{i:09d}-{rng.getrandbits(48):012x}",
        "type": "track",
        "event": EVENTS[i % len(EVENTS)],
        "userId": f"u-{rng.randrange(50_000)}",
        "anonymousId": f"a-{rng.getrandbits(64):016x}",
        "timestamp": f"2026-11-23T10:{i % 60:02d}:{(i // 60) % 60:02d}.{i % 1000:03d}Z",
        "originalTimestamp": f"2026-11-23T10:{i % 60:02d}:{(i // 60) % 60:02d}.{i % 1000:03d}Z",
        "sentAt": "2026-11-23T10:59:59.000Z",
        "receivedAt": "2026-11-23T10:59:59.120Z",
        "sourceId": "web",
        "properties": {
            "listing_id": f"lst_{rng.randrange(10_000)}",
            "price_per_night": rng.randrange(40, 900),
            "currency": "EUR",
            "city": rng.choice(["Zürich", "Lisbon", "Kraków", "Austin", "Osaka"]),
            "guests": rng.randrange(1, 8),
            "nights": rng.randrange(1, 15),
            "search_terms": ["sea view", "pets allowed", "parking"][: rng.randrange(0, 4)],
        },
        "context": {
            "library": {"name": "analytics.js", "version": "5.2.1"},
            "ip": f"203.0.113.{rng.randrange(256)}",
            "locale": "en-GB",
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36",
            "page": {
                "path": f"/listings/{rng.randrange(10_000)}",
                "referrer": "https://www.google.com/",
                "title": "A flat with a view - Nestful",
                "url": f"https://nestful.example/listings/{rng.randrange(10_000)}?utm_source=newsletter",
            },
            "campaign": {"name": "winter-2026", "source": "newsletter", "medium": "email"},
            "screen": {"width": 1920, "height": 1080, "density": 2},
            "timezone": "Europe/Zurich",
        },
        "integrations": {},
    }


def write_corpus(folder: Path, events: int, objects: int, *, firehose: bool = False) -> int:
    """gzip'd objects of ~1 KB events; NDJSON, or Firehose-style concatenated JSON. Returns raw bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(events)
    per = -(-events // objects)
    total = 0
    for n in range(objects):
        part = folder / f"part-{n:03d}.ndjson.gz"
        with gzip.open(part.with_suffix(".tmp"), "wb", compresslevel=3) as out:
            for start in range(n * per, min(events, (n + 1) * per), 10_000):
                lines = [
                    json.dumps(segment_event(i, rng)) for i in range(start, min(events, (n + 1) * per, start + 10_000))
                ]
                data = ("".join(lines) if firehose else "\n".join(lines) + "\n").encode()
                total += len(data)
                out.write(data)
        part.with_suffix(".tmp").rename(part)
    return total


def corpus(name: str, events: int, objects: int, **kwargs: bool) -> tuple[Path, int]:
    """The cached corpus folder (a Trackway hour partition) and its uncompressed size."""
    root = CACHE / f"{name}-{events}-{objects}"
    folder = root / "raw" / "events" / "dt=2026-11-23" / "hour=10"
    size_file = root / "bytes"
    if not size_file.exists():
        print(f"  writing {name} corpus: {events:,} events in {objects} objects under {root} ...", flush=True)
        root.mkdir(parents=True, exist_ok=True)
        size_file.write_text(str(write_corpus(folder, events, objects, **kwargs)))
    return folder, int(size_file.read_text())


def median_of(runs: int, fn: Callable[[], tuple[int, float]]) -> tuple[int, float]:
    results = [fn() for _ in range(runs)]
    return results[0][0], statistics.median(seconds for _, seconds in results)


# --- rows -----------------------------------------------------------------------------------------


def duckdb_ceiling(folder: Path, work: Path) -> tuple[int, float]:
    import duckdb

    con = duckdb.connect(str(work / "ceiling.duckdb"))
    started = time.perf_counter()
    (rows,) = con.execute(
        "SELECT count(*) FROM read_ndjson_objects(?, compression='gzip')", [str(folder / "*.ndjson.gz")]
    ).fetchone()
    elapsed = time.perf_counter() - started
    con.close()
    return rows, elapsed


def duckdb_native(folder: Path, work: Path, run: int) -> tuple[int, float]:
    """DuckDB itself: one INSERT ... SELECT from read_ndjson_objects writing the raw line and the same
    13 text columns, with the loader's JSON extraction, into a fresh table. What the load should hold up to."""
    import duckdb

    from trackway.rawdata.schema import EVENTS_RAW_TABLE

    fields = EVENTS_RAW_TABLE.text_fields
    paths = ", ".join("'$.\"" + key.replace('"', '\\"') + "\"'" for _, key in fields)
    con = duckdb.connect(str(work / f"native-{run}.duckdb"))
    con.execute(f"CREATE TABLE native ({', '.join(f'{c} VARCHAR' for c, _ in fields)}, raw VARCHAR)")
    picks = ", ".join(f"f[{i}]" for i in range(1, len(fields) + 1))
    started = time.perf_counter()
    con.execute(
        f"INSERT INTO native SELECT {picks}, json FROM (SELECT json, json_extract_string(json, [{paths}]) AS f "
        "FROM read_ndjson_objects(?, compression='gzip'))",
        [str(folder / "*.ndjson.gz")],
    )
    elapsed = time.perf_counter() - started
    (rows,) = con.execute("SELECT count(*) FROM native").fetchone()
    con.close()
    return rows, elapsed


def trackway_load(home: Path, raw: Path, warehouse_url: str | None) -> tuple[int, float]:
    """One load_interval of the corpus hour into a fresh warehouse (reload, so every object is read)."""
    os.environ["TRACKWAY_HOME"] = str(home)
    os.environ["TRACKWAY_RAW_URL"] = raw.as_uri()
    if warehouse_url:
        os.environ["TRACKWAY_WAREHOUSE_URL"] = warehouse_url
    else:
        os.environ.pop("TRACKWAY_WAREHOUSE_URL", None)
    from trackway.config import load_settings
    from trackway.load.loader import load_interval

    started = time.perf_counter()
    report = load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1), progress=lambda m: None, reload=True)
    return report.rows_loaded, time.perf_counter() - started


def trackway_firehose(home: Path, folder: Path) -> tuple[int, float]:
    """The same events as Firehose writes them (no delimiter), declared in a sources file."""
    fh_root = home / "firehose"
    (fh_root / "2026" / "11" / "23").mkdir(parents=True)
    (fh_root / "2026" / "11" / "23" / "10").symlink_to(folder)
    (home / "sources.yml").write_text(
        f"sources:\n  - name: bench\n    url: {fh_root.as_uri()}/\n    layout: firehose\n"
    )
    return trackway_load(home, home / "no-collector-raw", None)


def postgres_ceiling(folder: Path, url: str) -> tuple[int, float]:
    """COPY the decompressed bytes as they are into one text column: the server's ingest ceiling."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        con.execute("DROP TABLE IF EXISTS bench_lines")
        con.execute("CREATE UNLOGGED TABLE bench_lines (line text)")
        started = time.perf_counter()
        with con.cursor() as cur:
            for path in sorted(folder.glob("*.ndjson.gz")):
                with (
                    gzip.open(path, "rb") as body,
                    cur.copy("COPY bench_lines FROM STDIN (FORMAT csv, DELIMITER e'\\x02', QUOTE e'\\x01')") as copy,
                ):
                    while chunk := body.read(1 << 20):
                        copy.write(chunk)
        elapsed = time.perf_counter() - started
        (rows,) = con.execute("SELECT count(*) FROM bench_lines").fetchone()
        con.execute("DROP TABLE bench_lines")
    return rows, elapsed


def dlt_load(folder: Path, work: Path, destination: str, pg_url: str | None, run: int) -> tuple[int, float]:
    """dlt's documented path: filesystem source | read_jsonl -> destination (its normalizer included)."""
    import dlt
    from dlt.sources.filesystem import filesystem, read_jsonl

    os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
    os.environ["DLT_DATA_DIR"] = str(work / "dlt-data")
    os.environ["DLT_PROJECT_DIR"] = str(work / "dlt-project")
    if destination == "duckdb":
        dest = dlt.destinations.duckdb(str(work / f"dlt-{run}.duckdb"))
    else:
        dest = dlt.destinations.postgres(pg_url)
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{destination}_{run}",
        destination=dest,
        dataset_name=f"dlt_raw_{run}",
        pipelines_dir=str(work / "dlt-pipelines"),
    )
    source = filesystem(bucket_url=folder.as_uri(), file_glob="*.ndjson.gz") | read_jsonl()
    started = time.perf_counter()
    pipeline.run(source.with_name("events"))
    elapsed = time.perf_counter() - started
    return pipeline.last_trace.last_normalize_info.row_counts.get("events", 0), elapsed


def peak_rss(big_mb: int, work: Path, warehouse_url: str | None) -> tuple[int, float, float]:
    """Load one object of ``big_mb`` MB (uncompressed) in a `trackway load` subprocess; its peak RSS in MiB."""
    events = big_mb * 1024 * 1024 // 1100
    folder, _ = corpus("big", events, 1)
    home = work / f"rss-{'pg' if warehouse_url else 'duckdb'}"
    env = {**os.environ, "TRACKWAY_HOME": str(home), "TRACKWAY_RAW_URL": folder.parents[2].as_uri()}
    if warehouse_url:
        env["TRACKWAY_WAREHOUSE_URL"] = warehouse_url
    else:
        env.pop("TRACKWAY_WAREHOUSE_URL", None)
    # VmHWM of the child's own memory: ru_maxrss would carry this (large) process's peak over fork and exec.
    probe = (
        "import sys; from trackway.cli import main; rc = main(sys.argv[1:]); "
        "print('maxrss_kib', next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:'))); "
        "sys.exit(rc)"
    )
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", probe, "load", "--hour", "2026-11-23T10", "--reload"],
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout + proc.stderr)
    kib = int(proc.stdout.rsplit("maxrss_kib", 1)[1].split()[0])
    return events, elapsed, kib / 1024


def sweep_listing(days: int, runs: int) -> list[tuple[str, float, int]]:
    """A no-op hourly load on S3 (moto on loopback) with 7 x 24 partitions already loaded: what the sweep costs.

    Baseline in the same run: the same load with a one-day sweep (interval, lookback and
    today's partitions only, about what the load listed before the sweep existed).
    """
    import json as _json

    import boto3

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from collector_helpers import s3_env, start_moto

    server, endpoint = start_moto()
    env = {
        **s3_env(endpoint),
        "AIRFLOW_CONN_BENCH_RAW": _json.dumps({"conn_type": "aws", "extra": {"endpoint_url": endpoint}}),
        "TRACKWAY_RAW_URL": "s3://lake/trackway",
        "TRACKWAY_RAW_CONN_ID": "bench_raw",
    }
    os.environ.update(env)
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="lake")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    body = gzip.compress(b'{"messageId":"m","type":"track","event":"e"}\n')
    objects = 0
    for h in range(days * 24):
        hour = now - timedelta(hours=h)
        for n in range(2):
            key = f"trackway/events/dt={hour:%Y-%m-%d}/hour={hour:%H}/part-{n}.ndjson.gz"
            client.put_object(Bucket="lake", Key=key, Body=body)
            objects += 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="trackway-sweep-") as tmp:
        os.environ["TRACKWAY_HOME"] = tmp
        os.environ.pop("TRACKWAY_WAREHOUSE_URL", None)
        from trackway.config import load_settings
        from trackway.load.loader import load_interval

        first = load_interval(load_settings(), now, now + timedelta(hours=1))  # loads the whole week once
        for label, sweep_days in (("load, 1-day sweep (baseline)", "1"), (f"load, {days}-day sweep", str(days))):
            os.environ["TRACKWAY_LOAD_SWEEP_DAYS"] = sweep_days
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                report = load_interval(load_settings(), now, now + timedelta(hours=1))
                times.append(time.perf_counter() - t0)
                assert report.objects_loaded == 0
            rows.append((label, statistics.median(times), report.objects_found))
        rows.append(("(first run: loads the week)", first.seconds, first.objects_found))
    server.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--objects", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dlt-events", type=int, default=100_000, help="dlt is slow: a smaller corpus, same shape")
    parser.add_argument("--big-mb", type=int, default=2048, help="uncompressed size of the RSS object")
    parser.add_argument("--skip", default="", help="comma list of: dlt, postgres, rss, firehose, sweep")
    parser.add_argument("--only-sweep", action="store_true", help="run only the late-object sweep's listing cost")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if args.only_sweep or "sweep" not in skip:
        print("sweep: a no-op hourly load on S3 (moto) with 7 x 24 partitions of 2 objects, all loaded", flush=True)
        sweep = sweep_listing(7, args.runs)
        print(f"\n{'row':40} {'seconds':>8} {'objects listed':>15}")
        for name, seconds, found in sweep:
            print(f"{name:40} {seconds:>8.2f} {found:>15,}")
        if args.only_sweep:
            return 0

    print(f"corpus: {args.events:,} events in {args.objects} gzip'd NDJSON objects, {os.cpu_count()} CPUs", flush=True)
    folder, raw_bytes = corpus("ndjson", args.events, args.objects)
    raw_root = folder.parents[2]
    results: list[tuple[str, int, float, str]] = []

    def add(name: str, rows: int, seconds: float, note: str = "") -> None:
        results.append((name, rows, seconds, note))
        print(f"  {name}: {rows:,} rows in {seconds:.2f}s ({rows / seconds:,.0f} rows/s) {note}", flush=True)

    with tempfile.TemporaryDirectory(prefix="trackway-bench-") as tmp:
        work = Path(tmp)
        ceiling = median_of(args.runs, lambda: duckdb_ceiling(folder, work))
        add("DuckDB: count(*) read_ndjson_objects (ceiling)", *ceiling)
        k = iter(range(100))
        native = median_of(args.runs, lambda: duckdb_native(folder, work, next(k)))
        add("DuckDB native: INSERT ... SELECT, same columns", *native)
        n = iter(range(100))
        trackway_load(work / "warm-up", raw_root, None)  # imports and first-use costs are not the load's
        ours = median_of(args.runs, lambda: trackway_load(work / f"duck-{next(n)}", raw_root, None))
        add(
            "trackway -> DuckDB",
            *ours,
            f"{(ours[0] / ours[1]) / (native[0] / native[1]):.2f}x native (target >= 0.8x), "
            f"{(ours[0] / ours[1]) / (ceiling[0] / ceiling[1]):.2f}x count(*)",
        )

        pg_ctx = None
        pg_url = None
        if "postgres" not in skip:
            from postgres_server import create_database, postgres_server

            pg_ctx = postgres_server()
            server = pg_ctx.__enter__()
            pg_url = create_database(server, "bench")
            pg_ceiling = median_of(args.runs, lambda: postgres_ceiling(folder, pg_url))
            add("PostgreSQL: COPY bare lines (ceiling)", *pg_ceiling)
            p = iter(range(100))
            pg_ours = median_of(
                args.runs,
                # One database name for every run: create_database drops the last run's (its rows are a
                # gigabyte) and makes it again empty, so each run loads a fresh database.
                lambda: trackway_load(work / f"pg-{next(p)}", raw_root, create_database(server, "bench_fresh")),
            )
            add(
                "trackway -> PostgreSQL",
                *pg_ours,
                f"{(pg_ours[0] / pg_ours[1]) / (pg_ceiling[0] / pg_ceiling[1]):.2f}x COPY",
            )
            # A rerun of the same hour: each object's earlier rows are deleted in its transaction first.
            trackway_load(work / "pg-reload", raw_root, pg_url)
            pg_reload = median_of(args.runs, lambda: trackway_load(work / "pg-reload", raw_root, pg_url))
            add(
                "trackway -> PostgreSQL, rerun (replaces its rows)",
                *pg_reload,
                f"{(pg_reload[0] / pg_reload[1]) / (pg_ceiling[0] / pg_ceiling[1]):.2f}x COPY",
            )
        if "dlt" not in skip:
            dlt_folder, _ = corpus("ndjson", args.dlt_events, args.objects)
            m = iter(range(100))
            dlt_duck = median_of(args.runs, lambda: dlt_load(dlt_folder, work, "duckdb", None, next(m)))
            add(
                f"dlt -> DuckDB ({args.dlt_events:,} events)",
                *dlt_duck,
                f"trackway {(ours[0] / ours[1]) / (dlt_duck[0] / dlt_duck[1]):.1f}x faster",
            )
            if pg_url:
                dlt_pg = median_of(args.runs, lambda: dlt_load(dlt_folder, work, "postgres", pg_url, next(m)))
                add(
                    f"dlt -> PostgreSQL ({args.dlt_events:,} events)",
                    *dlt_pg,
                    f"trackway {(pg_ours[0] / pg_ours[1]) / (dlt_pg[0] / dlt_pg[1]):.1f}x faster",
                )
        if "firehose" not in skip:
            fh_folder, _ = corpus("firehose", args.events, args.objects, firehose=True)
            f = iter(range(100))
            fh = median_of(args.runs, lambda: trackway_firehose(work / f"fh-{next(f)}", fh_folder))
            add(
                "trackway -> DuckDB, Firehose concatenated JSON",
                *fh,
                f"{fh[1] and (fh[0] / fh[1]) / (ours[0] / ours[1]):.2f}x NDJSON",
            )
        rss_rows: list[tuple[str, int, float, float]] = []
        if "rss" not in skip:
            for label, url in (("DuckDB", None), ("PostgreSQL", pg_url)):
                if label == "PostgreSQL" and not url:
                    continue
                events, seconds, mib = peak_rss(args.big_mb, work, url)
                rss_rows.append((f"peak RSS, one {args.big_mb:,} MB object -> {label}", events, seconds, mib))
                print(f"  {rss_rows[-1][0]}: {mib:,.0f} MiB ({seconds:.1f}s)", flush=True)
        if pg_ctx is not None:
            pg_ctx.__exit__(None, None, None)

    print(f"\n{args.events:,} events, {raw_bytes / 1e6:,.0f} MB uncompressed, median of {args.runs} runs\n")
    print(f"{'row':52} {'rows':>11} {'seconds':>8} {'rows/s':>10}  note")
    for name, rows, seconds, note in results:
        print(f"{name:52} {rows:>11,} {seconds:>8.2f} {rows / seconds:>10,.0f}  {note}")
    for name, events, seconds, mib in rss_rows:
        print(f"{name:52} {events:>11,} {seconds:>8.2f} {'':>10}  {mib:,.0f} MiB peak (target <= 1024)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
