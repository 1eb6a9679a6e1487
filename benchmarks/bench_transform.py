"""How long does events_transform (dbt build) take per raw row?

Same run, same raw.events_raw (loaded by the real loader), DuckDB:
  * trackway dbt build  — staging → intermediate → marts, plus every dbt test
  * baseline: one CTAS  — a single hand-written DuckDB statement that parses the
                          JSON, types the common columns and keeps one row per
                          messageId (no validation, no rejects, no tests)

Usage: .venv/bin/python benchmarks/bench_transform.py [--events 200000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_loader import write_objects

BASELINE_SQL = """
CREATE OR REPLACE TABLE baseline_events AS
SELECT * FROM (
    SELECT
        json_extract_string(raw, '$.messageId') AS event_id,
        json_extract_string(raw, '$.type') AS event_type,
        json_extract_string(raw, '$.event') AS event_name,
        json_extract_string(raw, '$.userId') AS user_id,
        json_extract_string(raw, '$.anonymousId') AS anonymous_id,
        try_cast(json_extract_string(raw, '$.timestamp') AS TIMESTAMPTZ) AS occurred_at,
        try_cast(json_extract_string(raw, '$.receivedAt') AS TIMESTAMPTZ) AS received_at,
        json_extract_string(raw, '$.context.page.path') AS page_path,
        json_extract(raw, '$.properties') AS properties,
        row_number() OVER (PARTITION BY json_extract_string(raw, '$.messageId') ORDER BY loaded_at) AS copy
    FROM raw.events_raw
    WHERE parse_error IS NULL
) WHERE copy = 1
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trackway-bench-") as tmp:
        home = Path(tmp)
        os.environ["TRACKWAY_HOME"] = str(home)
        os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        from trackway.config import load_settings
        from trackway.load.loader import load_interval
        from trackway.transform.dbt_runner import run_dbt

        print(f"loading {args.events:,} events into raw.events_raw ...", flush=True)
        write_objects(home, args.events, 8)
        settings = load_settings()
        hour = datetime(2026, 11, 23, 10, tzinfo=UTC)
        load_interval(settings, hour, hour + timedelta(hours=1), progress=lambda m: None)

        started = time.perf_counter()
        report = run_dbt(settings, "build")
        dbt_seconds = time.perf_counter() - started

        import duckdb

        con = duckdb.connect(str(settings.warehouse.duckdb_path))
        started = time.perf_counter()
        con.execute(BASELINE_SQL)
        baseline_seconds = time.perf_counter() - started
        baseline_rows = con.execute("SELECT count(*) FROM baseline_events").fetchone()[0]
        events = con.execute("SELECT count(*) FROM analytics.events").fetchone()[0]
        con.close()

    print(f"\n{args.events:,} raw rows, DuckDB, {os.cpu_count()} CPUs\n")
    print(f"{'method':36} {'rows out':>10} {'seconds':>8} {'raw rows/s':>11}")
    print(
        f"{'trackway dbt build (+' + str(report.tests_passed) + ' tests)':36} {events:>10,} {dbt_seconds:>8.2f} {args.events / dbt_seconds:>11,.0f}"
    )
    print(
        f"{'baseline: one CTAS, no tests':36} {baseline_rows:>10,} {baseline_seconds:>8.2f} {args.events / baseline_seconds:>11,.0f}"
    )
    print(
        f"\ndbt build takes {dbt_seconds / baseline_seconds:.1f}x the single statement; the difference buys validation, "
        "rejects with reasons, skew correction, lineage and the data tests."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
