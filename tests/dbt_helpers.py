"""Shared by the dbt tests: a warehouse with raw.events_raw filled by plain SQL, and dbt run in-process."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from dbt_parse_reuse import worker_database, worker_folder
from postgres_server import create_database
from trackway.config import WarehouseTarget
from trackway.rawdata.schema import RAW_COLUMNS, RAW_TEXT_FIELDS
from trackway.warehouse import open_warehouse

DBT_DIR = Path(__file__).resolve().parent.parent / "include" / "dbt"
SESSION_TZ = "America/Los_Angeles"
JSON_FIELDS = dict(RAW_TEXT_FIELDS)  # the loader's contract: raw.events_raw column -> JSON key


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def raw_row(line: str, source_object: str, line_number: int, load_id: str, loaded_at: datetime) -> tuple:
    """One raw.events_raw row as the loader writes it (see the raw.events_raw contract)."""
    parse_error = None
    try:
        obj = json.loads(line)
    except ValueError as exc:
        obj, parse_error = {}, f"invalid JSON: {exc}"
    if parse_error is None and not isinstance(obj, dict):
        obj, parse_error = {}, "not a JSON object"
    return (
        *(_as_text(obj.get(key)) for key in JSON_FIELDS.values()),
        line,
        parse_error,
        source_object,
        line_number,
        load_id,
        loaded_at,
    )


INSERT_RAW = f"insert into raw.events_raw ({', '.join(RAW_COLUMNS)}) values ({', '.join(['%s'] * len(RAW_COLUMNS))})"


class Warehouse:
    """One warehouse with raw data loaded; runs dbt and SQL against it."""

    def __init__(
        self, kind: str, env: dict[str, str], work: Path, pg_url: str | None = None, duckdb_path: Path | None = None
    ):
        self.kind, self.env, self.work, self.pg_url, self.duckdb_path = kind, env, work, pg_url, duckdb_path

    def _connect(self):
        if self.kind == "duckdb":
            import duckdb

            return duckdb.connect(str(self.duckdb_path))
        import psycopg

        return psycopg.connect(self.pg_url, autocommit=True)

    def execute(self, sql: str, rows: list[tuple] | None = None) -> None:
        conn = self._connect()
        try:
            if rows is None:
                conn.execute(sql)
            elif self.kind == "duckdb":
                conn.executemany(sql.replace("%s", "?"), rows)
            else:
                with conn.cursor() as cur:
                    cur.executemany(sql, rows)
        finally:
            conn.close()

    def query(self, sql: str) -> list[dict]:
        conn = self._connect()
        try:
            cur = conn.execute(sql)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            conn.close()

    def dbt(self, *args: str, project_dir: Path = DBT_DIR):
        """Run dbt in-process; returns (dbtRunnerResult, seconds).

        The warehouse session runs in a DST-observing zone (TZ for DuckDB,
        PGTZ for libpq) so that any SQL leaning on the session zone instead
        of explicit UTC shows up as wrong timestamps or dates. project_dir:
        another copy of the project (e.g. an older release's), with a target
        folder of its own.
        """
        from dbt.cli.main import dbtRunner

        argv = [
            *args,
            "--project-dir",
            str(project_dir),
            "--profiles-dir",
            str(project_dir),
            "--target-path",
            str(self.work / _target_folder(project_dir, args)),
            "--log-path",
            str(self.work / "logs"),
        ]
        try:
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("DO_NOT_TRACK", "1")
                mp.setenv("TZ", SESSION_TZ)
                mp.setenv("PGTZ", SESSION_TZ)
                time.tzset()
                for key, value in self.env.items():
                    mp.setenv(key, value)
                started = time.monotonic()
                result = dbtRunner().invoke(argv)
                return result, time.monotonic() - started
        finally:
            time.tzset()


def _target_folder(project_dir: Path, args: tuple[str, ...]) -> str:
    """A target folder per project and per --vars: dbt keeps one parse per folder, for one set of vars."""
    name = "target" if project_dir == DBT_DIR else f"target-{project_dir.name}"
    if "--vars" in args:
        name += "-vars-" + hashlib.sha256(args[args.index("--vars") + 1].encode()).hexdigest()[:12]
    return name


def make_warehouse(kind: str, work: Path, request: pytest.FixtureRequest, database: str) -> Warehouse:
    """An empty warehouse with the raw tables exactly as the loader creates them.

    dbt's target and the DuckDB file are in the worker's one folder for this and its database
    name is the worker's, so dbt's parse carries over from the last warehouse made (tests/dbt_parse_reuse.py);
    after the fixture the folder moves to ``work``/warehouse. ``database`` names the database when the
    worker's folder is in use by a fixture of a wider scope.
    """
    folder = worker_folder(request.getfixturevalue("tmp_path_factory"), "dbt-work", ("target/partial_parse.msgpack",))
    reused = not folder.in_use
    keep_at = work / "warehouse"
    if reused:
        work = folder.start(kind)
        database = worker_database(request, "dbt")
    if kind == "duckdb":
        path = work / "warehouse.duckdb"
        target = WarehouseTarget.parse(f"duckdb://{path}")
        wh = Warehouse("duckdb", target.dbt_env(), work, duckdb_path=path)
    else:
        url = create_database(request.getfixturevalue("postgres_url"), database)
        target = WarehouseTarget.parse(url)
        wh = Warehouse("postgres", target.dbt_env(), work, pg_url=url)
    if reused:
        # A parse made with a test's metric declarations is not kept: dbt would reparse it for the next one.
        request.addfinalizer(
            lambda: folder.finish(
                None if "TRACKWAY_DBT_METRICS" in wh.env else kind, keep_at, path if kind == "duckdb" else None
            )
        )
    with open_warehouse(target) as loader_side:
        loader_side.ensure_raw_tables()
    return wh


def dbt_test_statuses(result) -> dict[str, str]:
    return {r.node.name: str(r.status) for r in result.result.results if r.node.resource_type == "test"}


def as_json(value: Any) -> Any:
    """DuckDB returns JSON as text, psycopg already decoded jsonb."""
    return json.loads(value) if isinstance(value, str) else value
