"""Hourly load of raw event objects into raw.events_raw.

The data interval is the hour received; reruns and `airflow backfill create`
are safe because each object is loaded exactly once (see trackway.load.loader).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from trackway.alerts import TrackwayAlertNotifier
from trackway.assets import EVENTS_RAW
from trackway.config import load_settings


@dag(
    dag_id="events_load",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    is_paused_upon_creation=False,  # the pipeline should run as soon as Airflow starts
    max_active_runs=1,
    default_args={
        "retries": load_settings().task_retries,
        "retry_delay": timedelta(minutes=1),
        "on_failure_callback": TrackwayAlertNotifier(),
        "retry_exponential_backoff": 2.0,
    },
    params={"reload": Param(False, type="boolean", description="Reload objects already in the ledger for this hour")},
    tags=["trackway", "load"],
    doc_md=__doc__,
)
def events_load():
    @task(outlets=[EVENTS_RAW])
    def load_raw_objects(data_interval_start=None, data_interval_end=None, dag_run=None, params=None, outlet_events=None):
        from trackway.config import load_settings
        from trackway.load.loader import load_interval

        report = load_interval(
            load_settings(),
            data_interval_start,
            data_interval_end,
            triggered_by=f"airflow:{dag_run.run_id}",
            reload=bool(params.get("reload")),
        )
        outlet_events[EVENTS_RAW].extra = {
            "load_id": report.load_id,
            "rows_loaded": report.rows_loaded,
            "objects_loaded": report.objects_loaded,
            "parse_errors": report.parse_errors,
            "damaged_objects": len(report.object_errors),
        }
        return report.as_dict()

    load_raw_objects()


events_load()
