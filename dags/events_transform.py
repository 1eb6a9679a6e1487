"""Build analytics.* with dbt whenever raw.events_raw changes: one task per model, via astronomer-cosmos.

In micro-batch mode (TRACKWAY_PIPELINE_MODE) a run triggered only by micro-batch
loads builds just the models behind analytics.events and analytics.sessions, in
one dbt run; the hourly load's run builds everything.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from trackway.config import load_settings
from trackway.orchestration.assets import ANALYTICS_EVENTS, EVENTS_RAW
from trackway.orchestration.dag_defaults import dag_defaults, deadline_alert
from trackway.orchestration.dbt_tasks import dbt_task_group, max_active_tasks, transform_summary


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
    @task(outlets=[ANALYTICS_EVENTS], trigger_rule="none_failed_min_one_success")
    def publish() -> dict:
        return transform_summary()

    if not load_settings().micro_batch:
        dbt_task_group() >> publish()
        return

    @task.branch
    def choose(**context) -> str:
        """The whole build, unless every asset event that triggered this run is a micro-batch load's."""
        from trackway.orchestration.freshness import transform_scope, triggering_extras

        return "fresh_models" if transform_scope(triggering_extras(context)) == "fresh" else "dbt"

    @task
    def fresh_models() -> dict:
        from trackway.orchestration.freshness import build_fresh_models

        return build_fresh_models(load_settings())

    done = publish()
    choose() >> [dbt_task_group(), fresh_models()] >> done


events_transform()
