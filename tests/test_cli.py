"""The CLI: --help everywhere, and errors that say what to do instead of tracebacks."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from raw_files import event, hour_dir, write_gz_lines
from trackway.cli import build_parser, main
from trackway.status import format_table

SUBCOMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand of the argparse tree, e.g. (), ("load",), ("plan", "lint")."""
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += _command_paths(sub, (*prefix, name))
    return paths


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trackway.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_every_command_and_subcommand_has_help(capsys):
    paths = _command_paths(build_parser())
    assert {"collect", "load", "transform", "status", "query", "env", "demo", "plan"} <= set(SUBCOMMANDS)
    assert any(len(path) == 2 for path in paths), "the walk reaches nested subcommands (trackway plan ...)"
    for path in paths:
        with pytest.raises(SystemExit) as exited:
            main([*path, "--help"])
        text = capsys.readouterr().out
        assert exited.value.code == 0, path
        assert text.startswith(f"usage: trackway {' '.join(path)}".rstrip()) and len(text.splitlines()) > 3, path


def test_help_after_a_dbt_command_is_trackways_not_a_dbt_run(tmp_path):
    # REMAINDER hands `build --help` to the dbt arguments; it must print help, not start dbt on the warehouse.
    result = _run("transform", "build", "--help", TRACKWAY_HOME=str(tmp_path / "empty"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: trackway transform")
    assert "trackway transform build -- --select events" in " ".join(result.stdout.split())


def test_the_installed_entry_point_prints_help():
    result = _run("--help")
    assert result.returncode == 0 and "usage: trackway" in result.stdout and "status" in result.stdout


def test_table_values_sit_beside_their_labels_in_a_column_as_wide_as_the_widest_value():
    rows = [
        ("rows", 1234567),
        ("  rejected", 5),
        ("lag", "3 min"),
        ("last load", "a long text value, wider than any number"),
    ]
    lines = format_table(["stage", "value"], rows, indent="").splitlines()
    labels = max(len(label) for label, _ in rows)
    assert lines[1] == "-" * labels + "  " + "-" * len("a long text value, wider than any number")
    # numbers end where the widest number ends, right after the labels; text starts there
    assert lines[2] == "rows".ljust(labels) + "  " + "1,234,567"
    assert lines[3] == "  rejected".ljust(labels) + "  " + "5".rjust(len("1,234,567"))
    assert lines[4] == "lag".ljust(labels) + "  " + "3 min"
    assert all(line == line.rstrip() for line in lines)
    # a column of short numbers under a wider header: they end where the header ends
    assert format_table(["path", "viewers"], [("/", 5)], indent="").splitlines()[2] == "/     " + "5".rjust(7)


def test_status_table_and_json_show_the_same_numbers(trackway_env, capsys):
    from trackway.config import load_settings
    from trackway.load.loader import load_interval

    folder = hour_dir(trackway_env / "raw", "2026-11-22", 10)
    write_gz_lines(folder / "a.ndjson.gz", [event(f"m-{i}") for i in range(1200)] + ["{not json"])
    load_interval(load_settings(), datetime(2026, 11, 22, 10, tzinfo=UTC), datetime(2026, 11, 22, 11, tzinfo=UTC))
    capsys.readouterr()  # the load's own log lines

    assert main(["status"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert main(["status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["raw_rows"] == 1201 and data["raw_parse_errors"] == 1 and data["objects_loaded"] == 1
    assert data["events"] is None and data["last_load.rows"] == 1201

    manifest = data.pop("dbt_manifest")  # its own line under the table: not a stage count
    assert manifest["status"] == "missing" and table[-1] == manifest["detail"]
    assert "trackway transform compile" in table[-1]
    header, rule, body = table[1], table[2], table[3:-1]
    indent = len(rule) - len(rule.lstrip())
    value_at = indent + rule.strip().index("  ") + 2  # the value column starts two spaces after the widest label
    assert header.strip().split() == ["stage", "value"] and len(body) == len(data) - 1
    shown = {"lag_seconds"}  # shown as a duration ("n/a", "3 min"), in seconds in --json
    numbers = []
    for line, (key, value) in zip(body, list(data.items())[1:], strict=True):
        label, cell = line[:value_at], line[value_at:]
        assert label.strip() and label.endswith("  ") and cell.strip(), line
        if key in shown:
            continue
        if isinstance(value, (int, float)):
            assert cell.strip().replace(",", "") == (f"{value:.2f}" if isinstance(value, float) else str(value)), key
            numbers.append(cell)
        else:
            assert cell == ("-" if value is None else str(value)), key
    widest = max(len("value"), *(len(cell.strip()) for cell in numbers))
    assert all(len(cell) == widest for cell in numbers), "numbers right-aligned to the widest one, beside labels"


def test_query_json_has_the_numbers_of_the_table(trackway_env, capsys):
    from trackway.config import load_settings
    from trackway.load.loader import load_interval

    write_gz_lines(hour_dir(trackway_env / "raw", "2026-11-22", 10) / "a.ndjson.gz", [event("m-1"), event("m-2")])
    load_interval(load_settings(), datetime(2026, 11, 22, 10, tzinfo=UTC), datetime(2026, 11, 22, 11, tzinfo=UTC))
    capsys.readouterr()  # the load's own log lines
    sql = "SELECT count(*) AS n, max(loaded_at) AS latest, 1.5::DECIMAL(4, 2) AS d FROM raw.events_raw"
    assert main(["query", sql]) == 0
    table = capsys.readouterr().out.splitlines()
    assert main(["query", "--json", sql]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["columns"] == ["n", "latest", "d"] and data["limited"] is False
    n, latest, d = data["rows"][0]
    assert n == 2 and d == 1.5 and datetime.fromisoformat(latest).tzinfo is not None
    assert table[2].split()[0] == "2" and table[2].split()[-1] == "1.50"


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
        result = _run("status", TRACKWAY_DUCKDB_READ_WAIT_SECONDS="1")
    finally:
        writer.close()
    assert result.returncode == 75
    assert "is busy" in result.stderr and "Traceback" not in result.stderr
    assert "TRACKWAY_DUCKDB_READ_WAIT_SECONDS" in result.stderr  # what to raise if writers hold it that long


def test_readers_wait_for_a_writer_that_finishes_within_the_read_wait(trackway_env):
    """Micro-batches hold DuckDB for seconds at a time: `trackway query` waits its turn, never a lock error."""
    import threading

    import duckdb

    trackway_env.mkdir(parents=True, exist_ok=True)
    writer = duckdb.connect(str(trackway_env / "warehouse.duckdb"))  # as a micro-batch's load or dbt would
    writer.execute("CREATE TABLE t AS SELECT 42 AS answer")
    # Held for longer than readers used to wait (5 s); a micro-batch transform holds it about as long.
    threading.Timer(8, writer.close).start()
    proc = subprocess.Popen(
        [sys.executable, "-m", "trackway.cli", "query", "SELECT answer FROM t"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TRACKWAY_DUCKDB_READ_WAIT_SECONDS": "120"},
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "42" in out and "busy" not in err
