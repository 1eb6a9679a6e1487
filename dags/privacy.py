"""Daily privacy run: apply the pending erasure requests and retention, then alert on any request close to its deadline.

`run_requests` is `trackway privacy run` (trackway.privacy.runs): identity links re-resolved,
warehouse rows deleted, raw objects rewritten and verified, the subject set published,
daily_active_users recomputed for the affected days, then retention (events past their rule
deleted or sanitised in every store, trackway.privacy.retention). A request or an object that
fails fails the task (and alerts); the next run retries it. `alert_due_requests` runs whatever happened before it and
alerts on every request within 7 days of its due_at and not finished (docs/privacy.md).
"""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, dag, task

from trackway.orchestration.dag_defaults import dag_defaults, deadline_alert


@dag(
    dag_id="privacy",
    schedule=CronTriggerTimetable("30 3 * * *", timezone="UTC"),
    tags=["trackway", "privacy"],
    deadline=deadline_alert(),  # a run still going TRACKWAY_DAG_DEADLINE_MINUTES after queued alerts
    doc_md=__doc__,
    **dag_defaults(),
)
def privacy():
    @task
    def run_requests(dag_run=None) -> dict:
        from trackway.config import load_settings
        from trackway.orchestration.privacy_tasks import run_requests

        return run_requests(load_settings("privacy"), dag_run.run_id)

    @task(retries=0, trigger_rule="all_done")
    def alert_due_requests(dag_run=None) -> int:
        from trackway.config import load_settings
        from trackway.orchestration.privacy_tasks import alert_due_soon

        return alert_due_soon(load_settings("privacy"), dag_run.run_id)

    run_requests() >> alert_due_requests()


privacy()
