"""`trackway plan import`: bring a Segment Protocols, RudderStack rudder-cli or Snowplow
Iglu plan over as a Trackway plan folder, keeping every name byte for byte.

Nothing is renamed or dropped to satisfy Trackway's conventions: lint reports what
breaks them afterwards. JSON Schema keywords the source uses are copied as they are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trackway.plan import names
from trackway.plan.model import IMPLIED_NAMES, EventSpec, EventVersion, PlanError, SchemaVer, write_event

FORMATS = ("segment", "rudderstack", "iglu")


@dataclass
class Imported:
    events: list[EventSpec] = field(default_factory=list)
    common: dict[str, Any] | None = None
    name: str = "imported"
    warnings: list[str] = field(default_factory=list)


def _read_docs(source: Path, suffixes: tuple[str, ...]) -> Iterable[tuple[Path, Any]]:
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for path in files:
        if suffixes and path.suffix.lower() not in suffixes and source.is_dir():
            continue
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                for doc in yaml.safe_load_all(text):
                    yield path, doc
            else:
                yield path, json.loads(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise PlanError(f"{path}: cannot be parsed ({exc}); is it a plan export?") from None


def _versioned(found: dict[tuple[str, str], list[tuple[SchemaVer, dict, dict]]]) -> list[EventSpec]:
    """Newest version becomes the event, older ones its previous_versions."""
    events = []
    for (etype, name), versions in found.items():
        versions.sort(key=lambda v: v[0], reverse=True)
        (version, schema, meta), older = versions[0], versions[1:]
        events.append(
            EventSpec(
                name=name,
                type=etype,
                description=str(meta.get("description") or ""),
                owner=str(meta.get("owner") or ""),
                status=str(meta.get("status") or "active"),
                current=EventVersion(version, schema),
                previous=tuple(EventVersion(v, s) for v, s, _ in older),
            )
        )
    return events


# ---- Segment Protocols


def _segment_payload(json_schema: dict, field_name: str) -> dict:
    props = (json_schema.get("properties") or {}).get(field_name)
    return dict(props) if isinstance(props, dict) else {"type": "object"}


def import_segment(source: Path) -> Imported:
    """Public API `rules: [{type, key, version, jsonSchema}]` or Config API `rules: {events, identify, group, global}`."""
    out = Imported()
    found: dict[tuple[str, str], list[tuple[SchemaVer, dict, dict]]] = {}
    for path, doc in _read_docs(source, (".json", ".yaml", ".yml")):
        plan = doc.get("trackingPlan", doc.get("tracking_plan", doc)) if isinstance(doc, dict) else {"rules": doc}
        if isinstance(plan, dict):
            out.name = str(plan.get("name") or plan.get("display_name") or out.name)
        rules = plan.get("rules") if isinstance(plan, dict) else None
        if isinstance(rules, list):  # Public API
            for rule in rules:
                rtype = str(rule.get("type", "")).lower()
                schema = rule.get("jsonSchema") or {}
                if rtype == "common":
                    out.common = _segment_payload(schema, "context")
                    continue
                if rtype not in IMPLIED_NAMES and rtype != "track":
                    out.warnings.append(f"{path}: rule type {rule.get('type')!r} skipped (not an event type)")
                    continue
                field_name = "traits" if rtype in ("identify", "group") else "properties"
                name = str(rule.get("key") or IMPLIED_NAMES.get(rtype, rtype))
                meta = {"description": schema.get("description") or rule.get("description") or ""}
                version = SchemaVer.parse(rule.get("version") or 1, f"{path}: {name} version")
                found.setdefault((rtype, name), []).append((version, _segment_payload(schema, field_name), meta))
        elif isinstance(rules, dict):  # Config API
            for event in rules.get("events") or []:
                schema = event.get("rules") or {}
                name = str(event["name"])
                meta = {"description": event.get("description") or schema.get("description") or ""}
                version = SchemaVer.parse(event.get("version") or 1, f"{path}: {name} version")
                found.setdefault(("track", name), []).append((version, _segment_payload(schema, "properties"), meta))
            for rtype in ("identify", "group"):
                schema = rules.get(rtype)
                if isinstance(schema, dict) and schema:
                    found.setdefault((rtype, IMPLIED_NAMES[rtype]), []).append(
                        (
                            SchemaVer(1, 0, 0),
                            _segment_payload(schema, "traits"),
                            {"description": schema.get("description", "")},
                        )
                    )
            if isinstance(rules.get("global"), dict):
                out.common = _segment_payload(rules["global"], "context")
        else:
            raise PlanError(f"{path}: no 'rules' found; export the plan with the Segment Public or Config API")
    out.events = _versioned(found)
    return out


# ---- RudderStack rudder-cli


_REF = re.compile(r"^#(?:/(?P<kind>[a-z-]+)/(?P<group>[^/]+)/(?P<id>.+)|(?P<kind2>[a-z-]+):(?P<id2>.+))$")
_RUDDER_KEYWORDS = {
    "min_length": "minLength",
    "max_length": "maxLength",
    "multiple_of": "multipleOf",
    "exclusive_minimum": "exclusiveMinimum",
    "exclusive_maximum": "exclusiveMaximum",
    "min_items": "minItems",
    "max_items": "maxItems",
    "unique_items": "uniqueItems",
}


def _ref_id(value: Any) -> tuple[str, str]:
    ref = value.get("$ref") if isinstance(value, dict) else value
    match = _REF.match(str(ref or ""))
    if not match:
        raise PlanError(f"reference {ref!r} is neither '#/kind/group/id' nor '#kind:id'")
    kind = match["kind"] or match["kind2"]
    return kind.rstrip("s"), match["id"] or match["id2"]


def import_rudderstack(source: Path) -> Imported:
    out = Imported()
    props: dict[str, dict] = {}
    events: dict[str, dict] = {}
    custom: dict[str, dict] = {}
    plans: list[dict] = []
    for path, doc in _read_docs(source, (".yaml", ".yml")):
        if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith("rudder/"):
            continue
        kind, spec = doc.get("kind"), doc.get("spec") or {}
        if kind == "properties":
            props.update({str(p["id"]): p for p in spec.get("properties") or []})
        elif kind == "events":
            events.update({str(e["id"]): e for e in spec.get("events") or []})
        elif kind == "custom-types":
            custom.update({str(t["id"]): t for t in spec.get("types") or []})
        elif kind in ("tracking-plan", "tp"):
            plans.append(spec)
        elif kind != "categories":
            out.warnings.append(f"{path}: kind {kind!r} skipped")
    if not plans:
        raise PlanError(
            f"{source}: no 'kind: tracking-plan' file found; point --from rudderstack at the rudder-cli project"
        )

    def type_schema(type_value: Any, config: dict | None) -> dict:
        schema: dict[str, Any] = {}
        if isinstance(type_value, str) and type_value.startswith("#"):
            _, cid = _ref_id(type_value)
            ctype = custom.get(cid)
            if ctype is None:
                raise PlanError(f"custom type {cid!r} is referenced but not defined")
            schema = type_schema(ctype.get("type"), ctype.get("config"))
            if ctype.get("properties"):
                schema.update(object_schema(ctype["properties"]))
            schema.setdefault("description", ctype.get("description") or "")
            schema["x-custom-type"] = ctype.get("name", cid)
        elif isinstance(type_value, list):
            schema["type"] = [str(t) for t in type_value]
        elif isinstance(type_value, str) and type_value:
            kinds = [t.strip() for t in type_value.split(",") if t.strip()]
            schema["type"] = kinds[0] if len(kinds) == 1 else kinds
        for key, value in (config or {}).items():
            if key in ("item_types", "itemTypes"):
                schema["items"] = {"type": value}
            else:
                schema[_RUDDER_KEYWORDS.get(key, key)] = value
        return schema

    def object_schema(rule_props: list) -> dict:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for item in rule_props or []:
            _, pid = _ref_id(item.get("property") or item.get("$ref") or item)
            prop = props.get(pid)
            if prop is None:
                raise PlanError(f"property {pid!r} is referenced but not defined in a 'kind: properties' file")
            name = str(prop.get("name") or pid)
            schema = type_schema(prop.get("type") or prop.get("types"), prop.get("config") or prop.get("propConfig"))
            if prop.get("description"):
                schema["description"] = prop["description"]
            if item.get("properties"):
                schema.update(object_schema(item["properties"]))
            properties[name] = schema
            if item.get("required"):
                required.append(name)
        out_schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            out_schema["required"] = required
        return out_schema

    found: dict[tuple[str, str], list[tuple[SchemaVer, dict, dict]]] = {}
    for plan in plans:
        out.name = str(plan.get("display_name") or plan.get("id") or out.name)
        for rule in plan.get("rules") or []:
            if rule.get("type", "event_rule") != "event_rule":
                continue
            event_ref = rule.get("event")
            _, eid = _ref_id(event_ref)
            event = events.get(eid)
            if event is None:
                raise PlanError(f"event {eid!r} is referenced by rule {rule.get('id')!r} but not defined")
            etype = str(event.get("event_type") or "track").lower()
            name = str(event.get("name") or IMPLIED_NAMES.get(etype, eid))
            schema = object_schema(rule.get("properties") or [])
            allow = rule.get(
                "additional_properties",
                (event_ref or {}).get("allow_unplanned") if isinstance(event_ref, dict) else None,
            )
            if allow is False:
                schema["additionalProperties"] = False
            found.setdefault((etype, name), []).append(
                (SchemaVer(1, 0, 0), schema, {"description": event.get("description", "")})
            )
    out.events = _versioned(found)
    return out


# ---- Snowplow Iglu


def import_iglu(source: Path) -> Imported:
    out = Imported()
    found: dict[tuple[str, str], list[tuple[SchemaVer, dict, dict]]] = {}
    for path, doc in _read_docs(source, ()):
        if not isinstance(doc, dict) or not isinstance(doc.get("self"), dict):
            continue
        me = doc["self"]
        name = str(me.get("name"))
        version = SchemaVer.parse(me.get("version"), f"{path}: self.version")
        schema = {k: v for k, v in doc.items() if k not in ("self", "$schema")}
        meta = {"description": doc.get("description", ""), "owner": me.get("vendor", "")}
        found.setdefault(("track", name), []).append((version, schema, meta))
    if not found:
        raise PlanError(f"{source}: no self-describing schema (with a 'self' section) found")
    out.events = _versioned(found)
    return out


def import_plan(fmt: str, source: Path, target: Path) -> Imported:
    """Read ``source`` in ``fmt`` and write a plan folder at ``target``."""
    readers = {"segment": import_segment, "rudderstack": import_rudderstack, "iglu": import_iglu}
    if fmt not in readers:
        raise PlanError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not source.exists():
        raise PlanError(f"{source} does not exist")
    imported = readers[fmt](source)
    if (target / "events").exists() and any((target / "events").iterdir()):
        raise PlanError(f"{target}/events is not empty; import into a new folder and diff the two")
    target.mkdir(parents=True, exist_ok=True)
    (target / "plan.yaml").write_text(
        yaml.safe_dump({"name": imported.name, "imported_from": fmt}, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    if imported.common:
        (target / "common.yaml").write_text(
            yaml.safe_dump({"context": imported.common}, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
    stems: set[str] = set()
    for event in imported.events:
        stem = (
            f"{event.type}__{names.relation_name(event.name)}"
            if event.type != "track"
            else names.relation_name(event.name)
        )
        if stem in stems:
            stem = f"{stem}_{names.hash8(event.type + event.name)}"
        stems.add(stem)
        write_event(target, event, stem)
    return imported
