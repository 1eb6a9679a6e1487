"""Build analytics.events (and what dbt builds on it) whenever raw.events_raw changes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import dag, task

from trackway.alerts import TrackwayAlertNotifier
from trackway.assets import ANALYTICS_EVENTS, EVENTS_RAW
from trackway.config import load_settings


@dag(
    dag_id="events_transform",
    schedule=[EVENTS_RAW],
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    is_paused_upon_creation=False,  # the pipeline should run as soon as Airflow starts
    max_active_runs=1,
    default_args={
        "retries": load_settings().task_retries,
        "retry_delay": timedelta(minutes=1),
        "on_failure_callback": TrackwayAlertNotifier(),
    },
    tags=["trackway", "transform", "dbt"],
    doc_md=__doc__,
)
def events_transform():
    @task(outlets=[ANALYTICS_EVENTS])
    def dbt_build():
        from trackway.config import load_settings
        from trackway.transform.dbt_runner import run_dbt

        return run_dbt(load_settings(), "build").as_dict()

    dbt_build()


events_transform()
