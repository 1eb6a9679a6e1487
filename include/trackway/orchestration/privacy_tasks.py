"""The privacy DAG's steps (and `trackway privacy run`'s aggregate refresh): thin calls into trackway.privacy."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from urllib.parse import urlparse

from trackway.config import ConfigError, Settings
from trackway.config.registry import ErasureSection
from trackway.objectstore import ObjectStore, open_object_store

#: dbt models holding counts over people (no ids to delete): rebuilt for the days an erasure touched.
AGGREGATES = ("daily_active_users", "tracking_plan_violations", "tracking_plan_compliance_daily")


def recompute_aggregates(settings: Settings, days: Sequence[date]) -> str:
    """Run the aggregate models: the erasure marked the affected person-days changed, so their days are redone."""
    from trackway.transform.dbt_runner import run_dbt

    report = run_dbt(settings, "run", "--select", *AGGREGATES)
    return f"aggregates recomputed for {len(days)} day(s) from {min(days)}: {report.summary()}"


def privacy_store(settings: Settings) -> ObjectStore | None:
    """The raw store with TRACKWAY_PRIVACY_RAW_CONN_ID's credentials; None: the task's own.

    The erasure run rewrites and deletes raw objects: in a deployment where the
    loader's object-store user may only read, it needs a user of its own.
    """
    conn_id = settings.section(ErasureSection).privacy_raw_conn_id
    if not conn_id:
        return None
    scheme = urlparse(settings.raw_url).scheme
    if scheme == "s3":
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return open_object_store(settings.raw_url, s3_client=S3Hook(aws_conn_id=conn_id).get_conn())
    if scheme == "gs":
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        return open_object_store(settings.raw_url, gcs_client=GCSHook(gcp_conn_id=conn_id).get_conn())
    raise ConfigError(
        f"TRACKWAY_PRIVACY_RAW_CONN_ID is set but TRACKWAY_RAW_URL is {scheme}://, which needs no connection: unset it"
    )


def run_requests(settings: Settings, run_id: str) -> dict:
    """Apply the pending erasure requests, then retention; a failed request or object fails the task (and alerts)."""
    from trackway.privacy.runs import run

    report = run(settings, store=privacy_store(settings))
    lines = report.lines()
    if report.days:
        lines.append(recompute_aggregates(settings, report.days))
    if report.failed or report.objects_failed or (report.retention is not None and report.retention.objects_failed):
        raise RuntimeError("; ".join(lines))
    return {"lines": lines, "run_id": run_id}


def alert_due_soon(settings: Settings, run_id: str) -> int:
    """One alert per request within TRACKWAY_HEALTH_ERASURE_DUE_DAYS of its deadline (or past it) and not
    finished; returns how many.

    Reads the ledger itself: it runs after the erasure run whether that succeeded or not.
    """
    from trackway.orchestration.alerts import Alert, send_alert
    from trackway.privacy.runs import due_requests

    due = due_requests(settings, store=privacy_store(settings))
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
