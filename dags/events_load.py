"""Hourly load of raw event objects into raw.events_raw.

The data interval is the hour received; reruns and `airflow backfill create`
are safe because each object is loaded exactly once (see trackway.load.loader).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from trackway.orchestration.dag_defaults import dag_defaults, deadline_alert, load_timetable
from trackway.orchestration.load_operator import LoadRawObjectsOperator


@dag(
    dag_id="events_load",
    schedule=load_timetable(),  # hourly: one data interval per hour received
    params={"reload": Param(False, type="boolean", description="Reload objects already in the ledger for this hour")},
    tags=["trackway", "load"],
    deadline=deadline_alert(),  # a run still going TRACKWAY_DAG_DEADLINE_MINUTES after queued alerts
    doc_md=__doc__,
    **dag_defaults(),
)
def events_load():
    # Loads [data_interval_start, data_interval_end) plus late objects, publishes what it did on the
    # raw.events_raw asset event, and tells OpenLineage which objects it read and how many rows it wrote.
    load = LoadRawObjectsOperator(task_id="load_raw_objects")

    @task(retries=0)
    def check_load(report: dict) -> None:
        """Fails (and alerts) when the load left something for on call: damaged or unswept late objects."""
        from trackway.orchestration.load_checks import raise_if_needs_attention

        raise_if_needs_attention(report)

    check_load(load.output)


events_load()
