"""Hourly load of raw event objects into raw.events_raw.

The data interval is the hour received; reruns and `airflow backfill create`
are safe because each object is loaded exactly once (see trackway.load.loader).
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from trackway.orchestration.assets import EVENTS_RAW
from trackway.orchestration.dag_defaults import dag_defaults, deadline_alert


@dag(
    dag_id="events_load",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    params={"reload": Param(False, type="boolean", description="Reload objects already in the ledger for this hour")},
    tags=["trackway", "load"],
    deadline=deadline_alert(),  # a run still going TRACKWAY_DAG_DEADLINE_MINUTES after queued alerts
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
        outlet_events[EVENTS_RAW].extra = report.asset_extra()
        return report.as_dict()

    @task(retries=0)
    def check_load(report: dict) -> None:
        """Fails (and alerts) when the load left something for on call: damaged or unswept late objects."""
        from trackway.orchestration.load_checks import raise_if_needs_attention

        raise_if_needs_attention(report)

    check_load(load_raw_objects())


events_load()
