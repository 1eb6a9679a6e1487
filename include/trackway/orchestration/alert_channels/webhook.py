"""TRACKWAY_ALERT_WEBHOOK_URL: the alert's record POSTed as JSON (its ``text`` is what chat webhooks show,
escaped as Slack and Mattermost read it; every other field as in ``alerts.ndjson``)."""

from __future__ import annotations

import json
import logging
import urllib.request

from trackway.orchestration.alert_channels import chat_escape

log = logging.getLogger(__name__)


def post(url: str, record: dict) -> None:
    request = urllib.request.Request(  # noqa: S310 (config allows only http/https)
        url,
        data=json.dumps({**record, "text": chat_escape(record["text"])}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 (see above)
    except OSError as exc:
        log.error(
            "could not deliver alert to TRACKWAY_ALERT_WEBHOOK_URL: %s; check that the URL is reachable from the "
            "Airflow workers (the alert is in $TRACKWAY_HOME/alerts.ndjson)",
            exc,
        )
