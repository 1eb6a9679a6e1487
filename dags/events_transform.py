"""Build analytics.* with dbt whenever raw.events_raw changes: one task per model, via astronomer-cosmos.

Then publish analytics.events, and write the HTML report when TRACKWAY_REPORT_PATH is set (docs/report.md).
"""

from __future__ import annotations

from airflow.sdk import dag, task

from trackway.config import load_settings
from trackway.orchestration.assets import ANALYTICS_EVENTS, EVENTS_RAW
from trackway.orchestration.dag_defaults import dag_defaults, deadline_alert
from trackway.orchestration.dbt_tasks import dbt_task_group, max_active_tasks, transform_summary
from trackway.orchestration.report_task import report_after_run


@dag(
    dag_id="events_transform",
    schedule=[EVENTS_RAW],
    tags=["trackway", "transform", "dbt"],
    deadline=deadline_alert(),  # a run still going TRACKWAY_DAG_DEADLINE_MINUTES after queued alerts
    doc_md=__doc__,
    max_active_tasks=max_active_tasks(load_settings()),
    **dag_defaults(),
)
def events_transform():
    @task(outlets=[ANALYTICS_EVENTS])
    def publish() -> dict:
        return transform_summary()

    @task
    def report() -> dict:
        return report_after_run()

    dbt_task_group() >> publish() >> report()


events_transform()
