"""Hourly load of raw event objects into raw.events_raw.

The data interval is the hour received; reruns and `airflow backfill create`
are safe because each object is loaded exactly once (see trackway.load.loader).
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from trackway.orchestration.assets import EVENTS_RAW
from trackway.orchestration.dag_defaults import dag_defaults


@dag(
    dag_id="events_load",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    params={"reload": Param(False, type="boolean", description="Reload objects already in the ledger for this hour")},
    tags=["trackway", "load"],
    doc_md=__doc__,
    **dag_defaults(),
)
def events_load():
    @task(outlets=[EVENTS_RAW])
    def load_raw_objects(
        data_interval_start=None, data_interval_end=None, dag_run=None, params=None, outlet_events=None
    ):
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
