"""The OpenAPI 3.1 description of the tracking API, built from the code's own routes and limits.

Served at ``GET /openapi.json``. It describes the public listener only (the
admin listener's /metrics and /health are for operators, admin.py). Paths come from ``routes.ROUTES``, the
limits from the settings in use, the error codes from ``routes.ERROR_CODES``,
so the document cannot drift from what the server routes;
tests/test_collector_openapi.py fuzzes the server against it with schemathesis.
"""

from __future__ import annotations

from typing import Any

from trackway.collector.routes import BATCH, ERROR_CODES, ROUTES
from trackway.config import Settings

_EVENT_TYPES = ["track", "page", "screen", "identify", "group", "alias"]


def _error(description: str, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if retry_after:
        response["headers"] = {
            "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "string"}}
        }
    return response


def openapi_document(settings: Settings) -> dict[str, Any]:
    limits = settings.collector
    event_props: dict[str, Any] = {
        "type": {"type": "string", "enum": _EVENT_TYPES},
        "userId": {"type": ["string", "number"]},
        "anonymousId": {"type": ["string", "number"]},
        "event": {"type": "string"},
        "messageId": {"type": "string"},
        "groupId": {"type": ["string", "number"]},
        "previousId": {"type": ["string", "number"]},
        "timestamp": {"type": "string"},
        "originalTimestamp": {"type": "string"},
        "sentAt": {"type": "string"},
        "properties": {"type": "object"},
        "traits": {"type": "object"},
        "context": {"type": "object"},
        "integrations": {"type": "object"},
        "writeKey": {"type": "string"},
    }
    common_errors = {
        "400": _error("invalid JSON, an invalid event, or a field of the wrong type; nothing stored"),
        "401": _error("write key missing, malformed or unknown: one answer for all, on every route"),
        "411": _error("no Content-Length and not chunked"),
        "413": _error(
            f"over a limit named in the message: body {settings.max_body_bytes} bytes (TRACKWAY_MAX_BODY_BYTES), "
            f"event {limits.max_event_bytes} bytes (TRACKWAY_MAX_EVENT_BYTES), "
            f"batch {limits.max_batch_events} events (TRACKWAY_MAX_BATCH_EVENTS)"
        ),
        "415": _error("Content-Encoding other than gzip, deflate or identity"),
        "429": _error(
            "this write key from this address is over TRACKWAY_RATE_LIMIT_EVENTS_PER_SECOND, or this address over "
            "TRACKWAY_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE; decided before the body is read",
            retry_after=True,
        ),
        "503": _error(
            "shutting down, spool over TRACKWAY_SPOOL_MAX_PENDING_BYTES, or disk full; nothing stored; retry",
            retry_after=True,
        ),
    }
    paths: dict[str, Any] = {}
    for path, route in ROUTES.items():
        if route == BATCH:
            schema = {"$ref": "#/components/schemas/Batch"}
            ok = {"$ref": "#/components/schemas/BatchAccepted"}
            summary = "Send a batch of events (Segment /v1/batch)"
        else:
            schema = {"$ref": "#/components/schemas/Event"}
            ok = {"$ref": "#/components/schemas/Accepted"}
            summary = f"Send one {route} event (its type is implied by the path)"
        paths[path] = {
            "post": {
                "operationId": "post_" + path.strip("/").replace("/", "_"),
                "summary": summary,
                "security": [{"basicAuth": []}, {}],
                "parameters": [
                    {
                        "name": "Content-Encoding",
                        "in": "header",
                        "required": False,
                        "description": "how the body is compressed; any other value is 415",
                        "schema": {"type": "string", "enum": ["gzip", "x-gzip", "deflate", "identity"]},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": schema}, "text/plain": {"schema": schema}},
                },
                "responses": {
                    "200": {
                        "description": "every event stored (fsync'd to the spool)",
                        "content": {"application/json": {"schema": ok}},
                    },
                    **common_errors,
                },
            }
        }
    paths["/v1/projects/{writeKey}/settings"] = {
        "get": {
            "operationId": "get_analytics_js_settings",
            "summary": "Settings analytics.js loads from its cdnURL: the Segment.io destination, pointed back here",
            "parameters": [{"name": "writeKey", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {
                    "description": "settings document",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "400": _error("Host header is not host[:port]"),
                "401": common_errors["401"],
                "429": _error("this address is over TRACKWAY_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE", retry_after=True),
            },
        }
    }
    liveness = {"type": "object", "required": ["status"], "properties": {"status": {"enum": ["ok", "stopping"]}}}
    paths["/health"] = {
        "get": {
            "operationId": "get_health",
            "summary": "Liveness for load balancers (the counters and /metrics are on the admin listener)",
            "responses": {
                "200": {"description": "serving", "content": {"application/json": {"schema": liveness}}},
                "503": {"description": "shutting down", "content": {"application/json": {"schema": liveness}}},
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Trackway collector (Segment HTTP Tracking API)",
            "version": "1",
            "description": "A 200 means every event of the request is stored durably; any other status means "
            "nothing of the request was kept. The write key is the basic-auth user name or `writeKey` in the body. "
            "Bodies may be gzip (Content-Encoding). Errors: " + ", ".join(f"{k} {v}" for k, v in ERROR_CODES.items()),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"basicAuth": {"type": "http", "scheme": "basic"}},
            "schemas": {
                "Event": {"type": "object", "properties": event_props, "additionalProperties": True},
                "Batch": {
                    "type": "object",
                    "required": ["batch"],
                    "properties": {
                        "batch": {
                            "type": "array",
                            "maxItems": limits.max_batch_events,
                            "items": {"$ref": "#/components/schemas/Event"},
                        },
                        "context": {"type": "object"},
                        "integrations": {"type": "object"},
                        "sentAt": {"type": "string"},
                        "writeKey": {"type": "string"},
                    },
                },
                "Accepted": {
                    "type": "object",
                    "required": ["success"],
                    "properties": {"success": {"const": True}},
                },
                "BatchAccepted": {
                    "type": "object",
                    "required": ["success", "accepted", "quarantined"],
                    "properties": {
                        "success": {"const": True},
                        "accepted": {"type": "integer", "minimum": 0},
                        "quarantined": {"type": "integer", "minimum": 0},
                        "dropped": {
                            "type": "integer",
                            "minimum": 1,
                            "description": "Valid events not stored: consent denied or sampled out (docs/privacy.md)",
                        },
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"index": {"type": "integer"}, "reason": {"type": "string"}},
                            },
                        },
                        "violations": {"$ref": "#/components/schemas/PlanViolations"},
                    },
                },
                "PlanViolations": {
                    "description": "With a tracking plan (TRACKWAY_PLAN_DIR): each violating event, flagged or quarantined",
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "index": {"type": "integer"},
                            "event": {"type": "string"},
                            "action": {"enum": ["flagged", "quarantined"]},
                            "violations": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "kind": {"type": "string"},
                                        "property": {"type": ["string", "null"]},
                                        "message": {"type": "string"},
                                    },
                                },
                            },
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["success", "error", "code", "message"],
                    "properties": {
                        "success": {"const": False},
                        "error": {"type": "string"},
                        "code": {"type": "string", "enum": sorted(set(ERROR_CODES.values()))},
                        "message": {"type": "string"},
                    },
                },
            },
        },
    }
