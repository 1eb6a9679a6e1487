"""The privacy DAG's steps (and `trackway privacy run`'s aggregate refresh): thin calls into trackway.privacy."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from trackway.config import Settings

#: dbt models holding counts over people (no ids to delete): rebuilt for the days an erasure touched.
AGGREGATES = ("daily_active_users", "tracking_plan_violations", "tracking_plan_compliance_daily")


def recompute_aggregates(settings: Settings, days: Sequence[date]) -> str:
    """Run the aggregate models: the erasure marked the affected person-days changed, so their days are redone."""
    from trackway.transform.dbt_runner import run_dbt

    report = run_dbt(settings, "run", "--select", *AGGREGATES)
    return f"aggregates recomputed for {len(days)} day(s) from {min(days)}: {report.summary()}"


def run_requests(settings: Settings, run_id: str) -> dict:
    """Apply the pending erasure requests, then retention; a failed request or object fails the task (and alerts)."""
    from trackway.privacy.runs import run

    report = run(settings)
    lines = report.lines()
    if report.days:
        lines.append(recompute_aggregates(settings, report.days))
    if report.failed or report.objects_failed or (report.retention is not None and report.retention.objects_failed):
        raise RuntimeError("; ".join(lines))
    return {"lines": lines, "run_id": run_id}


def alert_due_soon(settings: Settings, run_id: str) -> int:
    """One alert per request within 7 days of its deadline (or past it) and not finished; returns how many.

    Reads the ledger itself: it runs after the erasure run whether that succeeded or not.
    """
    from trackway.orchestration.alerts import Alert, send_alert
    from trackway.privacy.runs import due_requests

    due = due_requests(settings)
    for item in due:
        send_alert(
            Alert(
                key=f"privacy.due@{item['request_id']}",
                text=f"Trackway: erasure request {item['request_id']} ({item['type']}, {item['status']}) "
                f"is due {item['due_at']} and not finished: `trackway privacy status {item['request_id']}`",
                severity="fail",
                runbook="erasure-request-due",
                details={
                    "dag_id": "privacy",
                    "run_id": run_id,
                    "task_id": "alert_due_requests",
                    "request_id": item["request_id"],
                    "due_at": item["due_at"],
                },
            ),
            settings,
        )
    return len(due)
