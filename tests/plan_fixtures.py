"""Tracking plan fixtures shared by tests and benchmarks: messy real-world exports, hostile names."""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

DEMO_PLAN = Path(__file__).resolve().parents[1] / "include" / "trackway" / "demo" / "plan"
# Vendor exports shaped as the vendors document them (Segment Public and Config API, a rudder-cli
# project, Iglu self-describing schemas), with the constructs real exports carry: Segment's "any"
# type, draft-04 and draft-07 forms, $ref into the export, variants, nullable enums.
PLAN_EXPORTS = Path(__file__).resolve().parent / "fixtures" / "plans"
SEGMENT_EXPORT = PLAN_EXPORTS / "segment" / "public-api-export.json"

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
]
_ACTIONS = ["Viewed", "Clicked", "Added", "Removed", "Completed", "Started", "Failed", "Shared", "Updated", "Opened"]
_STYLES = [
    lambda o, a: f"{o} {a}",
    lambda o, a: f"{o.lower()}_{a.lower()}".replace(" ", "_"),
    lambda o, a: f"{o}: {a.upper()}",
    lambda o, a: f"[{o}] {a} (v2)",
    lambda o, a: f"{o} - {a}!",
    lambda o, a: f"{o.replace(' ', '')}{a}",
    lambda o, a: f"{o} {a} — web",
    lambda o, a: f"Événement {o} {a}",
]
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
    "list_id",
    "Item Name",
    "user's choice",
    "step#",
    "Ünïcödé name",
]


def messy_event_names(count: int, seed: int = 8) -> list[str]:
    rng = random.Random(seed)
    names: list[str] = []
    seen: set[str] = set()
    i = 0
    while len(names) < count:
        i += 1
        name = rng.choice(_STYLES)(rng.choice(_OBJECTS), rng.choice(_ACTIONS))
        if name in seen:
            name = f"{name} {i}"
        seen.add(name)
        names.append(name)
    return names


def messy_segment_export(path: Path, count: int = 520, seed: int = 8) -> list[str]:
    """A Segment Public API tracking plan export of ``count`` track events in real companies' naming chaos."""
    rng = random.Random(seed)
    rules = []
    names = messy_event_names(count, seed)
    for name in names:
        props = {}
        for prop in rng.sample(_PROPS, rng.randint(2, 8)):
            kind = rng.choice(["string", "number", "integer", "boolean"])
            schema: dict = {"type": kind, "description": f"the {prop}"}
            if kind == "string" and rng.random() < 0.2:
                schema["enum"] = ["a", "b", "c"]
            props[prop] = schema
        required = rng.sample(sorted(props), rng.randint(0, min(2, len(props))))
        rules.append(
            {
                "type": "TRACK",
                "key": name,
                "version": rng.choice([1, 1, 1, 2]),
                "jsonSchema": {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "description": f"When {name} happens",
                    "properties": {
                        "properties": {"type": "object", "properties": props, "required": required},
                    },
                },
            }
        )
    rules.append(
        {
            "type": "COMMON",
            "key": "",
            "version": 1,
            "jsonSchema": {"properties": {"context": {"type": "object", "properties": {"app": {"type": "object"}}}}},
        }
    )
    path.write_text(json.dumps({"trackingPlan": {"name": "Messy Co", "rules": rules}}, indent=1), encoding="utf-8")
    return names


# Names that must survive into SQL safely: quotes, semicolons, backslashes, comments,
# 300 characters, unicode, SQL keywords, template syntax, JSON path syntax.
HOSTILE_EVENT = 'Robert\'); DROP TABLE analytics.events;-- "Viewed" \\ {{ 7*7 }} {% raw %} ☕ select'
HOSTILE_PROPS = [
    'it\'s "quoted"',
    "semi;colon -- comment",
    "back\\slash\\",
    "x" * 300,
    "Ünïcödé ☕ ключ",
    "select",
    "from",
    "$.path[0]",
    "sl/ash~tilde",
    "{{ jinja }}",
    "/*comment*/",
]


def write_plan(root: Path, events: list[dict], common: dict | None = None, conventions: dict | None = None) -> Path:
    (root / "events").mkdir(parents=True, exist_ok=True)
    (root / "plan.yaml").write_text(
        yaml.safe_dump({"name": "test", "conventions": conventions or {}}), encoding="utf-8"
    )
    if common is not None:
        (root / "common.yaml").write_text(yaml.safe_dump({"context": common}), encoding="utf-8")
    for i, event in enumerate(events):
        (root / "events" / f"e{i:03d}.yaml").write_text(yaml.safe_dump(event, allow_unicode=True), encoding="utf-8")
    return root


def hostile_plan(root: Path) -> Path:
    props = {
        name: {"type": "string", "privacy": "internal", "description": f"desc of {name}"} for name in HOSTILE_PROPS
    }
    props['it\'s "quoted"']["enum"] = ["o'k", "back\\", "{{ x }}", "semi;--"]
    props["back\\slash\\"] = {"type": "integer", "privacy": "internal"}
    props["select"] = {"type": "string", "format": "date", "privacy": "pii"}
    props["from"] = {"type": "number", "privacy": "public"}
    event = {
        "name": HOSTILE_EVENT,
        "type": "track",
        "description": "Hostile: it's {{ not jinja }} -- and /* not a comment */; $$ dollar $$",
        "owner": "qa'team",
        "status": "active",
        "version": "1-0-0",
        "properties": {"type": "object", "required": ['it\'s "quoted"', "x" * 300], "properties": props},
    }
    normal = {
        "name": "Order Completed",
        "type": "track",
        "description": "An order",
        "owner": "shop",
        "properties": {
            "type": "object",
            "required": ["order_id"],
            "additionalProperties": False,
            "properties": {
                "order_id": {"type": "string", "privacy": "public"},
                "total": {"type": "number", "privacy": "public"},
            },
        },
    }
    return write_plan(root, [event, normal])
