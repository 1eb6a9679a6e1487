"""One way alerts leave Trackway: task failures, missed deadlines and health checks all go through here.

Every alert is appended to ``$TRACKWAY_HOME/alerts.ndjson`` (visible without any
service), then sent to each channel configured (``alert_channels``): POSTed to
TRACKWAY_ALERT_WEBHOOK_URL as JSON (its ``text`` field is what Slack's incoming
webhooks show), posted to Slack through the Airflow connection
TRACKWAY_ALERT_SLACK_CONN_ID (Airflow's Slack provider) and emailed to
TRACKWAY_ALERT_EMAIL through Airflow's SMTP provider. One channel failing does not
stop the others. Repeats of the same key are held back for
TRACKWAY_ALERT_REPEAT_HOURS, for all channels at once, so a broken hour pages once,
not once per retry or per health run. Each alert links to its runbook section.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseNotifier

from trackway.config import Settings, load_settings
from trackway.orchestration.alert_channels import mail, slack, webhook

log = logging.getLogger(__name__)

_STATE = "alerts-state.json"


@dataclass
class Alert:
    key: str  # what repeats of the same problem share: "events_load.load_raw_objects@2026-12-02T10"
    text: str  # one line for a chat channel
    severity: str  # "fail" or "warn"
    runbook: str  # anchor in the runbook: "event-stopped"
    details: dict[str, Any] = field(default_factory=dict)


def send_alert(alert: Alert, settings: Settings | None = None, *, now: datetime | None = None) -> bool:
    """Deliver ``alert`` everywhere configured; False when a repeat inside the repeat window was held back."""
    settings = settings or load_settings()
    now = now or datetime.now(UTC)
    if not _claim(settings, alert.key, now):
        log.info("alert %s already sent within TRACKWAY_ALERT_REPEAT_HOURS; not sent again", alert.key)
        return False
    record = {
        "at": now.isoformat(),
        **asdict(alert),
        "runbook": f"{settings.runbook_url}#{alert.runbook}",
    }
    record["text"] = f"{alert.text} (what to do: {record['runbook']})"
    record.update(alert.details)  # dag_id, task_id, run_id, error... at the top level, for scripts
    log.error("ALERT %s", json.dumps(record))
    settings.home.mkdir(parents=True, exist_ok=True)
    with open(settings.home / "alerts.ndjson", "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
    if settings.alert_webhook_url:
        webhook.post(settings.alert_webhook_url, record)
    if settings.alert_slack_conn_id:
        slack.post(settings.alert_slack_conn_id, record)
    if settings.alert_email:
        mail.send(settings.alert_email, record)
    return True


def clear_alerts(settings: Settings, keys: list[str]) -> None:
    """The problems behind ``keys`` are gone: their next occurrence alerts at once."""
    with _state(settings) as state:
        for key in keys:
            state.pop(key, None)


def _claim(settings: Settings, key: str, now: datetime) -> bool:
    window = timedelta(hours=settings.alert_repeat_hours)
    with _state(settings) as state:
        last = state.get(key)
        if last and now - datetime.fromisoformat(last) < window:
            return False
        state[key] = now.isoformat()
        return True


class _state:
    """``alerts-state.json`` under an exclusive lock: several workers may alert at once."""

    def __init__(self, settings: Settings) -> None:
        settings.home.mkdir(parents=True, exist_ok=True)
        self.path = settings.home / _STATE

    def __enter__(self) -> dict[str, str]:
        self.file = open(self.path, "a+", encoding="utf-8")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        self.file.seek(0)
        try:
            self.data: dict[str, str] = json.loads(self.file.read() or "{}")
        except json.JSONDecodeError:
            self.data = {}  # a torn file forgets what was sent: alerting twice beats not alerting
        return self.data

    def __exit__(self, *exc: object) -> None:
        self.file.seek(0)
        self.file.truncate()
        self.file.write(json.dumps(self.data))
        self.file.flush()
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


#: Where a failed task's runbook section is, by the exception it raised.
RUNBOOK_BY_ERROR = {
    "LoadNeedsAttention": "load-needs-attention",
    "HealthCheckFailed": "health-checks",
    "WarehouseBusy": "warehouse-busy",
    "AppSyncError": "app-sync-failed",
}


class TrackwayAlertNotifier(BaseNotifier):
    """Task failures (``on_failure_callback``, after the last retry) and missed deadlines (``DeadlineAlert``).

    The text is built in Python, not Jinja, so the alert still goes out when
    templating is unavailable (as in DAG-level callbacks under ``dag.test``).
    """

    template_fields = ()

    def __init__(self, kind: str = "task_failed", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind = kind

    def notify(self, context) -> None:
        if self.kind == "deadline_missed":
            send_alert(deadline_alert(context))
        else:
            send_alert(task_failure_alert(context))

    async def async_notify(self, context) -> None:
        """Deadline callbacks run in the triggerer, which awaits notifiers."""
        await asyncio.to_thread(self.notify, context)


def task_failure_alert(context) -> Alert:
    from trackway.orchestration.retries import classify

    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(context.get("dag"), "dag_id", None) or getattr(ti, "dag_id", None)
    task_id = getattr(ti, "task_id", None)
    exception = context.get("exception")
    error = str(exception or "")
    interval = context.get("data_interval_start") or context.get("logical_date")
    when = f"{interval:%Y-%m-%dT%H}" if isinstance(interval, datetime) else str(context.get("run_id"))
    failure = classify(exception) if isinstance(exception, BaseException) else None
    runbook = RUNBOOK_BY_ERROR.get(type(exception).__name__) or (failure.runbook if failure else "task-failed")
    # Content and schema errors failed at once: say so, so nobody waits for a retry.
    at_once = " at once (not retried: a retry would fail the same way)" if failure and failure.retry is False else ""
    return Alert(
        key=f"{dag_id}.{task_id}@{when}",
        text=f"Trackway: {dag_id}.{task_id} failed{at_once} for {context.get('run_id')}: {error[:300]}",
        severity="fail",
        runbook=runbook,
        details={
            "dag_id": dag_id,
            "run_id": context.get("run_id"),
            "task_id": task_id,
            "error": error,
            "failure": failure.kind if failure else None,  # a key of retries.RUNBOOK_BY_KIND
        },
    )


def deadline_alert(context) -> Alert:
    run = context.get("dag_run") or {}
    get = run.get if isinstance(run, dict) else lambda k, d=None: getattr(run, k, d)
    dag_id, run_id = get("dag_id"), get("run_id")
    deadline = context.get("deadline") or {}
    due = deadline.get("deadline_time") if isinstance(deadline, dict) else getattr(deadline, "deadline_time", None)
    return Alert(
        key=f"{dag_id}.deadline@{run_id}",
        text=f"Trackway: {dag_id} run {run_id} has not finished by its deadline {due}",
        severity="fail",
        runbook="deadline-missed",
        details={"dag_id": dag_id, "run_id": run_id, "deadline": str(due)},
    )
