"""Segment message rules: what makes an event acceptable and what we add to it.

Kept free of I/O so the HTTP layer, tests and any replay tool apply exactly
the same rules. Enrichment only adds or overwrites the fields the collector
owns (messageId when missing, receivedAt, context.ip, sourceId, merged batch
context/integrations, sentAt from the batch); every other field is stored as
the client sent it so the raw store stays a faithful record. With a tracking plan
the plan hook adds one more collector-owned key, ``PLAN_VERDICT_KEY`` (adr/0029).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from trackway.config import default

EVENT_TYPES = ("track", "page", "screen", "identify", "group", "alias")

# Segment refuses single events over 32 KB; refusing them here too keeps
# clients that pass our collector from failing later against Segment.
MAX_EVENT_BYTES: int = default("TRACKWAY_MAX_EVENT_BYTES")

_OBJECT_FIELDS = ("context", "integrations", "properties", "traits")
# The tracking plan's verdict on the event, written by the collector's plan hook only
# (trackway.plan.verdict); a value a client sends is dropped, so it cannot be forged.
PLAN_VERDICT_KEY = "_trackwayPlan"
_orjson_dumps = orjson.dumps
_TIME_FIELDS = ("timestamp", "originalTimestamp", "sentAt")


class InvalidEvent(ValueError):
    """One event breaks the Segment spec; ``str()`` is the reason shown to the sender."""


class InvalidBody(ValueError):
    """The request body as a whole is unusable (a 400 for the request)."""


def _reject_constant(name: str):
    raise InvalidBody(f"JSON contains {name}, which is not valid JSON; send finite numbers only")


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise InvalidBody(f"JSON number {text[:40]} is out of range; send it as a string")
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def parse_json_body(raw: bytes) -> dict:
    """Strict JSON parse: no NaN/Infinity, so what we store is always valid JSON.

    orjson takes the common case; anything it refuses (or a BOM, or an integer
    too big for it) goes through the stdlib parser, which either accepts it or
    says precisely what is wrong.
    """
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _parse_json_body_slow(raw)
    if not isinstance(body, dict):
        raise InvalidBody(f"body is a JSON {type(body).__name__}, not an object; send a JSON object")
    return body


def _parse_json_body_slow(raw: bytes) -> dict:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidBody(f"body is not UTF-8 ({exc.reason} at byte {exc.start}); send UTF-8 encoded JSON") from None
    if not text.strip():
        raise InvalidBody("body is empty; send a JSON object (see the Segment HTTP Tracking API)")
    try:
        body = json.loads(text, parse_constant=_reject_constant, parse_float=_parse_float)
    except json.JSONDecodeError as exc:
        raise InvalidBody(
            f"body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); send a JSON object"
        ) from None
    except RecursionError:
        raise InvalidBody("body JSON is nested too deeply; flatten the event") from None
    except ValueError as exc:  # e.g. an integer past Python's 4300-digit limit
        raise InvalidBody(f"body has a number that cannot be stored ({exc}); send shorter numbers") from None
    if not isinstance(body, dict):
        raise InvalidBody(f"body is a JSON {type(body).__name__}, not an object; send a JSON object")
    if _SURROGATE_ESCAPE.search(text):
        try:
            dumps(body)
        except UnicodeEncodeError:
            raise InvalidBody(
                "body has an unpaired UTF-16 surrogate escape (\\ud800-\\udfff), which is not valid Unicode; "
                "send valid UTF-8 text"
            ) from None
    return body


def dumps(value: Any) -> bytes:
    """Compact one-line JSON; non-ASCII kept as UTF-8 so text round-trips unchanged."""
    try:
        return orjson.dumps(value)
    except TypeError:  # integers past 64 bits, which only the stdlib parser lets through
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def format_received_at(moment: datetime) -> str:
    """UTC ISO-8601 with milliseconds and ``Z``, e.g. ``2026-11-23T14:05:09.123Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _has_id(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        return value.strip() != ""
    return isinstance(value, (int, float))


def validate_event(event, implied_type: str | None = None) -> str:
    """Raise InvalidEvent unless ``event`` is a usable Segment message; return its type.

    The collector's hot path (every event): the common shapes (exact dicts and strings, as
    orjson returns them) are decided with class checks before the general ones.
    """
    if event.__class__ is not dict and not isinstance(event, dict):
        raise InvalidEvent(f"event is a JSON {type(event).__name__}, not an object")
    get = event.get
    etype = implied_type or get("type")
    if etype is None:
        raise InvalidEvent(f"event has no 'type'; set it to one of {', '.join(EVENT_TYPES)}")
    if etype not in EVENT_TYPES:
        raise InvalidEvent(f"event type {str(etype)[:40]!r} is not one of {', '.join(EVENT_TYPES)}")
    user_id = get("userId")
    if not (user_id.__class__ is str and user_id.strip()) and not _has_id(user_id) and not _has_id(get("anonymousId")):
        raise InvalidEvent("event has neither 'userId' nor 'anonymousId'; every Segment call needs one of them")
    if etype == "track":
        name = get("event")
        if not (isinstance(name, str) and name.strip()):
            raise InvalidEvent("track event has no 'event' name; set 'event' to e.g. \"Order Completed\"")
    elif etype == "group" and not _has_id(get("groupId")):
        raise InvalidEvent("group event has no 'groupId'; set it to the account/company id")
    elif etype == "alias" and not _has_id(get("previousId")):
        raise InvalidEvent("alias event has no 'previousId'; set it to the old user id")
    message_id = get("messageId")
    if message_id is not None and message_id.__class__ is not str and not isinstance(message_id, str):
        raise InvalidEvent("'messageId' must be a string; leave it out to have one assigned")
    for name in _OBJECT_FIELDS:
        value = get(name)
        if value is not None and value.__class__ is not dict and not isinstance(value, dict):
            raise InvalidEvent(f"'{name}' must be a JSON object, got {type(value).__name__}")
    for name in _TIME_FIELDS:
        value = get(name)
        if value is not None and value.__class__ is not str and not isinstance(value, str):
            raise InvalidEvent(f"'{name}' must be an ISO-8601 string, got {type(value).__name__}")
    return etype


def _merge_one_level(own: dict | None, shared: dict | None) -> dict | None:
    """Batch-level values fill gaps; the event's own keys win, one level deep."""
    if not shared:
        return own
    merged = dict(own or {})
    for key, value in shared.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(merged[key], dict) and isinstance(value, dict):
            merged[key] = {**value, **merged[key]}
    return merged


@dataclass(frozen=True)
class RequestInfo:
    """What the collector knows about one HTTP request, applied to each of its events."""

    source_id: str
    received_at: str
    client_ip: str
    context: dict | None = None
    integrations: dict | None = None
    sent_at: str | None = None


def enrich_event(event: dict, info: RequestInfo, implied_type: str | None = None) -> dict:
    """A copy of a validated event with the collector's fields set; input is not mutated."""
    out = dict(event)
    out.pop("writeKey", None)
    out.pop(PLAN_VERDICT_KEY, None)
    if implied_type:
        out["type"] = implied_type
    context = out.get("context")
    if info.context:
        context = _merge_one_level(context, info.context)
    if not context:
        context = {"ip": info.client_ip}
    elif not context.get("ip"):
        context = {**context, "ip": info.client_ip}
    out["context"] = context
    if info.integrations:
        out["integrations"] = _merge_one_level(out.get("integrations"), info.integrations)
    if info.sent_at is not None and out.get("sentAt") is None:
        out["sentAt"] = info.sent_at
    if not out.get("messageId"):
        out["messageId"] = str(uuid.uuid4())
    out["receivedAt"] = info.received_at
    out["sourceId"] = info.source_id
    return out


def quarantine_record(event, reason: str, info: RequestInfo) -> dict:
    """The visible trace of a refused event: why, when, from which source, and the event itself."""
    original = event
    if isinstance(event, dict) and "writeKey" in event:
        original = {k: v for k, v in event.items() if k != "writeKey"}
    return {"reason": reason, "receivedAt": info.received_at, "sourceId": info.source_id, "event": original}


class EventPolicy(Protocol):
    """What happens to an event between enrichment and storage (trackway.plan.privacy.Privacy).

    ``process`` gets a valid, enriched event and returns (the event to store, None) or
    (None, why it is dropped); ``scrub`` gets a refused event and returns what the quarantine
    may keep. Neither may mutate what it is given.
    """

    def process(self, event: dict, source: str) -> tuple[dict | None, str | None]: ...

    def scrub(self, event: Any, source: str) -> Any: ...


class BoundPolicy(Protocol):
    """``Privacy.bind(source)``: ``process`` for one request's events, its rules looked up once."""

    def __call__(self, event: dict) -> tuple[dict | None, str | None]: ...


def process_event(
    event,
    info: RequestInfo,
    implied_type: str | None = None,
    max_event_bytes: int = MAX_EVENT_BYTES,
    policy: EventPolicy | None = None,
) -> bytes | str:
    """Validate, enrich and serialise one event; raise InvalidEvent with the reason.

    With a ``policy``, a str is returned instead of a line when the policy drops the event: why.
    """
    validate_event(event, implied_type)
    enriched: dict | None = enrich_event(event, info, implied_type)
    if policy is not None:
        enriched, dropped = policy.process(enriched, info.source_id)  # type: ignore[arg-type]
        if enriched is None:
            return dropped or "dropped"
    line = dumps(enriched)
    if len(line) > max_event_bytes:
        raise EventTooLarge(
            f"event is {len(line)} bytes; the limit is {max_event_bytes} bytes per event "
            "(TRACKWAY_MAX_EVENT_BYTES, Segment's 32 KB)"
        )
    return line


class EventTooLarge(InvalidEvent):
    """An event over the per-event size limit (413 when it is the request's only event)."""


@dataclass
class CheckedBatch:
    """The outcome of checking a batch's events: lines to store and the refused events' reasons."""

    lines: list[bytes] = field(default_factory=list)  # enriched events, one JSON line each
    quarantine: list[bytes] = field(default_factory=list)  # quarantine records, one JSON line each
    errors: list[dict] = field(default_factory=list)  # {"index", "reason"} per refused event
    too_large: int = 0  # how many of the refused events were over the size limit
    # Tracking plan (trackway.plan.hook): violating events listed for the response, and how many
    # valid events block mode moved to the quarantine (their records are in ``quarantine``).
    violations: list[dict] = field(default_factory=list)
    plan_blocked: int = 0
    # Valid events the privacy policy dropped before storage (consent, sampling): index -> why.
    dropped: dict[int, str] = field(default_factory=dict)
    # Erasure requests (collector/suppression.py): events of suppressed subjects dropped, answered as stored.
    suppressed: int = 0


def check_events(
    events: list,
    info: RequestInfo,
    max_event_bytes: int = MAX_EVENT_BYTES,
    implied_type: str | None = None,
    policy: EventPolicy | None = None,
) -> CheckedBatch:
    """The one place events are checked before they are spooled (batches and single-event calls alike).

    Each event is validated and enriched, then the privacy ``policy`` (if any) pseudonymises,
    truncates or drops; a refused one becomes a quarantine record with its reason, scrubbed by
    the same policy. Further per-event checks (e.g. a tracking plan) belong here, so every
    endpoint applies them.

    The same steps as ``process_event`` for each event, in one loop: the policy is bound to the
    request once (its rules, key and sample for this source), not looked up again per event.
    """
    out = CheckedBatch()
    lines = out.lines
    bind = getattr(policy, "bind", None)
    process = bind(info.source_id) if bind is not None else None
    for index, event in enumerate(events):
        try:
            validate_event(event, implied_type)
            enriched: dict | None = enrich_event(event, info, implied_type)
            if process is not None:
                enriched, dropped = process(enriched)
            elif policy is not None:
                enriched, dropped = policy.process(enriched, info.source_id)  # type: ignore[arg-type]
            if enriched is None:
                out.dropped[index] = dropped or "dropped"
                continue
            try:
                line = _orjson_dumps(enriched)
            except TypeError:  # integers past 64 bits: dumps' fallback
                line = dumps(enriched)
            if len(line) > max_event_bytes:
                raise EventTooLarge(
                    f"event is {len(line)} bytes; the limit is {max_event_bytes} bytes per event "
                    "(TRACKWAY_MAX_EVENT_BYTES, Segment's 32 KB)"
                )
        except InvalidEvent as exc:
            out.errors.append({"index": index, "reason": str(exc)})
            kept = event if policy is None else policy.scrub(event, info.source_id)
            out.quarantine.append(dumps(quarantine_record(kept, str(exc), info)))
            out.too_large += isinstance(exc, EventTooLarge)
            continue
        lines.append(line)
    return out


def batch_level(body: dict) -> tuple[dict | None, dict | None, str | None]:
    """Batch-wide context, integrations and sentAt, checked; raise InvalidBody if malformed."""
    context, integrations, sent_at = body.get("context"), body.get("integrations"), body.get("sentAt")
    if context is not None and not isinstance(context, dict):
        raise InvalidBody("batch-level 'context' must be a JSON object")
    if integrations is not None and not isinstance(integrations, dict):
        raise InvalidBody("batch-level 'integrations' must be a JSON object")
    if sent_at is not None and not isinstance(sent_at, str):
        raise InvalidBody("batch-level 'sentAt' must be an ISO-8601 string")
    return context, integrations, sent_at
