"""The tracking API's routes and error codes: read by the ASGI app and by the OpenAPI document alike."""

from __future__ import annotations

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
GET_ROUTES = ("/health", "/metrics", "/openapi.json")
# Machine-readable ``code`` for each error status, as Segment-style clients expect.
ERROR_CODES = {
    400: "invalid_request",
    401: "unauthorized",
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
