"""What every Trackway DAG shares: start, catchup, retries (and which errors deserve them) and the failure alert.

One place, so the DAGs cannot drift apart on how they retry or alert.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trackway.config import load_settings
from trackway.config.registry import DagsSection
from trackway.orchestration.alerts import TrackwayAlertNotifier
from trackway.orchestration.retries import TrackwayRetryPolicy

#: events_load's schedule: the hour received. The one place it is defined; the loader takes any
#: [start, end) and loads each object once, so a shorter micro-batch interval can become a setting here.
LOAD_CRON = "0 * * * *"


def load_timetable():
    """events_load's timetable: one data interval per hour (UTC), the interval the run loads."""
    from airflow.sdk import CronDataIntervalTimetable

    return CronDataIntervalTimetable(LOAD_CRON, timezone="UTC")


def deadline_alert():
    """A Deadline Alert (Airflow 3.1+): a run not finished TRACKWAY_DAG_DEADLINE_MINUTES after queued alerts.

    It fires from the scheduler and triggerer even when no task runs, which a
    task's failure callback cannot; the notifier is the same as for failures.
    None when the setting is 0 (``airflow dags test`` crashes on DAGs with deadlines:
    apache/airflow#73428).
    """
    from airflow.sdk.definitions.deadline import AsyncCallback, DeadlineAlert, DeadlineReference

    minutes = load_settings().section(DagsSection).dag_deadline_minutes
    if not minutes:
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=minutes),
        callback=AsyncCallback(TrackwayAlertNotifier, kwargs={"kind": "deadline_missed"}),
    )


def dag_defaults() -> dict:
    section = load_settings().section(DagsSection)
    return {
        "start_date": datetime(2026, 1, 1, tzinfo=UTC),
        "catchup": False,  # history is loaded with `airflow backfill create`
        "is_paused_upon_creation": False,  # the pipeline runs as soon as a scheduler starts
        "max_active_runs": 1,
        "default_args": {
            "retries": section.task_retries,
            "retry_delay": timedelta(seconds=section.task_retry_delay_seconds),
            "retry_exponential_backoff": 2.0,
            # Only transport and lock errors are retried; content and schema errors fail at once.
            "retry_policy": TrackwayRetryPolicy(),
            "on_failure_callback": TrackwayAlertNotifier(),
        },
    }
