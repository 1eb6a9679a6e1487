"""`trackway plan import`: bring a Segment Protocols, RudderStack rudder-cli or Snowplow
Iglu plan over as a Trackway plan folder, keeping every name byte for byte.

Nothing is renamed or dropped to satisfy Trackway's conventions: lint reports what
breaks them afterwards. The vendors' JSON Schema is translated into the plan's dialect
(``plan.translate``: Segment's ``any`` type, draft-04 and draft-07 forms, ``$ref`` into
the export ...); what has no equivalent is kept as an ``x-<vendor>-...`` annotation. Every
schema written is then checked as the collector will compile it, so an imported plan
starts the collector or the import fails naming the file and the property.
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
from trackway.plan.schema import SchemaProblem, schema_problems
from trackway.plan.translate import Note, Translator

FORMATS = ("segment", "rudderstack", "iglu")
MAX_REPORTED_PROBLEMS = 20


@dataclass
class Imported:
    events: list[EventSpec] = field(default_factory=list)
    common: dict[str, Any] | None = None
    name: str = "imported"
    warnings: list[str] = field(default_factory=list)
    notes: list[tuple[str, Note]] = field(default_factory=list)  # (file: event ..., what was translated)
    sources: dict[tuple[str, str], Path] = field(default_factory=dict)  # event key -> the file it came from
    common_source: Path | None = None

    @property
    def kept(self) -> list[str]:
        """Constructs that could not be translated and are only annotations now, one line each."""
        return [f"{where}: {_at(note)}{note.message}" for where, note in self.notes if note.kept]

    def translated(self) -> dict[str, int]:
        """How many constructs of each kind were translated (``any`` type, inlined ``$ref`` ...)."""
        counts: dict[str, int] = {}
        for _, note in self.notes:
            if not note.kept:
                counts[note.code] = counts.get(note.code, 0) + 1
        return counts


def _at(note: Note) -> str:
    where = SchemaProblem(note.pointer, "").where
    return f"{where}: " if where else ""


@dataclass
class _Found:
    version: SchemaVer
    schema: dict
    description: str = ""
    owner: str = ""
    source: Path | None = None


def _read_docs(source: Path, suffixes: tuple[str, ...]) -> Iterable[tuple[Path, Any]]:
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for path in files:
        if suffixes and path.suffix.lower() not in suffixes and source.is_dir():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise PlanError(f"{path}: not UTF-8 text; is it a plan export?") from None
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                for doc in yaml.safe_load_all(text):
                    yield path, doc
            else:
                yield path, json.loads(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise PlanError(f"{path}: cannot be parsed ({exc}); is it a plan export?") from None


def _draft(doc: Any, default: int) -> int:
    """The JSON Schema draft a document is written in, from its $schema."""
    uri = str(doc.get("$schema") or "") if isinstance(doc, dict) else ""
    for marker, draft in (("draft-03", 3), ("draft-04", 4), ("draft-06", 6), ("draft-07", 7)):
        if marker in uri:
            return draft
    if "2019-09" in uri:
        return 2019
    if "2020-12" in uri:
        return 2020
    return default


def _versioned(found: dict[tuple[str, str], list[_Found]], out: Imported) -> list[EventSpec]:
    """Newest version becomes the event, the newest of each older major its previous_versions.

    The collector picks a schema by major (SchemaVer MODEL): 1-0-1 supersedes 1-0-0, which
    clients of model 1 are no longer checked against.
    """
    events = []
    for (etype, name), found_versions in found.items():
        versions: list[_Found] = []
        for candidate in sorted(found_versions, key=lambda v: v.version, reverse=True):
            kept = next((v for v in versions if v.version.model == candidate.version.model), None)
            if kept is None:
                versions.append(candidate)
            else:
                out.warnings.append(
                    f"{candidate.source}: {etype} '{name}' version {candidate.version} left out: "
                    f"{kept.version} of the same model supersedes it"
                )
        newest, older = versions[0], versions[1:]
        if newest.source is not None:
            out.sources[(etype, name)] = newest.source
        events.append(
            EventSpec(
                name=name,
                type=etype,
                description=newest.description,
                owner=newest.owner,
                status="active",
                current=EventVersion(newest.version, newest.schema),
                previous=tuple(EventVersion(v.version, v.schema) for v in older),
            )
        )
    return events


def _event_name(etype: str, key: Any, path: Path, out: Imported) -> str:
    """The plan name of an event: the key for track; for the others, the name analytics.events gives them."""
    if etype == "track":
        return str(key or "")
    implied = IMPLIED_NAMES[etype]
    if key and str(key) != implied:
        out.warnings.append(f"{path}: {etype} rule {key!r} is checked as every {etype} call ('{implied}')")
    return implied


# ---- Segment Protocols

SEGMENT_FIELDS = ("properties", "traits", "context")
_RULE_KEYWORDS = (
    "properties",
    "required",
    "additionalProperties",
    "patternProperties",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "$ref",
    "enum",
    "const",
    "minProperties",
    "maxProperties",
)


def _has_rules(schema: Any) -> bool:
    return isinstance(schema, dict) and any(schema.get(k) not in (None, {}, []) for k in _RULE_KEYWORDS)


def _segment_rule(path: Path, where: str, json_schema: Any, field_name: str, out: Imported) -> dict:
    """The translated payload schema of one Segment rule (``properties.<field_name>`` of its jsonSchema).

    Rules the same jsonSchema puts on the event's other fields (a track event's context,
    say) cannot be checked per event in Trackway: they are kept as annotations.
    """
    json_schema = json_schema if isinstance(json_schema, dict) else {}
    fields = json_schema.get("properties") if isinstance(json_schema.get("properties"), dict) else {}
    translator = Translator("segment", json_schema, draft=_draft(json_schema, 7))
    raw = fields.get(field_name)
    payload = translator.translate(raw) if raw is not None else {"type": "object"}
    if not isinstance(payload, dict):
        payload = {"type": "object"} if payload is True else {"not": {}}
    for other in SEGMENT_FIELDS:
        if other != field_name and _has_rules(fields.get(other)):
            payload[f"x-segment-{other}"] = fields[other]
            translator.notes.append(
                Note(
                    "other-field",
                    (),
                    f"the rule also constrains the event's {other}: kept as x-segment-{other}, not checked "
                    "(Trackway checks each event's properties or traits, and common.yaml's context for all events)",
                    kept=True,
                )
            )
    labels = json_schema.get("labels")
    if isinstance(labels, dict) and labels:
        payload["x-segment-labels"] = labels
    out.notes += [(where, note) for note in translator.notes]
    return payload


def _segment_common(path: Path, json_schema: Any, out: Imported) -> dict:
    context = _segment_rule(path, f"{path}: common rule", json_schema, "context", out)
    root_required = [r for r in (json_schema or {}).get("required") or [] if r != "context"]
    if root_required:
        context["x-segment-required"] = root_required
        out.notes.append(
            (
                f"{path}: common rule",
                Note(
                    "other-field",
                    (),
                    f"required top-level fields {', '.join(map(str, root_required))}: kept as x-segment-required, "
                    "not checked (the collector's Segment rules already require an anonymousId or userId)",
                    kept=True,
                ),
            )
        )
    out.common_source = path
    return context


def import_segment(source: Path) -> Imported:
    """Public API `rules: [{type, key, version, jsonSchema}]` or Config API `rules: {events, identify, group, global}`."""
    out = Imported()
    found: dict[tuple[str, str], list[_Found]] = {}

    def add(path: Path, etype: str, name: str, version: SchemaVer, schema: Any, field_name: str, text: str) -> None:
        payload = _segment_rule(path, f"{path}: {etype} '{name}' version {version}", schema, field_name, out)
        found.setdefault((etype, name), []).append(_Found(version, payload, text, source=path))

    for path, raw in _read_docs(source, (".json", ".yaml", ".yml")):
        # A Public API response as it comes: {"data": {"trackingPlan": ...}}
        doc = raw["data"] if isinstance(raw, dict) and isinstance(raw.get("data"), dict) else raw
        plan = doc.get("trackingPlan", doc.get("tracking_plan", doc)) if isinstance(doc, dict) else {"rules": doc}
        if isinstance(plan, dict):  # Config API: name is a resource path, display_name the plan's name
            out.name = str(plan.get("display_name") or plan.get("name") or out.name)
        rules = plan.get("rules") if isinstance(plan, dict) else None
        if isinstance(rules, list):  # Public API
            for rule in rules:
                rtype = str(rule.get("type", "")).lower()
                schema = rule.get("jsonSchema") or {}
                if rtype == "common":
                    out.common = _segment_common(path, schema, out)
                    continue
                if rtype not in IMPLIED_NAMES and rtype != "track":
                    out.warnings.append(f"{path}: rule type {rule.get('type')!r} skipped (not an event type)")
                    continue
                field_name = "traits" if rtype in ("identify", "group") else "properties"
                name = _event_name(rtype, rule.get("key"), path, out)
                text = str(schema.get("description") or rule.get("description") or "")
                version = SchemaVer.parse(rule.get("version") or 1, f"{path}: {name} version")
                add(path, rtype, name, version, schema, field_name, text)
        elif isinstance(rules, dict):  # Config API
            for event in rules.get("events") or []:
                schema = event.get("rules") or {}
                name = str(event["name"])
                text = str(event.get("description") or schema.get("description") or "")
                version = SchemaVer.parse(event.get("version") or 1, f"{path}: {name} version")
                add(path, "track", name, version, schema, "properties", text)
            for rtype in ("identify", "group"):
                schema = rules.get(rtype)
                if isinstance(schema, dict) and schema:
                    text = str(schema.get("description", ""))
                    add(path, rtype, IMPLIED_NAMES[rtype], SchemaVer(1, 0, 0), schema, "traits", text)
            if isinstance(rules.get("global"), dict) and rules["global"]:
                out.common = _segment_common(path, rules["global"], out)
            for key in ("identify_traits", "group_traits"):
                if rules.get(key):
                    out.warnings.append(f"{path}: rules.{key} skipped; the identify and group rules are imported")
        else:
            raise PlanError(f"{path}: no 'rules' found; export the plan with the Segment Public or Config API")
    out.events = _versioned(found, out)
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
    "additional_properties": "additionalProperties",
}
_ITEM_TYPES = ("item_types", "itemTypes", "item_type", "itemType")


def _ref_id(value: Any) -> tuple[str, str]:
    ref = value.get("$ref") if isinstance(value, dict) else value
    match = _REF.match(str(ref or ""))
    if not match:
        raise PlanError(f"reference {ref!r} is neither '#/kind/group/id' nor '#kind:id'")
    kind = match["kind"] or match["kind2"]
    return kind.rstrip("s"), match["id"] or match["id2"]


class _RudderCatalog:
    """The properties, events and custom types of a rudder-cli project, turned into JSON Schema."""

    def __init__(self) -> None:
        self.props: dict[str, dict] = {}
        self.events: dict[str, dict] = {}
        self.custom: dict[str, dict] = {}

    def type_schema(self, type_value: Any, config: dict | None) -> dict:
        """A property's ``type``/``types`` with its ``config``; no type at all means any value (rudder-cli's empty type)."""
        schema: dict[str, Any] = {}
        if isinstance(type_value, str) and type_value.startswith("#"):
            _, cid = _ref_id(type_value)
            ctype = self.custom.get(cid)
            if ctype is None:
                raise PlanError(f"custom type {cid!r} is referenced but not defined")
            schema = self.type_schema(ctype.get("type"), ctype.get("config"))
            if ctype.get("properties"):
                schema.update(self.object_schema(ctype["properties"]))
            if ctype.get("variants"):
                self.apply_variants(schema, ctype["variants"])
            schema.setdefault("description", ctype.get("description") or "")
            schema["x-custom-type"] = ctype.get("name", cid)
        elif isinstance(type_value, list):
            schema["type"] = [str(t) for t in type_value]
        elif isinstance(type_value, str) and type_value.strip():
            kinds = [t.strip() for t in type_value.split(",") if t.strip()]
            schema["type"] = kinds[0] if len(kinds) == 1 else kinds
        for key, value in (config or {}).items():
            if key in _ITEM_TYPES:
                schema["items"] = self.items_schema(value if isinstance(value, list) else [value])
            else:
                schema[_RUDDER_KEYWORDS.get(key, key)] = value
        return schema

    def items_schema(self, item_types: list) -> dict:
        """``item_types: [string, number]`` or ``[#custom-type:address]`` as the array's ``items``."""
        primitives = [str(t) for t in item_types if not str(t).startswith("#")]
        options = [self.type_schema(t, None) for t in item_types if str(t).startswith("#")]
        if primitives:
            options.append({"type": primitives})
        return options[0] if len(options) == 1 else {"anyOf": options}

    def property_schema(self, prop: dict) -> dict:
        type_value = prop.get("types") if prop.get("types") else prop.get("type")
        schema = self.type_schema(type_value, prop.get("config") or prop.get("propConfig"))
        for key in _ITEM_TYPES:  # rudder/v1 keeps the item types beside the type
            if prop.get(key):
                value = prop[key]
                schema["items"] = self.items_schema(value if isinstance(value, list) else [value])
        if prop.get("description"):
            schema["description"] = prop["description"]
        return schema

    def prop(self, ref: Any) -> dict:
        _, pid = _ref_id(ref)
        prop = self.props.get(pid)
        if prop is None:
            raise PlanError(f"property {pid!r} is referenced but not defined in a 'kind: properties' file")
        return prop

    def object_schema(self, rule_props: list) -> dict:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for item in rule_props or []:
            prop = self.prop(item.get("property") or item.get("$ref") or item)
            name = str(prop.get("name") or prop.get("id"))
            schema = self.property_schema(prop)
            if item.get("properties"):
                schema.update(self.object_schema(item["properties"]))
            properties[name] = schema
            if item.get("required"):
                required.append(name)
        out: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            out["required"] = required
        return out

    def apply_variants(self, schema: dict, variants: list) -> None:
        """Discriminator variants as ``if``/``then``/``else``: a case's properties apply when the
        discriminator has one of its values, the default's when it has none of them.

        Case properties are also listed at the top (optional there) so that
        ``additionalProperties: false`` lets them through and typed views have their columns.
        """
        top = schema.setdefault("properties", {})
        branches = schema.setdefault("allOf", [])
        for variant in variants or []:
            if str(variant.get("type", "discriminator")) != "discriminator":
                raise PlanError(f"variant type {variant.get('type')!r} is not supported (only 'discriminator')")
            disc = str(self.prop(variant.get("discriminator")).get("name"))
            matched: list[Any] = []
            for case in variant.get("cases") or []:
                values = list(case.get("match") or [])
                matched += values
                then = {k: v for k, v in self.object_schema(case.get("properties") or []).items() if k != "type"}
                for name, sub in then["properties"].items():
                    top.setdefault(name, sub)
                branch: dict[str, Any] = {
                    "if": {"properties": {disc: {"enum": values}}, "required": [disc]},
                    "then": then,
                }
                if case.get("display_name") or case.get("description"):
                    branch["description"] = str(case.get("description") or case.get("display_name"))
                branches.append(branch)
            default = variant.get("default")
            default_props = default.get("properties") if isinstance(default, dict) else default
            if default_props:
                otherwise = {k: v for k, v in self.object_schema(default_props).items() if k != "type"}
                for name, sub in otherwise["properties"].items():
                    top.setdefault(name, sub)
                branches.append(
                    {"if": {"properties": {disc: {"enum": matched}}, "required": [disc]}, "else": otherwise}
                )


def import_rudderstack(source: Path) -> Imported:
    out = Imported()
    catalog = _RudderCatalog()
    plans: list[tuple[Path, dict]] = []
    for path, doc in _read_docs(source, (".yaml", ".yml")):
        if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith("rudder/"):
            continue
        kind, spec = doc.get("kind"), doc.get("spec") or {}
        if kind == "properties":
            catalog.props.update({str(p["id"]): p for p in spec.get("properties") or []})
        elif kind == "events":
            catalog.events.update({str(e["id"]): e for e in spec.get("events") or []})
        elif kind == "custom-types":
            catalog.custom.update({str(t["id"]): t for t in spec.get("types") or []})
        elif kind in ("tracking-plan", "tp"):
            plans.append((path, spec))
        elif kind != "categories":
            out.warnings.append(f"{path}: kind {kind!r} skipped")
    if not plans:
        raise PlanError(
            f"{source}: no 'kind: tracking-plan' file found; point --from rudderstack at the rudder-cli project"
        )

    found: dict[tuple[str, str], list[_Found]] = {}
    for path, plan in plans:
        out.name = str(plan.get("display_name") or plan.get("id") or out.name)
        for rule in plan.get("rules") or []:
            if rule.get("type", "event_rule") != "event_rule":
                continue
            event_ref = rule.get("event")
            _, eid = _ref_id(event_ref)
            event = catalog.events.get(eid)
            if event is None:
                raise PlanError(f"{path}: event {eid!r} is referenced by rule {rule.get('id')!r} but not defined")
            etype = str(event.get("event_type") or "track").lower()
            name = _event_name(etype, event.get("name"), path, out) if etype != "track" else str(event.get("name"))
            try:
                schema = catalog.object_schema(rule.get("properties") or [])
                if rule.get("variants"):
                    catalog.apply_variants(schema, rule["variants"])
            except PlanError as exc:
                raise PlanError(f"{path}: rule {rule.get('id')!r}: {exc}") from None
            allow = rule.get(
                "additional_properties",
                (event_ref or {}).get("allow_unplanned") if isinstance(event_ref, dict) else None,
            )
            if allow is False:
                schema["additionalProperties"] = False
            translator = Translator("rudderstack", schema, draft=7)
            schema = translator.translate(schema)
            out.notes += [(f"{path}: {etype} '{name}'", note) for note in translator.notes]
            text = str(event.get("description", ""))
            found.setdefault((etype, name), []).append(_Found(SchemaVer(1, 0, 0), schema, text, source=path))
    out.events = _versioned(found, out)
    return out


# ---- Snowplow Iglu


def import_iglu(source: Path) -> Imported:
    """Self-describing schemas (``self: {vendor, name, format, version}``, draft-04): one event per name."""
    out = Imported()
    found: dict[tuple[str, str], list[_Found]] = {}
    for path, doc in _read_docs(source, ()):
        if not isinstance(doc, dict) or not isinstance(doc.get("self"), dict):
            continue
        me = doc["self"]
        payload = {k: v for k, v in doc.items() if k not in ("self", "$schema")}
        name = str(me.get("name"))
        version = SchemaVer.parse(me.get("version"), f"{path}: self.version")
        translator = Translator("iglu", payload, draft=_draft(doc, 4))
        schema = translator.translate(payload)
        out.notes += [(f"{path}: event '{name}' version {version}", note) for note in translator.notes]
        found.setdefault(("track", name), []).append(
            _Found(version, schema, str(doc.get("description") or ""), str(me.get("vendor") or ""), path)
        )
    if not found:
        raise PlanError(f"{source}: no self-describing schema (with a 'self' section) found")
    out.events = _versioned(found, out)
    return out


def check_imported(imported: Imported) -> None:
    """Refuse to write what the collector could not compile, naming the file, event and property."""
    problems: list[str] = []
    if imported.common:
        where = f"{imported.common_source or 'common rule'}: context"
        problems += [f"{where}: {p}" for p in schema_problems(imported.common)]
    for event in imported.events:
        source = imported.sources.get(event.key, "export")
        for version in event.versions:
            where = f"{source}: {event.type} '{event.name}' version {version.version}"
            problems += [f"{where}: {p}" for p in schema_problems(version.schema)]
    if problems:
        shown = "\n".join(problems[:MAX_REPORTED_PROBLEMS])
        more = len(problems) - MAX_REPORTED_PROBLEMS
        raise PlanError(
            f"the export has {len(problems)} schema(s) the collector could not compile, even after translation; "
            f"nothing was written. Fix them in the export (or report the construct as an importer gap):\n{shown}"
            + (f"\n... and {more} more" if more > 0 else "")
        )


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
    check_imported(imported)
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
