"""A big object loads in bounded memory: the peak RSS of a `trackway load` process stays under 1 GiB.

The object is ~210 MB of NDJSON (gzip'd); before the streaming loader, an object this
size peaked at about 1 GB, and 320 MB at 2 GB. No time is asserted.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest

from raw_files import event, hour_dir

LINES = 200_000
GIB_KIB = 1024 * 1024
# VmHWM, the peak RSS of this process's own memory since exec. Not ru_maxrss: Linux carries
# that over from the parent across fork and exec, so a child of a big pytest would report
# the parent's size.
PROBE = (
    "import sys; from trackway.cli import main; rc = main(sys.argv[1:]); "
    "print('maxrss_kib', next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:'))); "
    "sys.exit(rc)"
)


@pytest.fixture(scope="module")
def big_object(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "big.ndjson.gz"
    pad = "x" * 900
    with gzip.open(path, "wb", compresslevel=1) as out:
        for start in range(0, LINES, 10_000):
            out.write(
                "".join(
                    json.dumps(event(f"m-{i}", properties={"i": i, "pad": pad})) + "\n"
                    for i in range(start, start + 10_000)
                ).encode()
            )
    return path


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_peak_rss_of_a_big_load_stays_under_1_gib(backend, big_object, trackway_env, request, monkeypatch):
    if backend == "postgres":
        from postgres_server import create_database

        monkeypatch.setenv(
            "TRACKWAY_WAREHOUSE_URL", create_database(request.getfixturevalue("postgres_url"), "load_memory")
        )
    folder = hour_dir(trackway_env / "raw", "2026-11-22", 10)
    os.link(big_object, folder / "big.ndjson.gz")
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "load", "--hour", "2026-11-22T10"],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{LINES:,} rows" in proc.stdout
    peak_kib = int(proc.stdout.rsplit("maxrss_kib", 1)[1].split()[0])
    assert peak_kib < GIB_KIB, f"peak RSS {peak_kib / 1024:.0f} MiB"
    print(f"{backend}: peak RSS {peak_kib / 1024:.0f} MiB")
