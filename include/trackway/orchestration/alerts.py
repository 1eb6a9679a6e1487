"""Failure alerts for the DAGs, as an Airflow notifier.

Every alert is appended to ``$TRACKWAY_HOME/alerts.ndjson`` (visible without
any service) and, when TRACKWAY_ALERT_WEBHOOK_URL is set, POSTed there as
JSON (Slack-compatible ``text`` field included).
"""

from __future__ import annotations

import json
import logging
import urllib.request
from datetime import UTC, datetime

from airflow.sdk import BaseNotifier

from trackway.config import Settings, load_settings

log = logging.getLogger(__name__)


class TrackwayAlertNotifier(BaseNotifier):
    """Use as a task's ``on_failure_callback``: it runs in the worker, once the last retry has failed.

    The text is built in Python, not Jinja, so the alert still goes out when
    templating is unavailable (as in DAG-level callbacks under ``dag.test``).
    """

    template_fields = ()

    def notify(self, context) -> None:
        settings = load_settings()
        ti = context.get("ti") or context.get("task_instance")
        dag_id = getattr(context.get("dag"), "dag_id", None) or getattr(ti, "dag_id", None)
        task_id = getattr(ti, "task_id", None)
        error = str(context.get("exception") or "")
        alert = {
            "at": datetime.now(UTC).isoformat(),
            "text": f"Trackway: {dag_id}.{task_id} failed for {context.get('run_id')}: {error[:300]}",
            "dag_id": dag_id,
            "run_id": context.get("run_id"),
            "task_id": task_id,
            "error": error,
        }
        send_alert(settings, alert)


def send_alert(settings: Settings, alert: dict) -> None:
    """Append the alert to $TRACKWAY_HOME/alerts.ndjson and POST it to TRACKWAY_ALERT_WEBHOOK_URL when set."""
    log.error("ALERT %s", json.dumps(alert))
    settings.home.mkdir(parents=True, exist_ok=True)
    with open(settings.home / "alerts.ndjson", "a", encoding="utf-8") as out:
        out.write(json.dumps(alert) + "\n")
    if settings.alert_webhook_url:
        request = urllib.request.Request(  # noqa: S310 (config allows only http/https)
            settings.alert_webhook_url,
            data=json.dumps(alert).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 (see above)
        except OSError as exc:
            log.error("could not deliver alert to TRACKWAY_ALERT_WEBHOOK_URL: %s", exc)
