"""How long does the ``trackway`` command take before it does anything useful?

Times whole processes, wall clock, median of ``--runs`` runs after one warm-up run each,
on a fresh temporary TRACKWAY_HOME with the embedded default (DuckDB warehouse, file://
raw store; every other TRACKWAY_* and AIRFLOW_* variable is dropped):

  * baseline: ``python -c pass``            -- the interpreter's own start-up
  * baseline: ``python -c "import airflow.sdk"`` -- importing Airflow at all (configuration,
    settings): the floor for any command that touches ObjectStoragePath; and the same with
    Airflow's private ``_AIRFLOW__AS_LIBRARY=1``, to show what its settings.initialize() costs
  * ``trackway --help``, ``trackway status``, ``trackway load --hour <an empty hour>``

Whether Python finds compiled bytecode (.pyc) for the installed packages changes every figure
by seconds (a run without it compiles ~2,000 modules), so the run says which case it measured.
Nothing here asserts time.

Usage: .venv/bin/python benchmarks/bench_cli.py [--runs 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
TRACKWAY = str(Path(sys.executable).with_name("trackway"))
EMPTY_HOUR = "2026-01-01T00"
_IMPORT_AIRFLOW = [PYTHON, "-c", "import airflow.sdk"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKWAY_", "AIRFLOW_"))}
    env["TRACKWAY_HOME"] = str(home)
    env["AIRFLOW__COSMOS__ENABLE_TELEMETRY"] = "False"
    return env


def _wall(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return elapsed


def _median(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    _wall(argv, env)  # warm-up: page cache, and the warehouse file for status/load
    times = [_wall(argv, env) for _ in range(runs)]
    return statistics.median(times), min(times)


def _bytecode_state() -> str:
    spec = importlib.util.find_spec("airflow")
    origin = spec.origin if spec and spec.origin else ""
    cached = bool(origin) and Path(importlib.util.cache_from_source(origin)).exists()
    writes = "no (PYTHONDONTWRITEBYTECODE)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "yes"
    return f".pyc for site-packages present: {'yes' if cached else 'NO'}; Python may write new .pyc: {writes}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cases = [
        ("baseline: python -c pass", [PYTHON, "-c", "pass"], None),
        ("baseline: python -c 'import airflow.sdk'", _IMPORT_AIRFLOW, None),
        # Airflow's private switch that skips settings.initialize() (ORM, logging, secret masking):
        # measured to show what that initialisation costs, not used by trackway.
        ("  same, _AIRFLOW__AS_LIBRARY=1 (not used)", ["env", "_AIRFLOW__AS_LIBRARY=1", *_IMPORT_AIRFLOW], None),
        ("trackway --help", [TRACKWAY, "--help"], 1.0),
        ("trackway load --hour (empty hour)", [TRACKWAY, "load", "--hour", EMPTY_HOUR], 2.0),
        ("trackway status", [TRACKWAY, "status"], 1.0),
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="trackway-bench-cli-") as tmp:
        env = _env(Path(tmp))
        for name, argv, target in cases:
            median, fastest = _median(argv, env, args.runs)
            rows.append((name, median, fastest, target))
    trackway = importlib.util.find_spec("trackway")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} (other processes slow every row alike)")
    print(f"trackway from {Path(trackway.origin).parent if trackway and trackway.origin else '?'}")
    print(f"{_bytecode_state()}\n")
    print(f"{f'command (median of {args.runs})':42} {'median s':>9} {'min s':>7} {'target s':>9}  verdict")
    for name, median, fastest, target in rows:
        verdict = "" if target is None else ("ok" if median <= target else "OVER")
        shown = "" if target is None else f"{target:.1f}"
        print(f"{name:42} {median:>9.2f} {fastest:>7.2f} {shown:>9}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
