"""The tracking plan's tasks: deploy its typed views, and the hourly check that they are the plan's (adr/0029).

A mismatch is not a fault to retry: the check fails at once (AirflowFailException),
so the alert notifier says which command fixes it; a busy warehouse is retried as usual.
"""

from __future__ import annotations

import logging
from typing import Any

from trackway.config import load_settings

log = logging.getLogger(__name__)


def check_typed_views() -> str:
    """Fails the task (and alerts) when the typed views deployed are not the current plan's.

    The very first deploy into a schema happens here (nothing to review or break yet).
    """
    from airflow.sdk.exceptions import AirflowFailException

    from trackway.plan.deploy import PlanNotDeployed, require_deployed

    try:
        line = require_deployed(load_settings(), first_deploy=True)
    except PlanNotDeployed as exc:
        raise AirflowFailException(str(exc)) from None
    log.info("%s", line)
    return line


def build_analytics_x() -> str:
    """The plan's analytics_x views and their tests (dbt), once the typed views they read are the plan's."""
    from trackway.transform.plan_models import build_plan_models

    report = build_plan_models(load_settings())
    line = report.summary() if report is not None else "analytics_x: the plan references no application rows"
    log.info("%s", line)
    return line


def deploy_typed_views() -> dict[str, Any]:
    """`trackway plan deploy`, as a task: the views created, replaced and dropped."""
    from trackway.plan.deploy import deploy
    from trackway.plan.model import load_plan

    settings = load_settings()
    if settings.plan_dir is None:
        raise ValueError("TRACKWAY_PLAN_DIR is not set: there is no tracking plan to deploy")
    report = deploy(settings, load_plan(settings.plan_dir))
    for line in report.column_changes[:200]:
        log.info("%s", line)
    log.info("%s", report.summary())
    if not report.dry_run:
        build_analytics_x()
    return {
        "plan_version": report.plan_version,
        "created": len(report.created),
        "replaced": len(report.replaced),
        "dropped": len(report.dropped),
        "unchanged": report.unchanged,
    }
