"""Build analytics.* with dbt whenever raw.events_raw changes: one task per model, via astronomer-cosmos.

On DuckDB the last task publishes the read-only snapshot BI tools open (docs/bi.md).
"""

from __future__ import annotations

from airflow.sdk import dag, task

from trackway.config import load_settings
from trackway.orchestration.assets import ANALYTICS_EVENTS, EVENTS_RAW
from trackway.orchestration.dag_defaults import dag_defaults, deadline_alert
from trackway.orchestration.dbt_tasks import dbt_task_group, max_active_tasks, publish_bi_snapshot, transform_summary


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
    def bi_snapshot() -> dict:
        """DuckDB: the read-only copy Superset reads, so it never holds the warehouse open (docs/bi.md)."""
        return publish_bi_snapshot()

    dbt_task_group() >> publish() >> bi_snapshot()


events_transform()
