"""`trackway up` and `trackway down`: the whole stack on one machine, as `make up` and `make down` run it."""

from __future__ import annotations

import argparse
import re
import sys

from trackway.config import load_settings, redact_url

_URL = re.compile(r"^[A-Za-z][\w+.-]*://")


def _cmd_up(args: argparse.Namespace) -> int:
    from trackway.stack.processes import PREPARE, stack_environment, stack_processes
    from trackway.stack.state import StackRunning
    from trackway.stack.up import PortInUse, up

    settings = load_settings()
    if args.print:
        from trackway.orchestration.airflow_env import effective_airflow_env

        env = stack_environment(settings)
        print("# Run once, in order (compose service: command):")
        for step in PREPARE:
            print(f"{step.name}: {' '.join(step.command)}")
        print("# Then, together (compose service: command):")
        for process in stack_processes(env):
            print(f"{process.name}: {' '.join(process.command)}")
        print("# Ports (each is checked free before anything starts; the setting moves it):")
        print(f"TRACKWAY_COLLECTOR_PORT={settings.collector_port}")
        print(f"TRACKWAY_COLLECTOR_ADMIN_PORT={settings.collector_admin_port}")
        print(f"TRACKWAY_AIRFLOW_PORT={env['AIRFLOW__API__PORT']}")
        print("# The collector's admin listener, read by the health checks and the Trackway page:")
        print(f"TRACKWAY_HEALTH_COLLECTOR_METRICS_URL={env['TRACKWAY_HEALTH_COLLECTOR_METRICS_URL']}")
        print("# Airflow settings derived from TRACKWAY_HOME and TRACKWAY_AIRFLOW_PORT (an AIRFLOW_* you set wins):")
        for key in effective_airflow_env(settings, env):
            value = env[key]
            print(f"{key}={redact_url(value) if _URL.match(value) and '@' in value else value}")
        return 0
    try:
        return up(settings)
    except (StackRunning, PortInUse) as exc:
        print(f"trackway up: {exc}", file=sys.stderr)
        return 1


def _cmd_down(args: argparse.Namespace) -> int:
    from trackway.stack.up import down

    try:
        print(down(load_settings()))
    except TimeoutError as exc:
        print(f"trackway down: {exc}", file=sys.stderr)
        return 1
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser(
        "up",
        help="run the whole stack here: the collector and Airflow's API server, scheduler, DAG processor, triggerer",
        description=(
            "Run the collector and Airflow (API server and UI, scheduler, DAG processor, triggerer; a Celery worker "
            "too when AIRFLOW__CORE__EXECUTOR is CeleryExecutor) under one supervisor, in the foreground, with each "
            "line prefixed by its process. First `airflow db migrate` and `trackway transform compile`. The "
            "stack runs in micro-batch mode unless TRACKWAY_PIPELINE_MODE=hourly: events_microbatch loads each object "
            "the collector uploads and events_transform builds analytics.events and sessions after it, besides "
            "the hourly events_load and full transform. Everything lives under "
            "TRACKWAY_HOME (Airflow's home and SQLite database in airflow/, lineage in lineage/, logs in logs/), "
            "the ports are TRACKWAY_COLLECTOR_PORT (8080), TRACKWAY_COLLECTOR_ADMIN_PORT (8082: /metrics, /health) "
            "and TRACKWAY_AIRFLOW_PORT (8081), each checked free before anything starts: two homes with two sets of "
            "ports run side by side. One stack per home: a second `trackway up` there refuses. Prints the URLs, the "
            "write key and the Airflow login when ready. Ctrl-C or SIGTERM (`trackway down`) stops every "
            "process; if one exits by itself, it is reported and the others are stopped (exit 1)."
        ),
    )
    up.add_argument(
        "--print",
        action="store_true",
        help="print the commands (named after their docker-compose services) and Airflow settings, start nothing",
    )
    up.set_defaults(func=_cmd_up)
    down = sub.add_parser(
        "down",
        help="stop the stack `trackway up` runs for this TRACKWAY_HOME",
        description="Send SIGTERM to the supervisor of this TRACKWAY_HOME's stack (its pid file) and wait until "
        "every process has stopped (TRACKWAY_STACK_STOP_SECONDS, then they are killed).",
    )
    down.set_defaults(func=_cmd_down)
