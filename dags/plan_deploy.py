"""Deploy the tracking plan's typed views when the plan changes (the tracking_plan asset, or a manual run).

The hourly events_transform only checks that the deployed views are the plan's and
alerts when not; this DAG (or `trackway plan deploy`) makes them so.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from trackway.orchestration.assets import TRACKING_PLAN
from trackway.orchestration.dag_defaults import dag_defaults, deadline_alert


@dag(
    dag_id="plan_deploy",
    schedule=[TRACKING_PLAN],
    tags=["trackway", "plan"],
    deadline=deadline_alert(),  # a deploy still going TRACKWAY_DAG_DEADLINE_MINUTES after queued alerts
    doc_md=__doc__,
    **dag_defaults(),
)
def plan_deploy():
    @task
    def deploy_typed_views() -> dict:
        from trackway.orchestration.plan_tasks import deploy_typed_views as deploy

        return deploy()

    deploy_typed_views()


plan_deploy()
