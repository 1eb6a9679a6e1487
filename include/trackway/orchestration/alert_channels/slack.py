"""TRACKWAY_ALERT_SLACK_CONN_ID: the alert posted to a Slack incoming webhook through Airflow's Slack provider.

The webhook's token lives in the Airflow connection (type ``slackwebhook``, the token as its
password), never in Trackway's settings, and never in a log line: slack_sdk's own logging,
which writes the webhook URL when it retries, is silenced, and our error names the
connection, not its URL. Client-supplied text (event names, errors) goes into plain-text
blocks or is escaped, so it cannot mention ``@channel`` or hide a link.
"""

from __future__ import annotations

import logging
from typing import Any

from trackway.config.redact import MASK
from trackway.orchestration.alert_channels import chat_escape

log = logging.getLogger(__name__)
#: What slack_sdk logs goes here and no further: it writes the full webhook URL (token included) on retries.
_SDK_LOG = logging.getLogger(f"{__name__}.sdk")
_SDK_LOG.setLevel(logging.CRITICAL + 1)
_SDK_LOG.propagate = False

_ICON = {"fail": ":red_circle:", "warn": ":warning:"}


def post(conn_id: str, record: dict) -> None:
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    hook = SlackWebhookHook(slack_webhook_conn_id=conn_id, timeout=10, logger=_SDK_LOG)
    try:
        hook.send(text=chat_escape(record["text"]), blocks=blocks(record))
        return
    except Exception as exc:  # one channel down must not hide the alert in the others
        problem = _scrub(str(exc), hook)
    # Logged outside the except block: no handler can print the exception, whose text may hold the URL.
    log.error(
        "could not post the alert to Slack through Airflow connection %r (TRACKWAY_ALERT_SLACK_CONN_ID): %s; "
        "check that the connection exists with type slackwebhook and the incoming webhook's token as its "
        "password, and that the webhook is still active in Slack (the alert is in $TRACKWAY_HOME/alerts.ndjson)",
        conn_id,
        problem,
    )


def blocks(record: dict) -> list[dict[str, Any]]:
    """Block Kit: severity and key, the alert, its details (DAG, run, task, check), the error, the runbook."""
    severity = str(record.get("severity", ""))
    runbook = str(record.get("runbook", ""))
    text = str(record["text"]).removesuffix(f" (what to do: {runbook})")
    details = {k: v for k, v in (record.get("details") or {}).items() if v not in (None, "")}
    error = details.pop("error", None)
    out: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(f"{_ICON.get(severity, ':bell:')} Trackway {severity}", 150)},
        {"type": "section", "text": _plain(text, 3000)},
    ]
    if details:
        fields = [
            _mrkdwn(f"*{chat_escape(str(k))}*\n{chat_escape(str(v))}", 2000) for k, v in list(details.items())[:10]
        ]
        out.append({"type": "section", "fields": fields})
    if error:
        out.append({"type": "section", "text": _plain(f"Error: {error}", 3000)})
    if runbook.startswith(("http://", "https://")):
        link = runbook.replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
        out.append({"type": "section", "text": _mrkdwn(f"*What to do:* <{link}|the runbook>", 3000)})
    else:  # a relative path (the default docs/runbook.md) is no link Slack accepts
        out.append({"type": "section", "text": _plain(f"What to do: {runbook}", 3000)})
    out.append({"type": "context", "elements": [_plain(f"{record.get('key')} · {record.get('at')}", 2000)]})
    return out


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": _cut(text, limit) or "-", "emoji": True}


def _mrkdwn(text: str, limit: int) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": _cut(text, limit)}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scrub(message: str, hook: Any) -> str:
    """``message`` without the webhook's token or URL (slack_sdk puts the URL in some of its errors)."""
    secrets: list[str] = []
    if "client" in vars(hook):  # built: the connection was read
        secrets.append(hook.client.url)
    try:
        password = hook.get_connection(hook.slack_webhook_conn_id).password or ""
    except Exception:  # no connection: no secret to hide
        password = ""
    secrets += [password, password.strip(), password.strip().lstrip("/")]
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        message = message.replace(secret, MASK)
    return message
