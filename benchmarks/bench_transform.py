"""Does an incremental events_transform cost the same on top of 1 day and of 30 days of history?

For each warehouse (DuckDB; PostgreSQL on a throwaway local server):
  1. raw.events_raw gets N days of history (synthetic Segment lines, generated
     in SQL), and one full `dbt build` makes analytics.* from it (not timed);
  2. three times: a new load of --increment events (late in the last day, the
     same devices, so sessions are reopened) lands, and the hourly `dbt build`
     (models + data tests of the rows it wrote, var test_scope=new_rows, as
     events_transform runs it) is timed; then a no-op `dbt build` with every
     data test over all history (test_scope=all, the daily audit's scope);
  3. baseline: the same increment as one hand-written INSERT ... SELECT
     (parse, type, skip known messageIds) into a copy of analytics.events;
and the median of the three is printed for 1 day and 30 days, with the ratio.
Then a full refresh of --full-refresh-events on DuckDB: time and peak RSS
(dbt in a child process, so its RSS is measured alone).

The benchmark asserts nothing about time.

With --pg-without-indexes, PostgreSQL runs again with var postgres_indexes=false,
so what the indexes buy is measured, not assumed.
A per-model profile (dbt's run_results.json) shows where each run's time goes.

Usage: .venv/bin/python benchmarks/bench_transform.py [--per-day 100000] [--pg-per-day 20000]
       [--increment 50000] [--full-refresh-events 10000000] [--skip-postgres] [--pg-without-indexes]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

DAY0 = datetime(2026, 10, 1, tzinfo=UTC)
DEVICES_PER_DAY_DIVISOR = 20  # ~20 events per device per day

# One synthetic Segment line per i: every 10th a page call, the rest track calls.
GENERATE = """
insert into raw.events_raw
    (message_id, type, event, anonymous_id, "timestamp", received_at, raw, source_object, line_number, load_id, loaded_at)
select
    msg, typ, evt, anon, ts, ts,
    '{{"messageId":"' || msg || '","type":"' || typ || '"'
        || case when evt is null then '' else ',"event":"' || evt || '"' end
        || ',"anonymousId":"' || anon || '","timestamp":"' || ts || '","receivedAt":"' || ts || '"'
        || ',"properties":{{"i":' || i || '}},"context":{{"page":{{"path":"/p/' || (i % 50) || '"}},'
        || '"campaign":{{"source":"s' || (i % 7) || '"}}}}}}',
    'bench://{load_id}', i, '{load_id}', cast('{loaded_at}' as timestamptz)
from (
    select
        i,
        '{load_id}-' || i as msg,
        case when i % 10 = 0 then 'page' else 'track' end as typ,
        case when i % 10 = 0 then null else 'Clicked' end as evt,
        'anon-{day}-' || (i % {devices}) as anon,
        {timestamp} as ts
    from {series}
) as lines
"""
# The only dialect differences: how the i-th ISO timestamp and the row series are written.
DIALECT = {
    "duckdb": (
        "strftime(cast('{start}' as timestamp) + to_microseconds(cast(i * {step_us} as bigint)), "
        "'%Y-%m-%dT%H:%M:%S.%gZ')",
        "range({n}) as r(i)",
    ),
    "postgres": (
        "to_char(cast('{start}' as timestamp) + (cast(i as bigint) * {step_us}) * interval '1 microsecond', "
        '\'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\')',
        "generate_series(0, {n} - 1) as i",
    ),
}

# The hand-written baseline: the increment's valid lines, typed, minus messageIds already kept.
BASELINE = {
    "duckdb": """
insert into baseline_events
select * from (
    select
        json_extract_string(raw, '$.messageId') as event_id,
        json_extract_string(raw, '$.type') as event_type,
        json_extract_string(raw, '$.event') as event_name,
        json_extract_string(raw, '$.anonymousId') as anonymous_id,
        try_cast(json_extract_string(raw, '$.timestamp') as timestamptz) as occurred_at,
        json_extract_string(raw, '$.context.page.path') as page_path,
        json_extract(raw, '$.properties') as properties,
        loaded_at
    from raw.events_raw
    where loaded_at >= cast('{loaded_at}' as timestamptz) and parse_error is null
    qualify row_number() over (partition by json_extract_string(raw, '$.messageId') order by loaded_at) = 1
) as batch
where not exists (select 1 from baseline_events as b where b.event_id = batch.event_id)
""",
    "postgres": """
insert into baseline_events
select * from (
    select distinct on (raw::jsonb ->> 'messageId')
        raw::jsonb ->> 'messageId' as event_id,
        raw::jsonb ->> 'type' as event_type,
        raw::jsonb ->> 'event' as event_name,
        raw::jsonb ->> 'anonymousId' as anonymous_id,
        (raw::jsonb ->> 'timestamp')::timestamptz as occurred_at,
        raw::jsonb #>> '{{context,page,path}}' as page_path,
        raw::jsonb -> 'properties' as properties,
        loaded_at
    from raw.events_raw
    where loaded_at >= cast('{loaded_at}' as timestamptz) and parse_error is null
    order by raw::jsonb ->> 'messageId', loaded_at
) as batch
where not exists (select 1 from baseline_events as b where b.event_id = batch.event_id)
""",
}


class Bench:
    def __init__(self, kind: str, url: str, home: Path, dbt_vars: str | None = None):
        self.kind, self.url, self.home, self.dbt_vars = kind, url, home, dbt_vars

    def settings(self):
        os.environ["TRACKWAY_HOME"] = str(self.home)
        os.environ["TRACKWAY_WAREHOUSE_URL"] = self.url
        from trackway.config import load_settings

        return load_settings()

    def sql(self, statement: str) -> list[tuple]:
        """Run one statement on a connection of its own (closed before dbt needs the file)."""
        if self.kind == "duckdb":
            import duckdb

            con = duckdb.connect(str(self.settings().warehouse.duckdb_path))
            try:
                cur = con.execute(statement)
                return cur.fetchall() if cur.description else []
            finally:
                con.close()
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as pg:
            cur = pg.execute(statement)
            return cur.fetchall() if cur.description else []

    def generate(self, load_id: str, day: int, start: datetime, seconds: float, n: int, loaded_at: datetime) -> None:
        timestamp, series = DIALECT[self.kind]
        template = GENERATE.replace("{timestamp}", timestamp).replace("{series}", series)
        self.sql(
            template.format(
                load_id=load_id,
                day=day,
                devices=max(n // DEVICES_PER_DAY_DIVISOR, 1),
                start=start.strftime("%Y-%m-%d %H:%M:%S"),
                step_us=int(seconds * 1_000_000 / n),
                n=n,
                loaded_at=loaded_at.isoformat(),
            )
        )

    def dbt(self, command: str, *extra: str, test_scope: str = "all") -> float:
        from trackway.transform.dbt_runner import run_dbt

        dbt_vars = f"{{test_scope: {test_scope}{', ' + self.dbt_vars if self.dbt_vars else ''}}}"
        started = time.perf_counter()
        run_dbt(self.settings(), command, "--quiet", *extra, "--vars", dbt_vars)
        return time.perf_counter() - started

    def model_seconds(self) -> dict[str, float]:
        """Per-model execution time of the last dbt invocation (its run_results.json): the profile."""
        results = json.loads((self.home / "dbt" / "target" / "run_results.json").read_text())
        return {
            ("" if r["unique_id"].startswith("model.") else "test ") + r["unique_id"].split(".")[2]: r["execution_time"]
            for r in results["results"]
            if r["unique_id"].startswith(("model.", "test."))
        }


def _open_raw(bench: Bench) -> None:
    from trackway.warehouse import open_warehouse

    with open_warehouse(bench.settings().warehouse) as wh:
        wh.ensure_raw_tables()


def scenario(bench: Bench, days: int, per_day: int, increment: int, say) -> dict[str, Any]:
    _open_raw(bench)
    say(f"  {bench.kind}: generating {days} day(s) x {per_day:,} events of history ...")
    for day in range(days):
        start = DAY0 + timedelta(days=day)
        # Each day's devices recur on the next day's data only through the increment below.
        bench.generate(f"h{day}", day, start, 20 * 3600, per_day, start + timedelta(days=1))
    say(f"  {bench.kind}: full build of the history ...")
    full_seconds = bench.dbt("build")
    last_day = days - 1
    last_loaded = DAY0 + timedelta(days=days)
    bench.sql(
        "create table baseline_events as select event_id, event_type, event_name, anonymous_id, occurred_at, "
        "page_path, properties, loaded_at from analytics.events"
    )
    if bench.kind == "postgres":
        bench.sql("create unique index on baseline_events (event_id)")
    runs, builds, baselines, profiles = [], [], [], []
    for rep in range(3):
        loaded_at = last_loaded + timedelta(hours=6 * (rep + 1))
        # Late in the last history day, on its devices: their sessions are reopened and extended.
        bench.generate(
            f"inc{rep}", last_day, DAY0 + timedelta(days=last_day, hours=20, minutes=rep), 3600, increment, loaded_at
        )
        started = time.perf_counter()
        bench.sql(BASELINE[bench.kind].format(loaded_at=loaded_at.isoformat()))
        baselines.append(time.perf_counter() - started)
        # The hourly build: models, then the data tests of the rows they wrote (adr/0034).
        runs.append(bench.dbt("build", test_scope="new_rows"))
        profiles.append(bench.model_seconds())
        # A build right after: models find nothing new (cost of the no-op run) plus every data test over all history.
        builds.append(bench.dbt("build"))
        slowest = max(profiles[-1].items(), key=lambda item: item[1])
        say(
            f"    increment {rep + 1}: hourly dbt build {runs[-1]:.2f}s (slowest: {slowest[0]} {slowest[1]:.2f}s), "
            f"then no-op build testing all history {builds[-1]:.2f}s; baseline SQL {baselines[-1]:.2f}s"
        )
    events = bench.sql("select count(*) from analytics.events")[0][0]
    if bench.kind == "postgres":  # the analyze_after_write post-hook ran (fresh planner statistics)
        analyzed = bench.sql("select relname from pg_stat_user_tables where last_analyze is not null order by 1")
        say(f"    analyzed by the post-hook: {', '.join(name for (name,) in analyzed)}")
    return {
        "history_events": days * per_day,
        "events_after": events,
        "full_build": full_seconds,
        "run": statistics.median(runs),
        "build": statistics.median(builds),
        "baseline": statistics.median(baselines),
        "models": {model: statistics.median(p[model] for p in profiles) for model in profiles[0]},
    }


def full_refresh(home: Path, events: int, limits: list[str], say) -> list[tuple[str, float, float]]:
    """Full refresh of `events` raw rows on DuckDB, dbt in a child process, once per memory limit.

    Returns (limit, seconds, peak RSS MiB) per run; the same raw rows, rebuilt from scratch each time.
    """
    url = f"duckdb://{home / 'full.duckdb'}"
    bench = Bench("duckdb", url, home / "full")
    _open_raw(bench)
    per_load = 1_000_000
    say(f"  generating {events:,} raw rows ...")
    for n, first in enumerate(range(0, events, per_load)):
        size = min(per_load, events - first)
        start = DAY0 + timedelta(hours=n * 3)
        bench.generate(f"f{n}", n, start, 3 * 3600, size, start + timedelta(hours=4))
    # The child reports VmHWM, its own peak RSS: ru_maxrss of children would include this
    # process's peak (Linux carries it over fork and exec), and this process generated the rows.
    code = (
        "import sys; from trackway.config import load_settings; from trackway.transform.dbt_runner import run_dbt; "
        "run_dbt(load_settings(), 'run', '--quiet', '--full-refresh'); "
        "print('vmhwm_kib', next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))"
    )
    results = []
    for limit in limits:
        env = dict(os.environ, TRACKWAY_HOME=str(home / "full"), TRACKWAY_WAREHOUSE_URL=url)
        env["TRACKWAY_DUCKDB_MEMORY_LIMIT"] = limit
        say(f"  dbt run --full-refresh, memory limit {limit} ...")
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if proc.returncode:  # e.g. an operator that cannot spill: say which and go on
            errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "Error" in line]
            say(f"    FAILED after {seconds:.1f}s: {' | '.join(errors[-3:])[:600]}")
            results.append((limit + " (failed)", seconds, float("nan")))
            continue
        peak_mib = int(proc.stdout.rsplit("vmhwm_kib", 1)[1].split()[0]) / 1024
        say(f"    {seconds:.1f}s, peak RSS {peak_mib:,.0f} MiB")
        results.append((limit, seconds, peak_mib))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-day", type=int, default=100_000, help="history events per day on DuckDB")
    parser.add_argument("--pg-per-day", type=int, default=20_000, help="history events per day on PostgreSQL")
    parser.add_argument("--increment", type=int, default=50_000)
    parser.add_argument("--long-days", type=int, default=30)
    parser.add_argument("--full-refresh-events", type=int, default=10_000_000)
    parser.add_argument(
        "--full-refresh-memory-limit",
        default="4GiB",
        help="TRACKWAY_DUCKDB_MEMORY_LIMIT of the limited full refresh; the baseline beside it runs with DuckDB's "
        "own default (80%% of RAM), as before the setting existed",
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument(
        "--pg-without-indexes",
        action="store_true",
        help="repeat the PostgreSQL runs with var postgres_indexes=false (what the indexes buy); slow: "
        "without the event_id index one no-op build took 235 s on 1 day of history (README)",
    )
    parser.add_argument("--skip-duckdb", action="store_true", help="only the PostgreSQL runs")
    args = parser.parse_args()
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    os.environ["DBT_EXCLUDE_RESOURCE_TYPES"] = "unit_test"

    def say(msg: str) -> None:
        print(msg, flush=True)

    results: dict[tuple[str, int], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="trackway-bench-transform-") as tmp:
        root = Path(tmp)
        for days in () if args.skip_duckdb else (1, args.long_days):
            home = root / f"duckdb-{days}"
            results[("duckdb", days)] = scenario(
                Bench("duckdb", f"duckdb://{home / 'w.duckdb'}", home), days, args.per_day, args.increment, say
            )
        if not args.skip_postgres:
            from postgres_server import create_database, postgres_server

            variants = [("postgres", None)]
            if args.pg_without_indexes:
                variants.append(("postgres, no indexes", "postgres_indexes: false"))
            with postgres_server() as server:
                for label, dbt_vars in variants:
                    for days in (1, args.long_days):
                        name = f"bench_{days}" + ("_noidx" if dbt_vars else "")
                        bench = Bench("postgres", create_database(server, name), root / name, dbt_vars)
                        say(f"  [{label}]")
                        results[(label, days)] = scenario(bench, days, args.pg_per_day, args.increment, say)
        from trackway.config.warehouse import machine_memory_bytes

        unlimited = f"{machine_memory_bytes() * 8 // 10 // 2**20}MiB"  # DuckDB's default: 80% of RAM
        limits = [args.full_refresh_memory_limit, unlimited]
        refreshes = full_refresh(root, args.full_refresh_events, limits, say) if args.full_refresh_events else []

    print(f"\nIncremental run of {args.increment:,} new events, median of 3, {os.cpu_count()} CPUs\n")
    print(
        f"{'warehouse':22} {'history':>18} {'hourly build':>13} {'all-history tests':>18} {'SQL baseline':>13} "
        f"{'hourly/baseline':>16}"
    )
    for (label, days), r in results.items():
        history = f"{days}d = {int(r['history_events']):,}"
        print(
            f"{label:22} {history:>18} {r['run']:>12.2f}s {r['build']:>17.2f}s {r['baseline']:>12.2f}s "
            f"{r['run'] / r['baseline']:>15.1f}x"
        )
    labels = list(dict.fromkeys(label for label, _ in results))
    for label in labels:
        short, long_ = results[(label, 1)], results[(label, args.long_days)]
        print(
            f"{label}: time({args.long_days} days) / time(1 day) = {long_['run'] / short['run']:.2f} (hourly dbt build, "
            f"target <= 1.3); {long_['build'] / short['build']:.2f} (no-op build + data tests over all history)"
        )
    # The profile: where the time of an incremental `dbt run` goes, model by model (run_results.json).
    for label in labels:
        short, long_ = results[(label, 1)]["models"], results[(label, args.long_days)]["models"]
        print(f"\nPer-model and per-test seconds of the hourly dbt build, {label} (median of 3, > 0.05 s)")
        print(f"{'model or test':52} {'1 day':>8} {f'{args.long_days} days':>8} {'ratio':>6}")
        for model in sorted(short, key=lambda m: -long_.get(m, 0.0)):
            if max(short[model], long_.get(model, 0.0)) < 0.05:
                continue
            ratio = long_.get(model, 0.0) / short[model] if short[model] else float("nan")
            print(f"{model[:52]:52} {short[model]:>7.2f}s {long_.get(model, 0.0):>7.2f}s {ratio:>6.2f}")
        print(f"{'(sum of models and tests)':52} {sum(short.values()):>7.2f}s {sum(long_.values()):>7.2f}s")
    if refreshes:
        print(
            f"\nFull refresh (dbt run --full-refresh) of {args.full_refresh_events:,} raw events on DuckDB, one run each"
        )
        print(f"{'memory limit':34} {'seconds':>8} {'peak RSS MiB':>13} {'time ratio':>11}")
        base_seconds = refreshes[-1][1]
        for n, (limit, seconds, peak) in enumerate(refreshes):
            label = f"{limit} (DuckDB default, 80% of RAM)" if n == len(refreshes) - 1 else limit
            print(f"{label:34} {seconds:>8.1f} {peak:>13,.0f} {seconds / base_seconds:>10.2f}x")
        print("target: peak RSS <= 4.5 GiB with the limit at 4 GiB, time <= 1.3x the unlimited run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
