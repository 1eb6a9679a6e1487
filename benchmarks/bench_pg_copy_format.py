"""Where the PostgreSQL load's time goes: the server's side of COPY, text against binary (issue 20 §3, adr/0045).

ADR 0035 left the PostgreSQL load at 0.41-0.54x a COPY of the bare lines, with the
server's backend as the bound; binary COPY was the option left unmeasured. This
takes the rows of a real load (``copyrows.copy_rows``, the loader's reader) and
COPYs them from memory into a fresh table shaped like ``raw.events_raw`` (its
``source_object`` index included): as COPY text (escaped as ADR 0035's loader wrote
it), as binary COPY through psycopg's compiled ``write_row`` (the loader's way since
adr/0045), and the bare lines into one text column (the ceiling). It prints wall
seconds, the backend's CPU seconds (``/proc/<pid>/stat``) and the client's, median of
``--runs``, the rows alternating so a change in the machine's load hits each alike.

    .venv/bin/python benchmarks/bench_pg_copy_format.py --events 200000 --objects 4 --runs 3
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # postgres_server: a private PostgreSQL for the run
sys.path.insert(0, str(REPO / "benchmarks"))

_TICKS = os.sysconf("SC_CLK_TCK")
_SPECIALS = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def backend_cpu(pid: int) -> float:
    """User + system CPU seconds of one server process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def value_rows(folder: Path) -> tuple[list[tuple], float]:
    """Every object's rows as the loader reads them, and the client CPU seconds that took (gzip included)."""
    from trackway.rawdata.copyrows import copy_rows
    from trackway.rawdata.records import ObjectStats

    rows: list[tuple] = []
    started = time.process_time()
    for path in sorted(folder.glob("*.ndjson.gz")):
        with open(path, "rb") as handle:
            where = {"source_object": path.name, "load_id": "bench", "loaded_at": datetime(2026, 11, 23, tzinfo=UTC)}
            rows += copy_rows(handle, ObjectStats(), **where)
    return rows, time.process_time() - started


def text_chunks(rows: list[tuple]) -> list[bytes]:
    """The rows as COPY text, about a MiB a chunk: ``\\N`` for NULL; backslash, tab, newline and CR escaped."""
    chunks: list[bytes] = []
    out: list[str] = []
    size = 0
    for row in rows:
        values = [v.decode() if type(v) is bytes else v for v in row]  # copy_rows gives the raw line as bytes
        line = "\t".join(["\\N" if v is None else str(v).translate(_SPECIALS) for v in values]) + "\n"
        out.append(line)
        size += len(line)
        if size >= 1 << 20:
            chunks.append("".join(out).encode())
            out, size = [], 0
    return [*chunks, "".join(out).encode()]


def copy_once(url: str, ddl: list[str], copy_sql: str, data: list) -> tuple[float, float, int, float]:
    """Wall seconds, backend CPU seconds, rows and client CPU seconds of one COPY of ``data`` into a fresh table.

    ``data`` is bytes to write as they are, or value rows for psycopg's binary ``write_row``.
    """
    import psycopg

    from trackway.rawdata.copyrows import copy_types
    from trackway.warehouse.postgres_warehouse import _send_bytes_compiled

    with psycopg.connect(url, autocommit=True) as con:
        con.execute("DROP SCHEMA IF EXISTS bench CASCADE")
        con.execute("CREATE SCHEMA bench")
        for statement in ddl:
            con.execute(statement)
        (pid,) = con.execute("SELECT pg_backend_pid()").fetchone()
        cpu = backend_cpu(pid)
        client, started = time.process_time(), time.perf_counter()
        with con.transaction(), con.cursor() as cur, cur.copy(copy_sql) as copy:
            if data and isinstance(data[0], tuple):
                _send_bytes_compiled(cur)  # as the loader does
                copy.set_types(copy_types(raw_line_bytes=True))
                for row in data:
                    copy.write_row(row)
            else:
                for chunk in data:
                    copy.write(chunk)
        wall, client = time.perf_counter() - started, time.process_time() - client
        cpu = backend_cpu(pid) - cpu
        (rows,) = con.execute("SELECT count(*) FROM bench.events_raw").fetchone()
    return wall, cpu, rows, client


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--objects", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from bench_loader import corpus
    from postgres_server import postgres_server
    from trackway.rawdata.schema import EVENTS_RAW_TABLE
    from trackway.warehouse.ddl import raw_ddl

    folder, size = corpus("ndjson", args.events, args.objects)
    print(f"{args.events:,} events, {size / 1e6:.0f} MB uncompressed, {os.cpu_count()} CPUs, median of {args.runs}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    rows, reading = value_rows(folder)
    bare = [gzip.decompress(p.read_bytes()) for p in sorted(folder.glob("*.ndjson.gz"))]
    cols = ", ".join(f'"{c}"' for c in EVENTS_RAW_TABLE.columns)
    table_ddl = [s.replace("raw.", "bench.") for s in raw_ddl("TEXT", "TIMESTAMPTZ") if "events_raw" in s]
    table_ddl = [s for s in table_ddl if not s.startswith("ALTER")]
    rows_of = {
        "COPY bare lines, one text column (ceiling)": (
            ["CREATE TABLE bench.events_raw (line text)"],
            "COPY bench.events_raw FROM STDIN (FORMAT csv, DELIMITER e'\\x02', QUOTE e'\\x01')",
            bare,
        ),
        "COPY text, the loader's rows (20 columns)": (
            table_ddl,
            f"COPY bench.events_raw ({cols}) FROM STDIN",
            text_chunks(rows),
        ),
        "COPY binary, write_row, the same rows": (
            table_ddl,
            f"COPY bench.events_raw ({cols}) FROM STDIN (FORMAT binary)",
            rows,
        ),
    }
    results: dict[str, list[tuple[float, float, int, float]]] = {name: [] for name in rows_of}
    with postgres_server() as url:
        for _ in range(args.runs):  # alternate the rows, so a change in the machine's load hits each alike
            for name, (ddl, sql, data) in rows_of.items():
                results[name].append(copy_once(url, ddl, sql, data))
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"\n{'row':45} {'rows':>9} {'wall s':>7} {'server CPU s':>13} {'client CPU s':>13}")
    for name, runs in results.items():
        wall, cpu, client = (statistics.median(r[i] for r in runs) for i in (0, 1, 3))
        print(f"{name:45} {runs[0][2]:>9,} {wall:>7.2f} {cpu:>13.2f} {client:>13.2f}")
    print(f"\nreading the rows (copy_rows, gzip included; before any COPY): {reading:.2f} client CPU s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
