"""How does a tracking plan of real size cost, from import to the hourly transform?

The plan is tests/large_plan.py's: a Segment Protocols export of 600 events with hostile
names, five of them with 200 properties. Everything is measured in the same run, median
of 3:

* plan tooling: import -> plan folder, load, lint, the typed views' SQL, validator
  compilation, validation per event (baseline: json.load of the export);
* the collector's throughput in ``flag`` mode with that plan against ``allow`` mode, wrk
  sending the plan's own events (benchmarks/bench_collector.py's harness; target >= 0.8x);
* the hourly transform (``dbt build`` of one hour's batch, plus the typed-view check the
  DAG ends with) on DuckDB with the plan, against the same transform without one
  (target <= 1.5x). The events are made by the collector's own code (Segment rules and
  the plan hook), so with the plan every line carries its verdict;
* the one-off ``trackway plan deploy`` of the 600 typed views, and a deploy that finds
  nothing to do.

Usage: .venv/bin/python benchmarks/bench_plan_import.py [--hour-events 20000] [--runs 3]
[--skip-collector] [--skip-transform]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from large_plan import EVENTS, sample_messages, segment_export
from trackway.plan.importers import import_plan
from trackway.plan.lint import lint_plan
from trackway.plan.model import Plan, load_plan
from trackway.plan.validate import CompiledPlan
from trackway.plan.views import typed_views

Row = tuple[str, float, str]


def _median(fn, runs: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def bench_tooling(root: Path, runs: int) -> tuple[list[Row], Plan]:
    export = root / "export.json"
    export.write_text(json.dumps(segment_export(EVENTS), ensure_ascii=False), encoding="utf-8")

    def do_import():
        target = root / "plan"
        shutil.rmtree(target, ignore_errors=True)
        return import_plan("segment", export, target)

    rows: list[Row] = []
    secs, _ = _median(lambda: json.loads(export.read_text()), runs)
    rows.append(("baseline: json.load of the export", secs, f"{export.stat().st_size / 1e6:.1f} MB"))
    secs, imported = _median(do_import, runs)
    rows.append(("import -> plan folder", secs, f"{len(imported.events)} events"))  # type: ignore[attr-defined]
    secs, plan = _median(lambda: load_plan(root / "plan"), runs)
    rows.append(("load the plan folder", secs, f"{_size(root / 'plan') / 1e6:.1f} MB"))
    assert isinstance(plan, Plan)
    secs, problems = _median(lambda: lint_plan(plan), runs)
    rows.append(("lint", secs, f"{len(problems):,} problems reported"))  # type: ignore[arg-type]
    secs, views = _median(lambda: typed_views(plan, "postgres"), runs)
    sql = sum(len(v.select.encode()) for v in views)  # type: ignore[attr-defined]
    rows.append(("typed views' SQL (plan generate)", secs, f"{len(views)} views, {sql / 1e6:.1f} MB"))  # type: ignore[arg-type]
    secs, compiled = _median(lambda: CompiledPlan(plan), runs)
    rows.append(("compile validators (jsonschema-rs)", secs, ""))
    messages = sample_messages(plan)
    secs, _ = _median(lambda: [compiled.judge(m) for m in messages], runs)  # type: ignore[attr-defined]
    rows.append(("validate the sample calls", secs, f"{secs / len(messages) * 1e6:.1f} us/call, {len(messages)} calls"))
    return rows, plan


# ---- the collector, allow vs flag, with the plan's own events

_LUA = r"""
local templates = {
%(templates)s
}
function request()
  counter = counter + 1
  local n = 0
  local body = templates[(counter %% #templates) + 1]:gsub("@MID@", function()
    n = n + 1
    return "%(run)s-" .. tid .. "-" .. counter .. "-" .. n
  end)
  return wrk.format("POST", "/v1/batch",
    {["Content-Type"] = "application/json", ["Authorization"] = "Basic %(auth)s"}, body)
end
"""


def plan_lua(plan: Plan, batch: int, valid_only: bool) -> str:
    """bench_collector's wrk script, sending the plan's sample calls in batches of ``batch``: the valid ones
    (one of each planned event: traffic as it mostly is), or all (a third break the plan)."""
    compiled = CompiledPlan(plan)
    sample = [m for m in sample_messages(plan) if not (valid_only and compiled.check(m))]
    messages = [{**m, "messageId": "@MID@"} for m in sample]
    bodies = [
        json.dumps({"batch": messages[i : i + batch]}, ensure_ascii=False) for i in range(0, len(messages), batch)
    ]
    bodies = [b for b in bodies if b.count("@MID@") == batch]  # every request carries the same number of events
    assert all("]==]" not in b for b in bodies)
    # %% survives the script's own %-formatting in bench_collector._wrk.
    templates = ",\n".join("[==[" + b.replace("%", "%%") + "]==]" for b in bodies)
    import bench_collector

    return bench_collector.LUA_SETUP + _LUA.replace("%(templates)s", templates)


def bench_collector_rows(args, plan_dir: Path, plan: Plan) -> None:
    import bench_collector

    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKWAY_")}
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(root / "include"), env.get("PYTHONPATH", "")])
    for valid_only, traffic in ((True, "valid calls"), (False, "1/3 violating")):
        lua = plan_lua(plan, bench_collector.BATCH, valid_only)
        print(f"\ncollector with the {EVENTS}-event plan, {traffic}:", flush=True)
        with tempfile.TemporaryDirectory(prefix="trackway-bench-collector-") as tmp:
            runs = bench_collector.bench_plan(args, Path(tmp), env, plan_dir, lua)
        bench_collector.print_plan(runs, f"{EVENTS}-event plan, {traffic} (median)")


# ---- the hourly transform, with and without the plan


def _hour_messages(plan: Plan, hour: datetime, count: int, tag: str) -> list[dict]:
    sample = sample_messages(plan)
    out = []
    for i in range(count):
        m = dict(sample[i % len(sample)])
        m["messageId"] = f"{tag}-{hour:%d%H}-{i}"
        m["anonymousId"] = f"anon-{hour:%d%H}-{i % 3000}"
        m["timestamp"] = (hour + timedelta(seconds=i % 3600)).isoformat().replace("+00:00", "Z")
        m.pop("_trackwayPlan", None)
        out.append(m)
    return out


def _write_hour(home: Path, plan_dir: Path | None, messages: list[dict], hour: datetime) -> None:
    """The hour's objects as the collector writes them: Segment rules, then the plan hook (flag mode)."""
    from trackway.plan.hook import apply_to_batch
    from trackway.plan.validate import PlanEnforcer
    from trackway.rawdata.partitions import partition_path
    from trackway.segment_rules import RequestInfo, check_events, format_received_at

    enforcer = PlanEnforcer(plan_dir, {}, "flag") if plan_dir else None
    info = RequestInfo("bench", format_received_at(hour + timedelta(minutes=59)), "127.0.0.1")
    lines = []
    for start in range(0, len(messages), 100):
        batch = messages[start : start + 100]
        checked = apply_to_batch(enforcer, batch, check_events(batch, info), info)
        lines += checked.lines
    folder = home / "raw" / "events" / partition_path(hour)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"bench-{hour:%H}.ndjson.gz").write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))


def _plan_dir(env: dict[str, str]) -> Path | None:
    return Path(env["TRACKWAY_PLAN_DIR"]) if "TRACKWAY_PLAN_DIR" in env else None


def _use(env: dict[str, str]) -> None:
    for key in [k for k in os.environ if k.startswith("TRACKWAY_")]:
        del os.environ[key]
    os.environ.update(env)


def bench_transform(args, root: Path, plan_dir: Path, plan: Plan) -> list[Row]:
    from trackway.config import load_settings
    from trackway.load.loader import load_interval
    from trackway.plan.deploy import deploy, require_deployed
    from trackway.rawdata.partitions import hour_floor
    from trackway.transform.dbt_runner import run_dbt

    saved = dict(os.environ)
    base = hour_floor(datetime.now(UTC)) - timedelta(hours=args.runs + 2)
    setups = {
        "without a plan": {"TRACKWAY_HOME": str(root / "no-plan")},
        f"with the {EVENTS}-event plan": {"TRACKWAY_HOME": str(root / "plan-home"), "TRACKWAY_PLAN_DIR": str(plan_dir)},
    }
    timings: dict[str, list[tuple[float, float]]] = {label: [] for label in setups}
    rows: list[Row] = []
    try:
        for env in setups.values():  # an hour of history and a first (full) build
            _use(env)
            home = Path(env["TRACKWAY_HOME"])
            _write_hour(home, _plan_dir(env), _hour_messages(plan, base, args.hour_events, "h"), base)
            load_interval(load_settings(), base, base + timedelta(hours=1), progress=lambda _m: None)
            run_dbt(load_settings(), "build")
            if "TRACKWAY_PLAN_DIR" in env:
                deploy(load_settings(), plan)
        for run in range(1, args.runs + 1):  # alternated, so both see the same machine
            hour = base + timedelta(hours=run)
            for label, env in setups.items():
                _use(env)
                home = Path(env["TRACKWAY_HOME"])
                _write_hour(home, _plan_dir(env), _hour_messages(plan, hour, args.hour_events, "h"), hour)
                load_interval(load_settings(), hour, hour + timedelta(hours=1), progress=lambda _m: None)
                started = time.perf_counter()
                report = run_dbt(load_settings(), "build")
                built = time.perf_counter() - started
                started = time.perf_counter()
                require_deployed(load_settings())
                checked = time.perf_counter() - started
                timings[label].append((built, checked))
                print(
                    f"  hourly transform {label}, run {run}: dbt build {built:.1f}s ({report.models} models), check {checked:.2f}s",
                    flush=True,
                )
        medians = {}
        for label, runs in timings.items():
            total = statistics.median(b + c for b, c in runs)
            medians[label] = total
            build = statistics.median(b for b, _ in runs)
            check = statistics.median(c for _, c in runs)
            rows.append(
                (f"hourly transform, {label}", total, f"dbt build {build:.1f}s + typed-view check {check:.2f}s")
            )
        without, with_plan = medians.values()
        ratio = with_plan / without
        rows.append(("  with/without", ratio, f"x; target <= 1.5x: {'met' if ratio <= 1.5 else 'MISSED'}"))

        _use(setups[f"with the {EVENTS}-event plan"])
        deploys = []
        for i in range(args.runs):
            os.environ["TRACKWAY_TYPED_SCHEMA"] = f"bench_typed_{i}"
            report = deploy(load_settings(), plan)
            deploys.append(report.seconds)
        rows.append(
            ("plan deploy, first (600 views)", statistics.median(deploys), f"{len(report.created)} views created")
        )
        secs, again = _median(lambda: deploy(load_settings(), plan), args.runs)
        rows.append(("plan deploy, nothing changed", secs, f"{again.unchanged} unchanged"))  # type: ignore[attr-defined]
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hour-events", type=int, default=20_000, help="events per hourly batch (default 20,000)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="collector workers")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per collector run")
    parser.add_argument("--skip-collector", action="store_true")
    parser.add_argument("--skip-transform", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trackway-bench-plan-") as tmp:
        root = Path(tmp)
        rows, plan = bench_tooling(root, args.runs)
        if not args.skip_transform:
            rows += bench_transform(args, root, root / "plan", plan)
        print(f"\n{EVENTS} events, {max(len(e.current.properties) for e in plan.events)} properties at most\n")
        print(f"{'step (median of ' + str(args.runs) + ')':44} {'seconds':>8}  note")
        for name, secs, note in rows:
            print(f"{name:44} {secs:>8.3f}  {note}")
        if not args.skip_collector:
            if not shutil.which("wrk"):
                raise SystemExit("wrk not found: install Debian's wrk package (apt-get install wrk)")
            bench_collector_rows(args, root / "plan", plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
