"""Run dbt against the configured warehouse.

dbt reads its connection only from environment variables (see
include/dbt/profiles.yml), derived here from TRACKWAY_TRANSFORM_WAREHOUSE_URL
(default TRACKWAY_WAREHOUSE_URL: dbt's own role on PostgreSQL), so the DAG,
the CLI and the tests build the same project the same way.

On DuckDB and PostgreSQL dbt runs in this process, with the adapters the
Airflow environment has. On BigQuery it runs from its own virtual environment
(``settings.dbt_executable``, made by ``make dbt-venv``; see adr/0007) as a
subprocess, because dbt-bigquery's pins clash with Airflow's Google provider.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from trackway.config import Settings

log = logging.getLogger(__name__)


# dbt commands that run models or tests (and need raw data); the others (parse, compile, deps) read files.
NODE_COMMANDS = ("build", "run", "test", "seed", "snapshot")
# The profile in include/dbt/profiles.yml, and the vars of the hourly transform: each run tests only the rows it
# wrote, so the hourly build does not grow with history (adr/0034). The daily audit tests all.
DBT_PROFILE = "trackway"
HOURLY_DBT_VARS = {"test_scope": "new_rows"}


class DbtBuildError(RuntimeError):
    """dbt failed; the message lists the failing nodes and what they said."""


@dataclass
class DbtReport:
    command: list[str]
    success: bool
    seconds: float
    models: int = 0
    tests_passed: int = 0
    tests_failed: int = 0
    tests_warned: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        if self.command[:1] and self.command[0] not in NODE_COMMANDS:
            return f"dbt {self.command[0]}: {'done' if self.success else 'failed'} in {self.seconds:.1f}s"
        return (
            f"dbt {' '.join(self.command[:1])}: {self.models} models, {self.tests_passed} tests passed, "
            f"{self.tests_warned} warned, {self.tests_failed} failed in {self.seconds:.1f}s"
        )


@contextlib.contextmanager
def _environ(extra: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def dbt_environment(settings: Settings) -> dict[str, str]:
    from trackway.plan.metrics import dbt_metrics_env

    env = settings.transform_warehouse.dbt_env()
    # No phoning home: the embedded default must work offline.
    env.update({"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"})
    # Funnels and experiment goals declared beside the tracking plan (var('metrics')).
    env.update(dbt_metrics_env(settings.plan_dir))
    return env


def _file_log_level() -> dict[str, str]:
    """dbt's file log (``<home>/dbt/logs/dbt.log``) at info rather than dbt's debug default.

    Info keeps every model's and test's result and every error with its message; debug adds each
    statement, connection and timing: 90% of the lines (docs/operations.md). Setting
    DBT_LOG_LEVEL_FILE (debug) in the environment wins. Cosmos's tasks write no dbt.log (dbt_tasks).
    """
    return {} if "DBT_LOG_LEVEL_FILE" in os.environ else {"DBT_LOG_LEVEL_FILE": "info"}


def dbt_args(settings: Settings, command: str, *extra: str) -> list[str]:
    work = settings.home / "dbt"
    project = project_dir(settings)
    return [
        command,
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
        *extra,
    ]


def _check_raw_exists(settings: Settings) -> None:
    """Fail with a next step, not a catalog error, when nothing was ever loaded."""
    from trackway.warehouse import open_warehouse

    try:
        with open_warehouse(settings.transform_warehouse, read_only=True) as wh:
            if wh.table_exists("raw", "events_raw"):
                return
    except FileNotFoundError:
        pass
    raise DbtBuildError(
        f"raw.events_raw does not exist in {settings.transform_warehouse.display_url} yet: load raw events first "
        "(the events_load DAG, or `trackway load --hour YYYY-MM-DDTHH`)"
    )


def plan_has_dbt_models(settings: Settings) -> bool:
    """Whether the plan can put models into the dbt project: its analytics_x views need synced app tables.

    Typed views are deployed, not dbt models (adr/0029), so a plan with no product database in
    the sources file runs the repository's project as it is, with no copy.
    """
    return settings.plan_dir is not None and bool(settings.app_databases())


def project_path(settings: Settings) -> Path:
    """Where the dbt project to run is, without writing anything (the DAG reads this at parse time)."""
    if not plan_has_dbt_models(settings):
        return settings.dbt_project_dir
    return settings.home / "dbt" / "project"


def project_dir(settings: Settings) -> Path:
    """The dbt project to run, written first: the repo's, or with a tracking plan a copy plus its analytics_x models.

    The plan's typed views are not dbt models (adr/0029: `trackway plan deploy`); the copy
    under TRACKWAY_HOME/dbt/project carries what the plan does put into dbt, its analytics_x
    views (trackway.plan.dbtgen), and the source tree is never written. Written by
    `trackway transform` commands only, never while a DAG is parsed (adr/0014).
    """
    if settings.plan_dir is None:
        return settings.dbt_project_dir
    from trackway.plan.dbtgen import project_with_plan
    from trackway.plan.metrics import check_metrics
    from trackway.plan.model import load_plan
    from trackway.plan.xgen import app_links

    plan = load_plan(settings.plan_dir)
    check_metrics(settings.plan_dir, plan)  # funnels' and goals' events against the plan, before dbt checks their shape
    if not plan_has_dbt_models(settings):
        return settings.dbt_project_dir
    return project_with_plan(
        plan,
        settings.dbt_project_dir,
        project_path(settings),
        settings.typed_schema,
        app_links(settings.app_databases()),  # the app tables' foreign keys: analytics_x's second hop
    )


def run_dbt(settings: Settings, command: str = "build", *extra: str, raise_on_failure: bool = True) -> DbtReport:
    if command in NODE_COMMANDS:
        _check_raw_exists(settings)
    args = dbt_args(settings, command, *extra)
    started = time.monotonic()
    if settings.dbt_executable is not None:
        report = _run_subprocess(settings, command, args, extra)
    else:
        report = _run_in_process(settings, command, args, extra)
    report.seconds = time.monotonic() - started
    log.info("%s", report.summary())
    if raise_on_failure and not report.success:
        details = "\n  ".join(report.errors) or "see the dbt log under " + str(settings.home / "dbt" / "logs")
        raise DbtBuildError(f"dbt {command} failed:\n  {details}")
    return report


def _run_in_process(settings: Settings, command: str, args: list[str], extra: tuple[str, ...]) -> DbtReport:
    if settings.warehouse.kind not in ("duckdb", "postgres"):
        raise DbtBuildError(
            f"dbt for {settings.warehouse.kind} runs from dbt's own environment: run `make dbt-venv` "
            "(or set TRACKWAY_DBT_EXECUTABLE to a dbt with that adapter)"
        )
    from dbt.cli.main import dbtRunner

    with _environ({**dbt_environment(settings), **_file_log_level()}):
        try:
            result = dbtRunner().invoke(args)
        finally:
            if settings.transform_warehouse.kind == "duckdb":
                release_duckdb()
    report = DbtReport(command=[command, *extra], success=bool(result.success), seconds=0.0)
    for node_result in getattr(result.result, "results", None) or []:
        node = node_result.node
        _count(report, node.resource_type, node.name, str(node_result.status), node_result.message)
    if result.exception is not None:
        report.errors.append(f"dbt raised {type(result.exception).__name__}: {result.exception}")
    return report


def release_duckdb() -> None:
    """Close the DuckDB handle dbt-duckdb keeps open after an in-process run (its ``keep_open`` default).

    While it is open this process can open the file only through that read-write
    handle, and people's SQL runs only on a read-only, sandboxed one
    (trackway.warehouse.duckdb_warehouse): release it once dbt is done.
    """
    import gc

    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    DuckDBConnectionManager.close_all_connections()  # drops the environment holding the handle
    gc.collect()  # ... which is freed, and the file closed, when nothing refers to it any more


def _run_subprocess(settings: Settings, command: str, args: list[str], extra: tuple[str, ...]) -> DbtReport:
    """dbt from its own environment; results come from its run_results.json."""
    if settings.dbt_executable is None or not settings.dbt_executable.is_file():
        raise DbtBuildError(
            f"TRACKWAY_DBT_EXECUTABLE={settings.dbt_executable} is not a file: run `make dbt-venv` "
            "(it creates .dbt-venv/bin/dbt), or set TRACKWAY_DBT_EXECUTABLE=in-process for DuckDB/PostgreSQL"
        )
    results_path = settings.home / "dbt" / "target" / "run_results.json"
    results_path.unlink(missing_ok=True)  # never read a previous run's results
    env = {**os.environ, **dbt_environment(settings), **_file_log_level()}
    proc = subprocess.run(
        [str(settings.dbt_executable), "--no-use-colors", *args], env=env, capture_output=True, text=True
    )
    for line in proc.stdout.splitlines():
        log.info("dbt: %s", line)
    report = DbtReport(command=[command, *extra], success=proc.returncode == 0, seconds=0.0)
    if results_path.exists():
        for node_result in json.loads(results_path.read_text()).get("results", []):
            unique_id = node_result.get("unique_id", "")
            resource_type, _, rest = unique_id.partition(".")
            name = rest.split(".")[-1] if rest else unique_id
            _count(report, resource_type, name, node_result.get("status", ""), node_result.get("message"))
    if proc.returncode != 0 and not report.errors:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        report.errors.append(f"{settings.dbt_executable} exited with {proc.returncode}:\n{tail}")
    return report


def _count(report: DbtReport, resource_type: str, name: str, raw_status: str, message: str | None) -> None:
    status = raw_status.lower().split(".")[-1]
    if resource_type == "model" and status == "success":
        report.models += 1
    elif resource_type == "test":
        if status == "pass":
            report.tests_passed += 1
        elif status == "warn":
            report.tests_warned += 1
        elif status in ("fail", "error"):
            report.tests_failed += 1
    if status in ("error", "fail"):
        report.errors.append(f"{resource_type} {name}: {status}: {message}")
