"""The CLI: --help everywhere, and errors that say what to do instead of tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC

import pytest

from trackway.cli import build_parser

SUBCOMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trackway.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_every_subcommand_has_help():
    assert {"collect", "load", "transform", "status", "query", "env", "demo"} <= set(SUBCOMMANDS)
    for command in SUBCOMMANDS:
        result = _run(command, "--help")
        assert result.returncode == 0 and "usage: trackway" in result.stdout, command


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["query", "SELECT 1"], {}, "run a load first"),
        (["status"], {}, "run a load first"),
        (["transform"], {}, "load raw events first"),
        (["load", "--hour", "yesterday"], {}, "write e.g. 2026-11-22T10"),
        (["status"], {"TRACKWAY_WAREHOUSE_URL": "mysql://db/x"}, "use duckdb:///"),
        (["collect"], {"TRACKWAY_WRITE_KEYS": "no-colon"}, "is not 'source:key'"),
        (["collect"], {"TRACKWAY_SPOOL_MAX_BYTES": "lots"}, "TRACKWAY_SPOOL_MAX_BYTES"),
    ],
)
def test_errors_say_what_to_do(trackway_env, args, env, message):
    result = _run(*args, **env)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_query_reports_bad_sql_without_a_traceback(trackway_env):
    from datetime import datetime

    from trackway.config import load_settings
    from trackway.load.loader import load_interval

    load_interval(
        load_settings(),
        datetime(2026, 11, 22, 10, tzinfo=UTC),
        datetime(2026, 11, 22, 11, tzinfo=UTC),
    )
    ok = _run("query", "SELECT count(*) AS n FROM raw.events_raw")
    assert ok.returncode == 0 and ok.stdout.splitlines()[0].strip() == "n"
    status = _run("status")
    assert status.returncode == 0 and "lag (now - latest receivedAt)" in status.stdout
    assert "last load" in status.stdout and "rows/s" in status.stdout
    bad = _run("query", "SELEC 1")
    assert bad.returncode == 1 and "syntax error" in bad.stderr and "Traceback" not in bad.stderr


def test_env_prints_exports_for_the_airflow_cli(trackway_env):
    result = _run("env")
    assert result.returncode == 0
    assert f"export TRACKWAY_HOME={trackway_env}" in result.stdout
    assert "export AIRFLOW__CORE__DAGS_FOLDER=" in result.stdout


def test_readers_are_told_when_a_writer_holds_duckdb(trackway_env):
    import duckdb

    trackway_env.mkdir(parents=True, exist_ok=True)
    writer = duckdb.connect(str(trackway_env / "warehouse.duckdb"))  # as a running load or dbt would
    try:
        result = _run("status")
    finally:
        writer.close()
    assert result.returncode == 75
    assert "locked by another process" in result.stderr and "Traceback" not in result.stderr
