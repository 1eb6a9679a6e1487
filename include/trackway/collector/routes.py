"""The tracking API's routes and error codes: read by the ASGI app and by the OpenAPI document alike."""

from __future__ import annotations

from trackway.collector.analytics_js import SETTINGS_PATH

BATCH = "batch"
ROUTES = {
    "/v1/batch": BATCH,
    "/v1/import": BATCH,
    "/v1/track": "track",
    "/v1/page": "page",
    "/v1/screen": "screen",
    "/v1/identify": "identify",
    "/v1/group": "group",
    "/v1/alias": "alias",
    # analytics.js (analytics-next) short paths: "/" + the type's first letter, "/b" for batches
    "/v1/t": "track",
    "/v1/p": "page",
    "/v1/i": "identify",
    "/v1/g": "group",
    "/v1/a": "alias",
    "/v1/s": "screen",
    "/v1/b": BATCH,
}
# GET routes of the public listener: liveness only and the API description. /metrics and the detailed
# /health are on the admin listener (admin.py), where no browser can read them cross-origin.
GET_ROUTES = ("/health", "/openapi.json")


def allows_cors(path: str) -> bool:
    """Whether browsers may call ``path`` cross-origin: the tracking routes and analytics.js' settings, no other."""
    return path in ROUTES or SETTINGS_PATH.match(path) is not None


# Machine-readable ``code`` for each error status, as Segment-style clients expect.
ERROR_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    411: "length_required",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_encoding",
    429: "rate_limited",
    431: "headers_too_large",
    500: "internal_error",
    503: "unavailable",
}
