"""How long does ``make test`` take on a fresh clone, and how fast was the machine while it ran?

The same commit's ``make test`` took 8 m 20 s on this 2-core VM at 20:33 one day and 19 m 35 s the
evening before (843 and 2,067 CPU-seconds for the same 725 tests): the machine changed, not the suite.
So the suite's figures are printed beside a baseline measured in the same run: a fixed, single-threaded
Python workload (parsing and compiling the repository's own modules, a JSON round trip, a sort), median
of 3 in fresh interpreters before the suite and again after it. The suite's CPU-seconds divided by the
baseline's CPU-seconds compares runs across hours; the wall time is what the target (15 minutes) is about.

The suite runs as CI runs it: ``git clone`` of the repository's HEAD into a temporary folder, then
``CI=true make <target>`` there (venvs from the package cache, a cold mypy, the suite). The clone is
deleted afterwards unless ``--keep``. Nothing here asserts time.

Usage: .venv/bin/python benchmarks/bench_suite.py [--repo .] [--target test] [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_MINUTES = 15
# The baseline: the same work in every run, no I/O after the first read, one thread.
_CALIBRATION = r"""
import ast, json, sys, time
from pathlib import Path
sources = [p.read_text(encoding="utf-8") for p in sorted(Path(sys.argv[1]).rglob("*.py"))]
started = time.process_time()
for _ in range(3):
    trees = [ast.parse(s) for s in sources]
    codes = [compile(t, "<bench>", "exec") for t in trees]
    dumped = json.dumps([[type(n).__name__ for n in ast.walk(t)] for t in trees])
    sorted(json.loads(dumped), key=len)
print(time.process_time() - started)
"""


def calibrate(runs: int = 3) -> float:
    """CPU-seconds of the baseline workload, median of ``runs`` fresh interpreters."""
    seconds = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", _CALIBRATION, str(REPO / "include" / "trackway")],
            capture_output=True,
            text=True,
            check=True,
        )
        seconds.append(float(done.stdout.strip()))
    return statistics.median(seconds)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_suite(repo: Path, target: str, workdir: Path) -> dict[str, object]:
    """Clone ``repo`` into ``workdir`` and run ``make <target>`` there, streaming its progress lines."""
    clone = workdir / "clone"
    subprocess.run(["git", "clone", "--quiet", str(repo), str(clone)], check=True)
    head = subprocess.run(
        ["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {**os.environ, "CI": "true", "PYTHONUNBUFFERED": "1"}  # pytest's progress lines as they come
    pytest_args = f"--basetemp={workdir / 'pytest'}"
    log_path = workdir / "make.log"
    cpu_before, started = _children_cpu(), time.monotonic()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            ["make", target, f"PYTEST_ARGS={pytest_args}"],
            cwd=clone,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            # Progress: make's own steps and pytest's percentage lines, with the minutes so far.
            if line.startswith("==>") or re.search(r"\[\s*\d+%\]\s*$", line):
                print(f"  {(time.monotonic() - started) / 60:5.1f} min  {line.rstrip()[-90:]}", flush=True)
        code = proc.wait()
    wall = time.monotonic() - started
    cpu = _children_cpu() - cpu_before
    text = log_path.read_text(errors="replace")
    summary = re.findall(r"^=*\s*(.*(?:passed|failed).* in ([\d.]+)s.*?)\s*=*$", text, re.MULTILINE)
    return {
        "head": head,
        "exit": code,
        "wall": wall,
        "cpu": cpu,
        "pytest": float(summary[-1][1]) if summary else None,
        "summary": summary[-1][0] if summary else "(no pytest summary: see the log)",
        "log": log_path,
    }


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} m {seconds % 60:04.1f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=REPO, help="the repository to clone (its HEAD)")
    parser.add_argument("--target", default="test", help="the make target CI runs (default: test)")
    parser.add_argument("--keep", action="store_true", help="keep the clone, its log and pytest's folder")
    args = parser.parse_args()

    print("baseline: calibration workload, median of 3 fresh interpreters ...", flush=True)
    before = calibrate()
    workdir = Path(tempfile.mkdtemp(prefix="bench-suite-"))
    print(f"make {args.target} on a fresh clone of {args.repo} in {workdir} ...", flush=True)
    try:
        suite = run_suite(args.repo, args.target, workdir)
        after = calibrate()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    baseline = statistics.mean([before, after])
    pytest_s = suite["pytest"]
    rows = [
        ("baseline: calibration before (CPU s, median of 3)", f"{before:.2f}"),
        ("baseline: calibration after (CPU s, median of 3)", f"{after:.2f}"),
        (f"make {args.target}, fresh clone of {suite['head']}: wall", _minutes(float(suite["wall"]))),
        ("  of which pytest", _minutes(pytest_s) if isinstance(pytest_s, float) else "-"),
        ("  CPU-seconds (user + sys, every process)", f"{suite['cpu']:.0f}"),
        ("  CPU-seconds / calibration (compares hours)", f"{float(suite['cpu']) / baseline:.0f}"),
        (f"  target: wall <= {TARGET_MINUTES} min", "met" if float(suite["wall"]) <= TARGET_MINUTES * 60 else "MISSED"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\n| {'figure (2 cores)':<{width}} | value |\n|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name:<{width}} | {value} |")
    print(f"\npytest: {suite['summary']}")
    if suite["exit"] != 0:
        kept = f" (log: {suite['log']})" if args.keep else " (run again with --keep to read the log)"
        print(f"make {args.target} exited {suite['exit']}{kept}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
