"""What every Trackway DAG shares: start, catchup, retries and the failure alert.

One place, so the load and transform DAGs cannot drift apart on how they
retry or alert.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trackway.config import load_settings
from trackway.orchestration.alerts import TrackwayAlertNotifier


def dag_defaults() -> dict:
    return {
        "start_date": datetime(2026, 1, 1, tzinfo=UTC),
        "catchup": False,  # history is loaded with `airflow backfill create`
        "is_paused_upon_creation": False,  # the pipeline runs as soon as a scheduler starts
        "max_active_runs": 1,
        "default_args": {
            "retries": load_settings().task_retries,
            "retry_delay": timedelta(minutes=1),
            "retry_exponential_backoff": 2.0,
            "on_failure_callback": TrackwayAlertNotifier(),
        },
    }
