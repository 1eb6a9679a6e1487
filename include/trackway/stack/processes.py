"""What the stack runs, defined once: the commands, in the order they start, and their environment.

Each process is named after the docker-compose service that runs the same
command with the same settings, so the local stack and compose cannot drift
apart: ``trackway up --print`` shows this list, and a test can compare it with
the compose file. Settings reach the processes as environment variables
(``TRACKWAY_*`` and ``AIRFLOW__*``), never as command-line flags.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from trackway.config import Settings
from trackway.orchestration.airflow_env import effective_airflow_env
from trackway.ports import free_ports

#: `trackway up`'s default TRACKWAY_PIPELINE_MODE (elsewhere the default is hourly: adr/0033-micro-batch-freshness.md).
STACK_PIPELINE_MODE = "micro_batch"


@dataclass(frozen=True)
class StackProcess:
    """One command of the stack: ``name`` is the compose service running the same ``command``."""

    name: str
    command: tuple[str, ...]  # the program (found on PATH, this installation's first) and its arguments
    what: str


#: Run once, in order, before anything starts (compose: airflow-init, and the image build's compile).
PREPARE: tuple[StackProcess, ...] = (
    StackProcess("airflow-init", ("airflow", "db", "migrate"), "Airflow's metadata database, created or migrated"),
    StackProcess(
        "dbt-compile",
        ("trackway", "transform", "compile"),
        "the dbt manifest events_transform draws its tasks from (a no-op when current)",
    ),
)


def uses_celery(airflow_env: dict[str, str]) -> bool:
    """CeleryExecutor configured (alone or among several executors): tasks need a Celery worker."""
    return "celery" in airflow_env.get("AIRFLOW__CORE__EXECUTOR", "").lower()


def stack_processes(airflow_env: dict[str, str]) -> tuple[StackProcess, ...]:
    """The long-running processes, in start order; with CeleryExecutor, a Celery worker too."""
    processes = [
        StackProcess("collector", ("trackway", "collect"), "the Segment-compatible collector"),
        StackProcess("airflow-apiserver", ("airflow", "api-server"), "Airflow's UI, REST API and execution API"),
        StackProcess("airflow-scheduler", ("airflow", "scheduler"), "schedules the DAGs (LocalExecutor: runs tasks)"),
        StackProcess("airflow-dag-processor", ("airflow", "dag-processor"), "parses dags/"),
        StackProcess("airflow-triggerer", ("airflow", "triggerer"), "deadline alerts and deferred tasks"),
    ]
    if uses_celery(airflow_env):
        processes.append(
            StackProcess("airflow-worker", ("airflow", "celery", "worker"), "runs the tasks (CeleryExecutor)")
        )
    return tuple(processes)


def display_host(host: str) -> str:
    """Where a client on this machine reaches a server listening on ``host``."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 (a comparison, not a bind)


def collector_admin_url(settings: Settings) -> str:
    """The collector's admin listener (``/metrics``, the detailed ``/health``), as this machine reaches it."""
    return f"http://{display_host(settings.collector_admin_host)}:{settings.collector_admin_port}"


def stack_environment(settings: Settings, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every process gets: yours, with TRACKWAY_HOME absolute and Airflow's defaults for it.

    ``TRACKWAY_HEALTH_COLLECTOR_METRICS_URL`` defaults to this stack's collector,
    so the Trackway page shows what it acknowledged.

    An ``AIRFLOW__*`` variable you set wins over the derived default. The log
    servers of the task runners and the triggerer (Airflow's 8793 and 8794) get
    free ports unless set, so two stacks on one machine do not collide.
    """
    env = dict(os.environ if environ is None else environ)
    env["TRACKWAY_HOME"] = str(settings.home)
    # The local stack is where people watch events arrive: micro-batches unless TRACKWAY_PIPELINE_MODE says hourly.
    if not env.get("TRACKWAY_PIPELINE_MODE"):
        env["TRACKWAY_PIPELINE_MODE"] = STACK_PIPELINE_MODE
    env.update(effective_airflow_env(settings, env))
    unset = [
        k
        for k in ("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT")
        if k not in env
    ]
    env.update(zip(unset, map(str, free_ports(len(unset))), strict=True))
    # The Trackway page and the health checks read this stack's collector (its admin listener).
    env.setdefault("TRACKWAY_HEALTH_COLLECTOR_METRICS_URL", f"{collector_admin_url(settings)}/metrics")
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the supervisor as they are written
    # `airflow` and `trackway` of this installation first (a venv need not be activated).
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, *[p for p in env.get("PATH", "").split(os.pathsep) if p != bin_dir]])
    return env


def argv(process: StackProcess, env: dict[str, str]) -> list[str]:
    """The command with its program resolved on the stack's PATH."""
    program = shutil.which(process.command[0], path=env.get("PATH")) or process.command[0]
    return [program, *process.command[1:]]
