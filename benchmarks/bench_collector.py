"""How many events per second does the collector acknowledge durably, next to its own ceilings?

Load comes from wrk (Debian's `wrk` package; native, so the client does not bottleneck on Python)
with a Lua script that gives every event a unique messageId: keep-alive connections, POST
/v1/batch of 20 events of about 1 KB each. Three servers, same uvicorn (httptools, uvloop)
and the same number of worker processes, each run 3 times; the median run is printed:

  * bare endpoint      reads the body, parses it with orjson, answers 200, stores nothing
  * durable append     group-committed appends of the raw body to a per-worker spool (the
                       collector's Spool), no parsing: the ceiling of fsync'd acks here
  * trackway collector `trackway collect --workers N`: parse, validate, enrich, fsync, then 200

plus the RSS of the collector's processes (master and workers) at that load. Then the
tracking plan's cost: the collector with the demo plan (TRACKWAY_PLAN_DIR) in `allow` mode
(no validation) and in `flag` mode (every event validated against the plan), runs alternated
so each flag run has an allow run beside it (target: flag >= 0.8x allow).
Usage: make bench-collector, or .venv/bin/python benchmarks/bench_collector.py [--workers 2] [--connections 64]
[--seconds 10] [--runs 3] [--plan-only]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

WRITE_KEY = "bench-key"
BATCH = 20

# Each wrk thread gets an id (tid), so messageIds stay unique across threads.
LUA_SETUP = r"""
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
"""
LUA = (
    LUA_SETUP
    + r"""
local pad = string.rep("x", 640)
function request()
  counter = counter + 1
  local parts = {}
  for i = 1, %(batch)d do
    parts[i] = string.format(
      '{"type":"track","event":"Listing Viewed","userId":"user-%%d","messageId":"bench-%%s-%%d-%%d-%%d",' ..
      '"timestamp":"2026-11-22T10:15:00.000Z","properties":{"listing_id":"lst_%%05d","city":"Lisbon",' ..
      '"price_per_night":120,"currency":"USD","note":"%%s"},' ..
      '"context":{"library":{"name":"bench","version":"1"},"userAgent":"Mozilla/5.0 (bench)","sessionId":1795910400000}}',
      i, "%(run)s", tid, counter, i, i, pad)
  end
  local body = '{"batch":[' .. table.concat(parts, ",") .. '],"sentAt":"2026-11-22T10:15:01.000Z"}'
  return wrk.format("POST", "/v1/batch",
    {["Content-Type"] = "application/json", ["Authorization"] = "Basic %(auth)s"}, body)
end
"""
)

BARE_APP = """
import orjson

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    events = orjson.loads(b"".join(chunks))["batch"]
    body = orjson.dumps({"success": True, "accepted": len(events), "quarantined": 0})
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
"""

APPEND_APP = """
import os
from datetime import UTC, datetime
from pathlib import Path

from trackway.collector.spool import Spool, hour_key

spool = None


async def app(scope, receive, send):
    global spool
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                spool = Spool(Path(os.environ["BENCH_SPOOL"]) / str(os.getpid()), max_bytes=1 << 30,
                              max_age_seconds=3600, on_sealed=lambda s: None)
                spool.lock()
                spool.start()
            else:
                spool.close()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    dt, hour = hour_key(datetime.now(UTC))
    await spool.append_async([("events", dt, hour, b"".join(chunks) + b"\\n")])
    body = b'{"success":true}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(port: int, proc: subprocess.Popen, path: str = "/health", log: Path | None = None) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # answering at all is enough
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"server did not start; see {log}") from None
            time.sleep(0.1)


def _parse_wrk(out: str, seconds: float) -> dict:
    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            return float("nan")
        value, unit = float(match[1]), match[2]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    total = int(re.search(r"(\d+) requests in", out)[1])
    non2xx = int(m[1]) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    sock = (
        sum(int(x) for x in m.groups())
        if (m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out))
        else 0
    )
    ok = total - non2xx
    return {
        "requests": total,
        "events_per_s": ok * BATCH / seconds,
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "errors": non2xx + sock,
    }


def _rss_mb(pid: int) -> float:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs if p.is_running()) / 1024 / 1024
    except psutil.Error:
        return 0.0


def _wrk(port: int, connections: int, seconds: float, tmp: Path, run: str, lua: str = LUA) -> dict:
    script = tmp / f"bench-{run}.lua"
    auth = __import__("base64").b64encode(f"{WRITE_KEY}:".encode()).decode()
    script.write_text(lua % {"batch": BATCH, "run": run, "auth": auth})
    threads = min(2, connections)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds:.0f}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/v1/batch",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return _parse_wrk(out, seconds)


def _serve_uvicorn(module: str, workers: int, tmp: Path, env: dict) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    log = open(tmp / f"{module}.log", "ab")  # noqa: SIM115 (the child's)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            f"{module}:app",
            "--app-dir",
            str(tmp),
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "--no-access-log",
            "--log-level",
            "warning",
            "--timeout-keep-alive",
            "5",
        ],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    _wait_http(port, proc, "/", tmp / f"{module}.log")
    return proc, port


DEMO_PLAN = Path(__file__).resolve().parent.parent / "include" / "trackway" / "demo" / "plan"


def _serve_collector(
    workers: int, tmp: Path, env: dict, plan_mode: str | None = None, plan_dir: Path = DEMO_PLAN
) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    home = tmp / "collector"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    log = open(tmp / "collector.log", "ab")  # noqa: SIM115 (the child's)
    env = {**env, "TRACKWAY_HOME": str(home), "TRACKWAY_WRITE_KEYS": f"bench:{WRITE_KEY}"}
    if plan_mode:
        env.update({"TRACKWAY_PLAN_DIR": str(plan_dir), "TRACKWAY_PLAN_MODES": plan_mode})
    proc = subprocess.Popen(
        [sys.executable, "-m", "trackway.cli", "collect", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    _wait_http(port, proc, "/health", tmp / "collector.log")
    return proc, port


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


def bench(kind: str, args, tmp: Path, env: dict, run: int, plan_dir: Path = DEMO_PLAN, lua: str = LUA) -> dict:
    """One run; ``plan_dir`` and ``lua`` let benchmarks/bench_plan_import.py send a large plan's events."""
    if kind.startswith("collector"):
        plan_mode = kind.removeprefix("collector").lstrip("_") or None  # collector_allow / collector_flag
        proc, port = _serve_collector(args.workers, tmp, env, plan_mode, plan_dir)
    else:
        proc, port = _serve_uvicorn(kind, args.workers, tmp, env)
    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            peak[0] = max(peak[0], _rss_mb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        time.sleep(1)
        sampler.start()
        result = _wrk(port, args.connections, args.seconds, tmp, f"{kind}{run}", lua)
        if kind.startswith("collector"):
            import json

            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as resp:
                health = json.load(resp)
            result["accepted"] = health["events_accepted"]
            result["checked"] = health.get("plan", {}).get("events_checked", 0)
            result["flagged"] = health.get("plan", {}).get("events_flagged", 0)
    finally:
        stop.set()
        sampler.join()
        _stop(proc)
    result["rss_mb"] = peak[0]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: CPUs)")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections (default 64)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per run (default 10)")
    parser.add_argument("--runs", type=int, default=3, help="runs per row; the median is printed (default 3)")
    parser.add_argument("--plan-only", action="store_true", help="only the tracking plan rows (allow vs flag)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: install Debian's wrk package (apt-get install wrk)")
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKWAY_")}
    env["PYTHONPATH"] = os.pathsep.join([str(root / "include"), env.get("PYTHONPATH", "")])
    rows = []
    with tempfile.TemporaryDirectory(prefix="trackway-bench-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "bare.py").write_text(textwrap.dedent(BARE_APP))
        (tmp / "append.py").write_text(textwrap.dedent(APPEND_APP))
        env["BENCH_SPOOL"] = str(tmp / "append-spool")
        print(
            f"wrk: {args.connections} keep-alive connections, /v1/batch of {BATCH} events of ~1 KB, "
            f"{args.seconds:.0f}s per run, median of {args.runs}; {args.workers} workers; {os.cpu_count()} CPUs "
            f"shared with wrk (and with whatever else runs on this machine)",
            flush=True,
        )
        names = {
            "bare": "bare endpoint (orjson, no storage)",
            "append": "durable append ceiling (no parse)",
            "collector": "trackway collector, fsync'd acks",
        }
        for kind in () if args.plan_only else ("bare", "append", "collector"):
            runs = []
            for run in range(args.runs):
                r = bench(kind, args, tmp, env, run)
                print(
                    f"  {names[kind]} run {run + 1}: {r['events_per_s']:,.0f} events/s, p99 {r['p99_ms']:.1f} ms",
                    flush=True,
                )
                runs.append(r)
            median = sorted(runs, key=lambda r: r["events_per_s"])[len(runs) // 2]
            rows.append((names[kind], median))
        plan_rows = bench_plan(args, tmp, env)
    if plan_rows:
        print_plan(plan_rows)
    if args.plan_only:
        return 0
    print(f"\n{'row':36} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'RSS MB':>7}")
    for name, r in rows:
        print(
            f"{name:36} {r['events_per_s']:>10,.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['errors']:>7} {r['rss_mb']:>7.0f}"
        )
    bare, ours = rows[0][1], rows[2][1]
    print(
        f"\ncollector: {ours['events_per_s']:,.0f} events/s = {ours['events_per_s'] / bare['events_per_s']:.2f}x the bare "
        f"endpoint (target >= 50,000 and >= 0.5x, p99 <= 50 ms), RSS {ours['rss_mb']:.0f} MB for master + workers "
        f"(target <= 300 MB); /health counted {ours.get('accepted', 0):,} events accepted in the median run."
    )
    return 0


def bench_plan(args, tmp: Path, env: dict, plan_dir: Path = DEMO_PLAN, lua: str = LUA) -> dict[str, list[dict]]:
    """The collector with a plan (the demo's by default), allow then flag, alternated run by run."""
    runs: dict[str, list[dict]] = {"collector_allow": [], "collector_flag": []}
    for run in range(args.runs):
        for kind, results in runs.items():
            r = bench(kind, args, tmp, env, run, plan_dir, lua)
            results.append(r)
            print(
                f"  collector, plan mode {kind.split('_')[1]:5} run {run + 1}: {r['events_per_s']:,.0f} events/s, "
                f"p99 {r['p99_ms']:.1f} ms, {r.get('checked', 0):,} checked",
                flush=True,
            )
    return runs


def print_plan(runs: dict[str, list[dict]], title: str = "tracking plan (demo plan, median)") -> float:
    """Print the allow/flag rows; return the median of the paired flag/allow ratios."""
    print(f"\n{title:36} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'checked':>9}")
    medians = {}
    for kind, label in (
        ("collector_allow", "collector, plan mode allow"),
        ("collector_flag", "collector, plan mode flag"),
    ):
        r = sorted(runs[kind], key=lambda x: x["events_per_s"])[len(runs[kind]) // 2]
        medians[kind] = r["events_per_s"]
        print(
            f"{label:36} {r['events_per_s']:>10,.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['errors']:>7} "
            f"{r.get('checked', 0):>9,}"
        )
    ratio = medians["collector_flag"] / medians["collector_allow"]
    # Each flag run directly follows an allow run: the paired ratio cancels most of the drift a
    # shared machine adds between runs, so it is the figure judged against the target.
    pairs = sorted(
        f["events_per_s"] / a["events_per_s"]
        for a, f in zip(runs["collector_allow"], runs["collector_flag"], strict=True)
    )
    paired = pairs[len(pairs) // 2]
    print(
        f"\nflag/allow: {ratio:.2f}x (ratio of medians), {paired:.2f}x (median of paired runs); "
        f"target >= 0.80x: {'met' if paired >= 0.8 else 'MISSED'}"
    )
    return paired


if __name__ == "__main__":
    sys.exit(main())
