"""Display forms for values that may hold a secret: what logs, errors and `config check` show instead."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"


def redact_url(url: str) -> str:
    """``scheme://user:***@host:port/path``: the password (and any query string, where tokens hide) masked."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError:
        return MASK
    netloc = parts.hostname or ""
    if port is not None:
        netloc += f":{port}"
    if parts.username is not None or parts.password is not None:
        user = parts.username or ""
        netloc = f"{user}:{MASK}@{netloc}" if parts.password is not None else f"{user}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, MASK if parts.query else "", ""))


def redact_webhook(url: str) -> str:
    """Webhook URLs carry their token in the path (Slack, Teams): keep only scheme and host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    return f"{parts.scheme}://{parts.hostname or ''}/{MASK}" if parts.scheme else MASK
