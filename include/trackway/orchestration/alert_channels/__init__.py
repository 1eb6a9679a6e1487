"""Where an alert goes besides ``alerts.ndjson``: one module per channel (webhook, Slack, mail).

Each takes the alert's record (``trackway.orchestration.alerts.send_alert`` builds it and
holds back repeats for all channels at once) and never raises: a channel that cannot
deliver logs why and what to do, and the others still go out.
"""
