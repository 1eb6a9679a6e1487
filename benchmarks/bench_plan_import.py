"""How big and how fast is a 500+ event tracking plan, from import to enforcement?

Generates a Segment Public API export of N track events named the way real companies
name them (spaces, capitals, punctuation, unicode), then times, median of 3:
import -> plan folder, load, lint, typed views' SQL, validator compilation and
per-event validation. Baseline in the same run: json.load of the export itself (the
floor for reading the plan at all).
Usage: .venv/bin/python benchmarks/bench_plan_import.py [--events 520]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from plan_fixtures import messy_segment_export
from trackway.plan.importers import import_plan
from trackway.plan.lint import lint_plan
from trackway.plan.model import load_plan
from trackway.plan.validate import CompiledPlan
from trackway.plan.views import typed_views


def _median(fn, runs: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=520)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trackway-bench-plan-") as tmp:
        root = Path(tmp)
        names = messy_segment_export(root / "export.json", args.events)
        export_bytes = (root / "export.json").stat().st_size

        def do_import():
            target = root / "plan"
            shutil.rmtree(target, ignore_errors=True)
            return import_plan("segment", root / "export.json", target)

        rows = []
        secs, _ = _median(lambda: json.loads((root / "export.json").read_text()))
        rows.append(("baseline: json.load of the export", secs, ""))
        secs, imported = _median(do_import)
        rows.append(("import -> plan folder", secs, f"{len(imported.events)} events"))
        secs, plan = _median(lambda: load_plan(root / "plan"))
        rows.append(("load the plan folder", secs, f"{len(list((root / 'plan' / 'events').glob('*.yaml')))} files"))
        secs, problems = _median(lambda: lint_plan(plan))
        rows.append(("lint", secs, f"{len(problems):,} problems reported"))
        secs, views = _median(lambda: typed_views(plan, "postgres"))
        sql_bytes = sum(len(v.select.encode()) for v in views)
        rows.append(("generate typed views' SQL", secs, f"{len(views)} views, {sql_bytes / 1e6:.1f} MB"))
        secs, compiled = _median(lambda: CompiledPlan(plan))
        rows.append(("compile validators (jsonschema-rs)", secs, ""))
        events = [{"type": "track", "event": n, "properties": {"Quantity": 1}} for n in names]
        secs, _ = _median(lambda: [compiled.check(e) for e in events])
        rows.append(("validate one event per plan event", secs, f"{secs / len(events) * 1e6:.1f} us/event"))
        plan_bytes = _size(root / "plan")
        assert sorted(e.name for e in plan.events) == sorted(names), "names changed on import"
    print(f"{args.events} events; export {export_bytes / 1e3:,.0f} kB; plan folder {plan_bytes / 1e6:.1f} MB\n")
    print(f"{'step (median of 3)':40} {'seconds':>8}  note")
    for name, secs, note in rows:
        print(f"{name:40} {secs:>8.3f}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
