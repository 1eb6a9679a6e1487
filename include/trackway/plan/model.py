"""Load a tracking plan folder into typed objects, checking its shape.

Layout (``TRACKWAY_PLAN_DIR``)::

    plan.yaml            optional: name, conventions (naming rules for lint), privacy, retention (docs/privacy.md)
    common.yaml          optional: the context every event must carry (JSON Schema)
    events/*.yaml        one file per event (any sub-folder, any *.yaml/*.yml name)
    queries/*.sql        analyst queries, named by the events that need them

An event file::

    name: Listing Viewed          # exactly as clients send it
    type: track                   # track | page | screen | identify | group | alias
    description: ...
    owner: growth-team
    status: active                # draft | active | deprecated
    version: 1-0-0                # SchemaVer MODEL-REVISION-ADDITION
    properties:                   # JSON Schema of properties (traits for identify/group)
      type: object
      required: [listing_id]
      properties:
        listing_id: {type: string, description: ..., privacy: internal, examples: [l-1]}
        host_id: {type: string, references: app.hosts.id}   # the row it identifies (analytics_x, plan/xgen.py)
        contact_email: {type: string, pii: direct, action: hash}   # docs/privacy.md
        plan_tier: {type: string, retain: true}   # kept when retention sanitizes the event (plan/retention.py)
    consent_category: Analytics   # optional: dropped when context.consent denies it
    sample: {rate: 0.1, unit: anonymous_id}   # optional: keep a deterministic 10% of devices
    retention: {full_days: 90, then: sanitize}  # optional: wins over the source's and plan.yaml's
    queries: [queries/views_by_city.sql]
    previous_versions:            # optional older majors clients may still send
      - {version: 1-0-0, properties: {...}}

Loading never executes anything from the plan; names are kept byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trackway.config.retention import Retention, parse_retention

EVENT_TYPES = ("track", "page", "screen", "identify", "group", "alias")
STATUSES = ("draft", "active", "deprecated")
PRIVACY_CLASSES = ("public", "internal", "pii", "sensitive")
# The event name analytics.events gives non-track calls; a plan names them the same way.
IMPLIED_NAMES = {
    "page": "Page Viewed",
    "screen": "Screen Viewed",
    "identify": "Identify",
    "group": "Group",
    "alias": "Alias",
}
# libyaml's safe loader/dumper when present: 10x faster on plans of hundreds of files.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_SCHEMAVER = re.compile(r"^(\d+)-(\d+)-(\d+)$")
_REFERENCE = re.compile(r"^([a-z_][a-z0-9_]{0,62})\.([A-Za-z_][A-Za-z0-9_]{0,62})\.([A-Za-z_][A-Za-z0-9_]{0,62})$")


class PlanError(ValueError):
    """The plan folder cannot be read; the message names the file and what to fix."""


@dataclass(frozen=True, order=True)
class SchemaVer:
    """MODEL-REVISION-ADDITION (Snowplow SchemaVer): MODEL bumps are breaking."""

    model: int
    revision: int
    addition: int

    @classmethod
    def parse(cls, value: object, where: str = "version") -> SchemaVer:
        if isinstance(value, bool):
            raise PlanError(f"{where}: {value!r} is not a SchemaVer; write e.g. 1-0-0")
        if isinstance(value, int):
            return cls(value, 0, 0)
        match = _SCHEMAVER.match(str(value).strip())
        if not match:
            raise PlanError(f"{where}: {value!r} is not a SchemaVer; write MODEL-REVISION-ADDITION, e.g. 1-0-0")
        return cls(int(match[1]), int(match[2]), int(match[3]))

    def __str__(self) -> str:
        return f"{self.model}-{self.revision}-{self.addition}"


@dataclass(frozen=True)
class Reference:
    """What a property's value identifies: the row of ``schema.table`` whose ``column`` equals it (app.listings.id)."""

    schema: str
    table: str
    column: str

    @classmethod
    def parse(cls, value: object, where: str = "references") -> Reference:
        match = _REFERENCE.match(value) if isinstance(value, str) else None
        if not match:
            raise PlanError(f"{where}: {value!r} is not schema.table.column; write e.g. references: app.listings.id")
        return cls(match[1], match[2], match[3])

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}.{self.column}"


@dataclass(frozen=True)
class PropertySpec:
    """One property (or trait) of an event, read from its JSON Schema."""

    name: str
    schema: dict[str, Any]
    required: bool

    @property
    def types(self) -> tuple[str, ...]:
        raw = self.schema.get("type")
        if isinstance(raw, str):
            return (raw,)
        if isinstance(raw, list):
            return tuple(str(t) for t in raw)
        return ()

    @property
    def main_type(self) -> str | None:
        """The non-null JSON type the warehouse casts to, or None when ambiguous/absent."""
        kinds = [t for t in self.types if t != "null"]
        if len(kinds) == 1:
            return kinds[0]
        if set(kinds) == {"integer", "number"}:
            return "number"
        return None

    @property
    def format(self) -> str | None:
        fmt = self.schema.get("format")
        return fmt if isinstance(fmt, str) else None

    @property
    def enum(self) -> list[Any] | None:
        values = self.schema.get("enum")
        return list(values) if isinstance(values, list) else None

    @property
    def reference(self) -> Reference | None:
        """``references: app.listings.id``: the application row the value identifies; PlanError when malformed."""
        value = self.schema.get("references")
        return None if value is None else Reference.parse(value, f"property '{self.name}': references")

    @property
    def description(self) -> str:
        return str(self.schema.get("description") or "")

    @property
    def privacy(self) -> str:
        return str(self.schema.get("privacy") or "internal")

    @property
    def examples(self) -> list[Any]:
        values = self.schema.get("examples")
        return list(values) if isinstance(values, list) else []

    @property
    def pii(self) -> str | None:
        """The PII class written in the plan (direct, indirect, none), or None (see plan/privacy.py)."""
        value = self.schema.get("pii")
        return str(value) if value is not None else None

    @property
    def action(self) -> str | None:
        """The collector's action written in the plan (hash, drop, truncate, keep), or None."""
        value = self.schema.get("action")
        return str(value) if value is not None else None


@dataclass(frozen=True)
class EventVersion:
    version: SchemaVer
    schema: dict[str, Any]  # JSON Schema of the payload object

    @property
    def properties(self) -> list[PropertySpec]:
        props = self.schema.get("properties") or {}
        required = set(self.schema.get("required") or [])
        if not isinstance(props, dict):
            return []
        return [PropertySpec(str(n), s if isinstance(s, dict) else {}, n in required) for n, s in props.items()]

    @property
    def allows_extra(self) -> bool:
        return self.schema.get("additionalProperties", True) is not False


@dataclass(frozen=True)
class EventSpec:
    name: str
    type: str
    description: str
    owner: str
    status: str
    current: EventVersion
    previous: tuple[EventVersion, ...] = ()
    queries: tuple[str, ...] = ()
    path: Path | None = None
    consent_category: str | None = None  # dropped at the collector when context.consent denies it
    sample: dict[str, Any] | None = None  # {rate, unit}: deterministic sampling (plan/privacy.py)
    retention: Retention | None = None  # {full_days, then}: wins over the source's and the plan's (plan/retention.py)

    @property
    def version(self) -> SchemaVer:
        return self.current.version

    @property
    def payload_field(self) -> str:
        """Segment puts identify/group attributes in ``traits``, everything else in ``properties``."""
        return "traits" if self.type in ("identify", "group") else "properties"

    @property
    def versions(self) -> tuple[EventVersion, ...]:
        return (self.current, *self.previous)

    def version_for(self, major: int) -> EventVersion | None:
        for candidate in self.versions:
            if candidate.version.model == major:
                return candidate
        return None

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.name)


@dataclass(frozen=True)
class Conventions:
    """Naming rules lint applies; plan.yaml ``conventions:`` overrides them."""

    event_case: str = "title"  # title | snake | camel | any
    property_case: str = "snake"  # snake | camel | any
    event_pattern: str = "object_action"  # object_action | any


@dataclass(frozen=True)
class Plan:
    root: Path
    name: str
    events: tuple[EventSpec, ...]
    common: dict[str, Any] = field(default_factory=dict)  # JSON Schema of context
    conventions: Conventions = Conventions()
    privacy: dict[str, Any] = field(default_factory=dict)  # plan.yaml `privacy:` (plan/privacy.py reads it)
    retention: Retention | None = None  # plan.yaml `retention:`: the plan's default (plan/retention.py)

    def event(self, event_type: str, name: str) -> EventSpec | None:
        return self._index().get((event_type, name))

    def query_path(self, query: str) -> Path:
        """The file of an analyst query, checked again at read time: inside the plan folder, symlinks resolved."""
        return inside_plan(self.root, query, "analyst query")

    def _index(self) -> dict[tuple[str, str], EventSpec]:
        cached = self.__dict__.get("_by_key")
        if cached is None:
            cached = {e.key: e for e in self.events}
            object.__setattr__(self, "_by_key", cached)
        return cached

    @property
    def common_properties(self) -> list[PropertySpec]:
        return EventVersion(SchemaVer(1, 0, 0), self.common).properties


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 (a safe loader, C or Python)
    except yaml.YAMLError as exc:
        raise PlanError(f"{path}: not valid YAML ({exc}); fix the syntax") from None
    except UnicodeDecodeError:
        raise PlanError(f"{path}: not UTF-8 text; save it as UTF-8") from None


def _text(doc: dict, key: str, path: Path, *, default: str | None = None) -> str:
    value = doc.get(key, default)
    if value is None:
        raise PlanError(f"{path}: '{key}' is missing; add it")
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise PlanError(f"{path}: '{key}' must be text, got {type(value).__name__}")
    return str(value)


def _schema(value: Any, path: Path, where: str) -> dict[str, Any]:
    if value is None:
        return {"type": "object"}
    if not isinstance(value, dict):
        raise PlanError(f"{path}: '{where}' must be a JSON Schema object, got {type(value).__name__}")
    return value


def parse_event(doc: Any, path: Path) -> EventSpec:
    if not isinstance(doc, dict):
        raise PlanError(f"{path}: an event file must be a YAML mapping with name, type, properties, ...")
    event_type = _text(doc, "type", path, default="track").lower()
    if event_type not in EVENT_TYPES:
        raise PlanError(f"{path}: type {event_type!r} is not one of {', '.join(EVENT_TYPES)}")
    name = _text(doc, "name", path, default=IMPLIED_NAMES.get(event_type))
    status = _text(doc, "status", path, default="active").lower()
    if status not in STATUSES:
        raise PlanError(f"{path}: status {status!r} is not one of {', '.join(STATUSES)}")
    payload_key = "traits" if event_type in ("identify", "group") and "traits" in doc else "properties"
    current = EventVersion(
        SchemaVer.parse(doc.get("version", "1-0-0"), f"{path}: version"),
        _schema(doc.get(payload_key), path, payload_key),
    )
    previous = []
    for i, old in enumerate(doc.get("previous_versions") or []):
        if not isinstance(old, dict):
            raise PlanError(f"{path}: previous_versions[{i}] must be a mapping with version and properties")
        previous.append(
            EventVersion(
                SchemaVer.parse(old.get("version"), f"{path}: previous_versions[{i}].version"),
                _schema(old.get(payload_key, old.get("properties")), path, f"previous_versions[{i}].{payload_key}"),
            )
        )
    queries = doc.get("queries") or []
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        raise PlanError(f"{path}: 'queries' must be a list of SQL file paths relative to the plan folder")
    consent = doc.get("consent_category")
    if consent is not None and (not isinstance(consent, str) or not consent.strip()):
        raise PlanError(f"{path}: 'consent_category' must be a category name, e.g. Analytics")
    sample = doc.get("sample")
    if sample is not None and not isinstance(sample, dict):
        raise PlanError(f"{path}: 'sample' must be a mapping, e.g. {{rate: 0.1, unit: anonymous_id}}")
    return EventSpec(
        name=name,
        type=event_type,
        description=str(doc.get("description") or ""),
        owner=str(doc.get("owner") or ""),
        status=status,
        current=current,
        previous=tuple(previous),
        queries=tuple(queries),
        path=path,
        consent_category=consent,
        sample=sample,
        retention=parse_retention(doc.get("retention"), str(path), "event", PlanError),
    )


def event_to_doc(event: EventSpec) -> dict[str, Any]:
    """The YAML mapping for one event (what import writes; parse_event reads it back)."""
    doc: dict[str, Any] = {
        "name": event.name,
        "type": event.type,
        "description": event.description,
        "owner": event.owner,
        "status": event.status,
        "version": str(event.version),
        event.payload_field: event.current.schema,
    }
    if event.previous:
        doc["previous_versions"] = [{"version": str(v.version), event.payload_field: v.schema} for v in event.previous]
    if event.queries:
        doc["queries"] = list(event.queries)
    if event.consent_category:
        doc["consent_category"] = event.consent_category
    if event.sample:
        doc["sample"] = event.sample
    if event.retention:
        doc["retention"] = (
            "keep"
            if not event.retention.expires
            else {"full_days": event.retention.full_days, "then": event.retention.then}
        )
    return doc


def plan_version(plan: Plan) -> str:
    """A short content hash of what the plan says: its events (names, schemas, versions, docs) and common context.

    The same plan gives the same version wherever it is read (file names, order and YAML
    formatting do not count); analyst queries are left out, they change nothing here.
    """
    docs = []
    for event in sorted(plan.events, key=lambda e: (e.type, e.name)):
        doc = event_to_doc(event)
        doc.pop("queries", None)
        docs.append(doc)
    text = json.dumps({"common": plan.common, "events": docs}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def inside_plan(root: Path, relative: str | Path, what: str) -> Path:
    """``root / relative`` if it stays inside the plan folder once symlinks are resolved; else PlanError.

    A plan is data a pull request can change: a path such as ``../../.env``, an absolute
    path or a symlink leaving the folder would let ``plan docs`` publish, and ``plan test``
    run, any file the process can read.
    """
    text = str(relative)
    if "\x00" in text or Path(text).is_absolute() or ".." in Path(text).parts:
        raise PlanError(f"{what} {text!r} must be a path inside the plan folder {root}, without '..'")
    base = root.resolve()
    target = (root / text).resolve()
    if not target.is_relative_to(base):
        raise PlanError(f"{what} {text!r} leads outside the plan folder {root} (a symlink?); keep plan files inside it")
    return target


def event_files(root: Path, problems: list[tuple[Path, str]] | None = None) -> list[Path]:
    folder = root / "events"
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    inside = []
    for path in files:
        with _collected(problems, path):
            inside_plan(root, path.relative_to(root), "event file")
            inside.append(path)
    return inside


@contextmanager
def _collected(problems: list[tuple[Path, str]] | None, path: Path) -> Iterator[None]:
    """Raise a PlanError as usual, or (lint) record it as (file, what) and go on with the next file."""
    try:
        yield
    except PlanError as exc:
        if problems is None:
            raise
        problems.append((path, str(exc).removeprefix(f"{path}: ")))


def load_plan(root: Path | str, problems: list[tuple[Path, str]] | None = None) -> Plan:
    """Read a plan folder; PlanError on anything unreadable, duplicate or malformed.

    With ``problems`` (what lint passes), a broken file is recorded there as (file, what)
    and left out instead, so one run reports every broken file.
    """
    root = Path(root)
    if not root.is_dir():
        raise PlanError(f"tracking plan folder {root} does not exist; set TRACKWAY_PLAN_DIR to a plan folder")
    meta: dict[str, Any] = {}
    conventions = Conventions()
    privacy: dict[str, Any] = {}
    retention: Retention | None = None
    with _collected(problems, root / "plan.yaml"):
        if (root / "plan.yaml").is_file():
            loaded = _read_yaml(root / "plan.yaml") or {}
            if not isinstance(loaded, dict):
                raise PlanError(f"{root / 'plan.yaml'}: must be a mapping (name, conventions)")
            meta = loaded
        conv = meta.get("conventions") or {}
        if not isinstance(conv, dict):
            raise PlanError(f"{root / 'plan.yaml'}: 'conventions' must be a mapping")
        conventions = Conventions(**{k: str(v) for k, v in conv.items() if k in Conventions.__dataclass_fields__})
        privacy = meta.get("privacy") or {}
        if not isinstance(privacy, dict):
            raise PlanError(
                f"{root / 'plan.yaml'}: 'privacy' must be a mapping (fields: name rules); see docs/privacy.md"
            )
        retention = parse_retention(meta.get("retention"), str(root / "plan.yaml"), "plan", PlanError)
    common: dict[str, Any] = {}
    with _collected(problems, root / "common.yaml"):
        if (root / "common.yaml").is_file():
            doc = _read_yaml(root / "common.yaml") or {}
            if not isinstance(doc, dict):
                raise PlanError(f"{root / 'common.yaml'}: must be a mapping with a 'context' JSON Schema")
            common = _schema(doc.get("context"), root / "common.yaml", "context")
    events: list[EventSpec] = []
    seen: dict[tuple[str, str], Path] = {}
    for path in event_files(root, problems):
        with _collected(problems, path):
            event = parse_event(_read_yaml(path), path)
            for query in event.queries:
                inside_plan(root, query, f"{path}: analyst query")
            if event.key in seen:
                raise PlanError(f"{path}: {event.type} {event.name!r} is already defined in {seen[event.key]}")
            seen[event.key] = path
            events.append(event)
    return Plan(
        root=root,
        name=str(meta.get("name") or root.name),
        events=tuple(events),
        common=common,
        conventions=conventions,
        privacy=privacy,
        retention=retention,
    )


def write_event(root: Path, event: EventSpec, file_stem: str) -> Path:
    path = root / "events" / f"{file_stem}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.dump(event_to_doc(event), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    path.write_text(text, encoding="utf-8")
    return path
