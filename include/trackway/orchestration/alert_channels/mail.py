"""TRACKWAY_ALERT_EMAIL: the alert mailed through Airflow's SMTP provider (its ``smtp_default`` connection)."""

from __future__ import annotations

import html
import json
import logging

log = logging.getLogger(__name__)


def send(to: list[str], record: dict) -> None:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    subject = f"[Trackway {record['severity']}] {record['text'][:150]}"
    try:
        SmtpNotifier(
            to=to,
            subject=subject.replace("{", "(").replace("}", ")").replace("\n", " ").replace("\r", " "),
            html_content=f"<pre>{_inert(json.dumps(record, indent=2))}</pre>",
        ).notify({})
    except Exception as exc:  # a broken mail server must not hide the alert elsewhere
        log.error(
            "could not email the alert to TRACKWAY_ALERT_EMAIL: %s; check Airflow's smtp_default connection "
            "(the alert is in $TRACKWAY_HOME/alerts.ndjson)",
            exc,
        )


def _inert(text: str) -> str:
    """Client-supplied text (event names, errors) as inert HTML that Airflow's Jinja rendering leaves alone.

    SmtpNotifier renders its subject and body as templates: a ``{%`` or ``{{`` in an event name
    must stay text, and ``<`` must not become markup in the mail.
    """
    return html.escape(text).replace("{", "&#123;").replace("}", "&#125;")
