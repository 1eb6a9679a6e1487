"""Hourly health checks: freshness, volume, stopped events, spikes, damaged objects, dbt tests, erasure deadlines.

One task per family of checks (trackway.health); they read the warehouse, the
ledger and the spool, never Airflow's database, and alert through the same
notifier as task failures. `trackway health` runs the same checks from a shell.
"""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, dag, task

from trackway.health.observe import FAMILIES
from trackway.orchestration.dag_defaults import dag_defaults, deadline_alert


@dag(
    dag_id="pipeline_health",
    # After events_load's hourly run has had time to finish (it starts on the hour).
    schedule=CronTriggerTimetable("20 * * * *", timezone="UTC"),
    tags=["trackway", "health"],
    doc_md=__doc__,
    deadline=deadline_alert(),  # a run still going TRACKWAY_DAG_DEADLINE_MINUTES after queued alerts
    **dag_defaults(),
)
def pipeline_health():
    for family in FAMILIES:

        @task(task_id=f"check_{family}", retries=0)
        def check(family: str = family) -> list[dict]:
            from trackway.orchestration.health_tasks import check_family

            return check_family(family)

        check()


pipeline_health()
