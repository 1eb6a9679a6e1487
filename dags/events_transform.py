"""Build analytics.* with dbt whenever raw.events_raw changes: one task per model, via astronomer-cosmos.

With a tracking plan, a task checks that the typed views deployed are the plan's
(`trackway plan deploy`, the plan_deploy DAG) and alerts when not; the views themselves
are not rebuilt here, so the run's tasks do not grow with the plan (adr/0029). The last
builds the plan's analytics_x views, which read them (one task, whatever the plan's size).
Then, on DuckDB, the read-only snapshot BI tools open is published (docs/bi.md), and the
HTML report is written if TRACKWAY_REPORT_PATH is set (docs/report.md).

In micro-batch mode (TRACKWAY_PIPELINE_MODE) a run triggered only by micro-batch
loads builds just the models behind analytics.events and analytics.sessions, in
one dbt run; the hourly load's run builds everything.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from trackway.config import load_settings
from trackway.orchestration.assets import ANALYTICS_EVENTS, EVENTS_RAW
from trackway.orchestration.dag_defaults import dag_defaults, deadline_alert
from trackway.orchestration.dbt_tasks import dbt_task_group, max_active_tasks, publish_bi_snapshot, transform_summary
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
    @task(outlets=[ANALYTICS_EVENTS], trigger_rule="none_failed_min_one_success")
    def publish() -> dict:
        return transform_summary()

    @task
    def check_typed_views() -> str:
        """Fails (and alerts) when the typed views deployed are not the plan's; a no-op without a plan."""
        from trackway.orchestration.plan_tasks import check_typed_views as check

        return check()

    @task
    def build_analytics_x() -> str:
        """The plan's analytics_x views and tests, which read the typed views just checked."""
        from trackway.orchestration.plan_tasks import build_analytics_x as build

        return build()

    # After a micro-batch's fresh build too (analytics_x is skipped then): none failed, one succeeded.
    @task(trigger_rule="none_failed_min_one_success")
    def bi_snapshot() -> dict:
        """DuckDB: the read-only copy Superset reads, so it never holds the warehouse open (docs/bi.md)."""
        return publish_bi_snapshot()

    @task
    def report() -> dict:
        """The metrics as one HTML file, after the marts and analytics_x; a no-op without TRACKWAY_REPORT_PATH."""
        return report_after_run()

    dbt = dbt_task_group()
    published = publish()
    joined = build_analytics_x()
    dbt >> published
    dbt >> check_typed_views() >> joined
    if load_settings().micro_batch:

        @task.branch
        def choose(**context) -> str:
            """The whole build, unless every asset event that triggered this run is a micro-batch load's."""
            from trackway.orchestration.freshness import transform_scope, triggering_extras

            return "fresh_models" if transform_scope(triggering_extras(context)) == "fresh" else "dbt"

        @task
        def fresh_models() -> dict:
            from trackway.orchestration.freshness import build_fresh_models

            return build_fresh_models(load_settings())

        fresh = fresh_models()
        fresh >> published
        choose() >> [dbt, fresh]
    # One after the other: DuckDB lets no reader in while the snapshot holds the writer's lock.
    [published, joined] >> bi_snapshot() >> report()


events_transform()
