"""How long does parsing dags/events_transform.py take, now that the dbt manifest is compiled ahead of time?

Before adr/0014 a stale manifest made the DAG parse run ``dbt parse`` (17.8 s cold in the
demo); now the parse only compares a fingerprint and loads the manifest, and a stale one
fails the import. Printed beside the baseline measured in the same run: ``trackway
transform compile`` (that ``dbt parse``), cold and after one model edit.
Imports (Airflow, Cosmos, dbt) are warmed first, as they are in the DAG processor.

Usage: .venv/bin/python benchmarks/bench_dag_parse.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import runpy
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(fn: Callable[[], object]) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        fn()
        outcome = "ok"
    except Exception as exc:  # a stale manifest's import error is the expected outcome there
        outcome = f"{type(exc).__name__}: {str(exc)[:90]}..."
    return time.perf_counter() - started, outcome


def line(name: str, runs: list[tuple[float, str]]) -> str:
    times = [t for t, _ in runs]
    return f"{name:<34} median {statistics.median(times):7.3f}s  ({', '.join(f'{t:.3f}' for t in times)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="trackway-bench-dag-parse-") as tmp:
        project = Path(tmp) / "dbt"  # a copy, so that editing a model leaves the repo alone
        shutil.copytree(REPO / "include" / "dbt", project, ignore=shutil.ignore_patterns("target", "logs"))
        os.environ.update(
            {
                "TRACKWAY_HOME": str(Path(tmp) / "home"),
                "TRACKWAY_DBT_PROJECT_DIR": str(project),
                "AIRFLOW_HOME": str(Path(tmp) / "airflow"),
                "AIRFLOW__COSMOS__CACHE_DIR": str(Path(tmp) / "cosmos"),
                "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
            }
        )
        from trackway.config import load_settings
        from trackway.orchestration.airflow_env import apply_airflow_defaults
        from trackway.transform.manifest import compile_manifest

        apply_airflow_defaults(load_settings())
        dag_file = str(REPO / "dags" / "events_transform.py")
        cold = timed(lambda: compile_manifest(load_settings()))
        noop = [timed(lambda: compile_manifest(load_settings())) for _ in range(runs)]
        timed(lambda: runpy.run_path(dag_file))  # warm the imports
        current = [timed(lambda: runpy.run_path(dag_file)) for _ in range(runs)]
        stale, recompile = [], []
        model = project / "models" / "marts" / "events.sql"
        for n in range(runs):
            model.write_text(model.read_text() + f"\n-- edit {n}\n")
            stale.append(timed(lambda: runpy.run_path(dag_file)))
            recompile.append(timed(lambda: compile_manifest(load_settings())))
        print(line("DAG parse, manifest current", current), current[0][1])
        print(line("DAG parse, manifest stale", stale), stale[0][1])
        print(line("compile, manifest current (no-op)", noop))
        print(line("compile after a model edit", recompile), "(baseline: what a stale parse cost before)")
        print(line("compile, cold", [cold]), "(baseline: a first parse before)")


if __name__ == "__main__":
    main()
