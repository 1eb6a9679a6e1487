"""A tracking plan of a real company's size, for tests/test_plan_scale.py and benchmarks/bench_plan_import.py.

`write_segment_export` writes a Segment Protocols export (Public API ``rules``) of 600
events named the way real plans name them: spaces, capitals, punctuation, quotes,
backslashes, template braces, SQL keywords, names that differ only by case, 250-character
names, unicode. Five events have 200 properties; properties have nested objects, arrays
of objects, formats, patterns, enums with quotes, nullable types, minimums; some events
forbid extra properties and some have an older major version. `sample_messages` makes
Segment calls for such a plan: a valid one per event, a violating one for about half of
them (each kind the validator knows), unplanned events and unknown versions.

Deterministic for a given seed, so a failure can be replayed.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

from trackway.plan.model import EventSpec, Plan

EVENTS = 600
WIDE_EVENTS = 5
WIDE_PROPERTIES = 200

_OBJECTS = [
    "Product",
    "Cart",
    "Checkout Step",
    "Order",
    "Coupon",
    "Wishlist",
    "Search",
    "Video",
    "Promo",
    "Account",
    "Subscription",
    "Invoice",
    "Support Ticket",
    "App",
    "Push Notification",
    "Referral",
    "Table",
    "Group",
    "User",
    "Select",
]
_ACTIONS = ["Viewed", "Clicked", "Added", "Removed", "Completed", "Started", "Failed", "Shared", "Updated", "Opened"]
_STYLES = [
    lambda o, a: f"{o} {a}",
    lambda o, a: f"{o.lower()}_{a.lower()}".replace(" ", "_"),
    lambda o, a: f"{o.upper()} {a.upper()}",
    lambda o, a: f"{o}: {a.upper()}",
    lambda o, a: f"[{o}] {a} (v2)",
    lambda o, a: f'{o} "{a}"',
    lambda o, a: f"{o}'s {a}",
    lambda o, a: f"select {o.lower()} from {a.lower()}",
    lambda o, a: f"{o} {a}; DROP TABLE analytics.events;--",
    lambda o, a: f"{o}/{a}?!",
    lambda o, a: f"{o}.{a}",
    lambda o, a: f"{o}\\{a}\\",
    lambda o, a: f"{o} {{{{ {a} }}}}",
    lambda o, a: f"{o} - {a} — web",
    lambda o, a: f"Événement {o} {a} ☕",
    lambda o, a: f" {o} {a} ",
    lambda o, a: f"{o} {a} " + "with a very long qualifier that product teams like to add " * 4,
]
# Exact names real plans have, SQL keywords included.
_FIXED_NAMES = ["Order", "Group", "select", "FROM", "Table Dropped", "user", "Order Completed", "order completed"]
_PROPS = [
    "Product ID",
    "productId",
    "product_id ",
    "orderTotal$",
    "utm.source",
    "% off",
    "Price (USD)",
    "SKU",
    "category/subcategory",
    "is-gift?",
    "Quantity",
    "currency",
    "coupon code",
    "revenue",
    "position",
    "user's choice",
    'the "best" one',
    "step#",
    "Ünïcödé name ☕",
    "select",
    "from",
    "order",
    "event_id",
    "context",
    "back\\slash",
    "{{ jinja }}",
    "$.path[0]",
    "/*comment*/",
    "a" * 300,
]
_FORMAT_VALUES = {
    "date": "2026-11-22",
    "date-time": "2026-11-22T10:15:00Z",
    "email": "ana@example.com",
    "uri": "https://shop.example/p?q=1",
    "uuid": "8d3f6a2e-1c4b-4e7a-9f10-2b3c4d5e6f70",
}


def event_names(count: int = EVENTS, seed: int = 16) -> list[str]:
    """``count`` distinct track event names in real companies' naming chaos."""
    rng = random.Random(seed)
    names = list(_FIXED_NAMES)
    seen = set(names)
    i = 0
    while len(names) < count:
        i += 1
        name = rng.choice(_STYLES)(rng.choice(_OBJECTS), rng.choice(_ACTIONS))
        if name in seen:
            name = f"{name} {i}"
        seen.add(name)
        names.append(name)
    return names[:count]


def _property_schema(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    kind = rng.choice(
        ["string", "string", "enum", "format", "pattern", "integer", "number", "boolean", "nullable"]
        + (["array", "objects", "object"] if depth == 0 else [])
    )
    schema: dict[str, Any]
    if kind == "string":
        schema = {"type": "string"}
    elif kind == "enum":
        schema = {"type": "string", "enum": ["o'k", 'say "hi"', "back\\", "{{ x }}", "plain"]}
    elif kind == "format":
        schema = {"type": "string", "format": rng.choice(sorted(_FORMAT_VALUES))}
    elif kind == "pattern":
        schema = {"type": "string", "pattern": "^[A-Z]{3}-[0-9]+$"}
    elif kind == "integer":
        schema = {"type": "integer", "minimum": 0}
    elif kind == "number":
        schema = {"type": "number"}
    elif kind == "boolean":
        schema = {"type": "boolean"}
    elif kind == "nullable":
        schema = {"type": ["string", "null"]}
    elif kind == "array":
        schema = {"type": "array", "items": {"type": "string"}}
    elif kind == "objects":
        schema = {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["sku"],
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
            },
        }
    else:
        schema = {
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": "string"}, "meta": _property_schema(rng, depth + 1)},
        }
    schema["description"] = f"a {kind} property"
    schema["privacy"] = rng.choice(["public", "internal", "pii"])
    return schema


def _payload_schema(rng: random.Random, count: int, wide: bool) -> dict[str, Any]:
    names = [f"{rng.choice(_PROPS)[:40]} {i}" for i in range(count)] if wide else rng.sample(_PROPS, count)
    props = {name: _property_schema(rng) for name in names}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": props,
        "required": sorted(rng.sample(names, min(len(names), rng.randint(0, 3)))),
    }
    if rng.random() < 0.2:
        schema["additionalProperties"] = False
    return schema


def segment_export(count: int = EVENTS, seed: int = 16) -> dict[str, Any]:
    """A Segment Protocols Public API export of ``count`` events (the last five: page, screen, identify, group, alias)."""
    rng = random.Random(seed)
    names = event_names(count - 5, seed)
    wide = set(rng.sample(range(len(names)), WIDE_EVENTS))
    rules: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        payload = _payload_schema(rng, WIDE_PROPERTIES if i in wide else rng.randint(3, 15), i in wide)
        major = 2 if rng.random() < 0.1 else 1
        rules.append(_rule("TRACK", name, major, payload, f"When {name} happens"))
        if major == 2:  # the previous major: a subset of the properties, nothing required
            older = {"type": "object", "properties": dict(list(payload["properties"].items())[:2])}
            rules.append(_rule("TRACK", name, 1, older, f"When {name} happened (v1)"))
    for etype in ("PAGE", "SCREEN", "IDENTIFY", "GROUP", "ALIAS"):
        rules.append(_rule(etype, "", 1, _payload_schema(rng, 4, False), f"Every {etype.lower()} call"))
    rules.append(
        {
            "type": "COMMON",
            "key": "",
            "version": 1,
            "jsonSchema": {
                "properties": {
                    "context": {
                        "type": "object",
                        "properties": {
                            "sessionId": {"type": "integer", "privacy": "internal"},
                            "app": {"type": "object", "privacy": "public"},
                        },
                    }
                }
            },
        }
    )
    return {"trackingPlan": {"name": "Large Co", "rules": rules}}


def _rule(rtype: str, key: str, version: int, payload: dict, description: str) -> dict[str, Any]:
    field = "traits" if rtype in ("IDENTIFY", "GROUP") else "properties"
    return {
        "type": rtype,
        "key": key,
        "version": version,
        "jsonSchema": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "description": description,
            "properties": {field: payload},
        },
    }


def write_segment_export(path: Path, count: int = EVENTS, seed: int = 16) -> Path:
    path.write_text(json.dumps(segment_export(count, seed), ensure_ascii=False, indent=1), encoding="utf-8")
    return path


# ---- messages


def valid_value(schema: dict[str, Any], rng: random.Random) -> Any:
    """A value the schema accepts (for the kinds _property_schema writes)."""
    types = schema.get("type")
    kind = types[0] if isinstance(types, list) else types
    if "enum" in schema:
        return rng.choice(schema["enum"])
    if kind == "string":
        if "format" in schema:
            return _FORMAT_VALUES[schema["format"]]
        if "pattern" in schema:
            return f"ABC-{rng.randint(1, 999)}"
        return rng.choice(["plain", "it's", 'a "quote"', "☕ ünï", "back\\slash", "{{ x }}"])
    if kind == "integer":
        return rng.randint(1, 10**6)
    if kind == "number":
        return round(rng.uniform(0, 1000), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        return [valid_value(schema["items"], rng) for _ in range(rng.randint(0, 3))]
    if kind == "object":
        return {k: valid_value(s, rng) for k, s in schema.get("properties", {}).items()}
    return "x"


def _broken(payload: dict[str, Any], schema: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """``payload`` with one thing wrong, chosen among what this schema can get wrong."""
    props: dict[str, dict] = schema.get("properties") or {}
    out = dict(payload)
    options = ["wrong_type"] if props else []
    if schema.get("required"):
        options.append("missing_required")
    if any("enum" in s for s in props.values()):
        options.append("not_in_enum")
    if any("format" in s for s in props.values()):
        options.append("bad_format")
    if any("pattern" in s or "minimum" in s for s in props.values()):
        options.append("invalid_value")
    if any(s.get("type") in ("array", "object") for s in props.values()):
        options.append("nested")
    if schema.get("additionalProperties") is False:
        options.append("unexpected_property")
    if not options:
        return out
    choice = rng.choice(options)
    if choice == "wrong_type":
        name = rng.choice(sorted(props))
        kind = props[name].get("type")
        out[name] = "not a number" if kind in ("integer", "number", "boolean", "array", "object") else 12345
    elif choice == "missing_required":
        out.pop(rng.choice(schema["required"]), None)
    elif choice == "not_in_enum":
        out[next(n for n, s in props.items() if "enum" in s)] = "not one of them"
    elif choice == "bad_format":
        out[next(n for n, s in props.items() if "format" in s)] = "2026-02-30 not a thing@"
    elif choice == "invalid_value":
        name = next(n for n, s in props.items() if "pattern" in s or "minimum" in s)
        out[name] = "lowercase-1" if "pattern" in props[name] else -5
    elif choice == "nested":
        name = next(n for n, s in props.items() if s.get("type") in ("array", "object"))
        out[name] = [{"qty": "two"}] if props[name]["type"] == "array" else {"meta": None}
    else:
        out["an unplanned 'extra'"] = True
    return out


def _message(event: EventSpec, payload: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": event.type,
        "messageId": str(uuid.UUID(int=rng.getrandbits(128))),
        "anonymousId": f"anon-{rng.randint(1, 50)}",
        "timestamp": "2026-11-22T10:00:00Z",
        "context": {"sessionId": 1795910400000, "library": {"name": "large-plan-test", "version": "1"}},
    }
    if event.type == "track":
        body["event"] = event.name
    elif event.type in ("page", "screen"):
        body["name"] = "Home"
    elif event.type == "group":
        body["groupId"] = "g-1"
    elif event.type == "alias":
        body["previousId"] = "anon-1"
        body["userId"] = "u-1"
    body[event.payload_field] = payload
    return body


def sample_messages(plan: Plan, seed: int = 16, unplanned: int = 20) -> list[dict[str, Any]]:
    """A valid message per planned event, a broken one for about half, unplanned events, unknown versions."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for event in plan.events:
        schema = event.current.schema
        payload = {k: valid_value(s, rng) for k, s in (schema.get("properties") or {}).items()}
        out.append(_message(event, payload, rng))
        if rng.random() < 0.5:
            out.append(_message(event, _broken(payload, schema, rng), rng))
        if event.previous and rng.random() < 0.5:  # an old client still on the previous major
            old = _message(event, {}, rng)
            old["context"]["protocols"] = {"event_version": event.previous[0].version.model}
            out.append(old)
    track = [e for e in plan.events if e.type == "track"]
    for i in range(unplanned):
        body = _message(track[i], {"what": i}, rng)
        body["event"] = f"Never Planned {i} ' \" ;--"
        out.append(body)
    for event in track[:5]:
        lost = _message(event, {}, rng)
        lost["context"]["protocols"] = {"event_version": "9-0-0"}  # a major the plan does not have
        out.append(lost)
    bad_context = _message(track[5], {}, rng)
    bad_context["context"]["sessionId"] = "not a number"
    out.append(bad_context)
    return out
