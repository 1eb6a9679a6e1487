"""Where an alert goes besides ``alerts.ndjson``: one module per channel (webhook, Slack, mail).

Each takes the alert's record (``trackway.orchestration.alerts.send_alert`` builds it and
holds back repeats for all channels at once) and never raises: a channel that cannot
deliver logs why and what to do, and the others still go out.
"""

from __future__ import annotations


def chat_escape(text: str) -> str:
    """Slack's three control characters (and Mattermost's, which reads the same webhook format): a
    ``<!channel>`` or ``<https://evil|label>`` in client text (an event name, an error) stays text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
