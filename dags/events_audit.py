"""Every dbt data test over all history, once a day: the hourly transform tests only what each run wrote (adr/0034)."""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, dag

from trackway.orchestration.dag_defaults import dag_defaults, deadline_alert
from trackway.orchestration.dbt_tasks import dbt_audit_task


@dag(
    dag_id="events_audit",
    # Past the hour's load and transform, when the warehouse is quietest.
    schedule=CronTriggerTimetable("40 3 * * *", timezone="UTC"),
    tags=["trackway", "transform", "dbt", "health"],
    doc_md=__doc__,
    deadline=deadline_alert(),  # a run still going TRACKWAY_DAG_DEADLINE_MINUTES after queued alerts
    **dag_defaults(),
)
def events_audit():
    dbt_audit_task()


events_audit()
