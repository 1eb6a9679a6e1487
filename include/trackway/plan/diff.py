"""Classify the changes between two plans the way SchemaVer does.

- addition: compatible with all data already collected (new optional property,
  a documentation change, a widened type, a new event);
- revision: a rule was relaxed (no longer required, enum or format dropped, other
  keywords changed): old data still fits, but readers may meet values they did not;
- breaking: data valid under the old plan fails the new one, or columns go away
  (a removed or renamed property, a narrowed type, a new or newly required
  property, new enum/format restrictions, extra properties now forbidden, a
  removed event).

``view_changes`` says the same for the typed views (trackway.plan.views): which views
a deploy would add, drop or rename, and which columns it would add, drop or retype,
so a change that breaks analysts' queries is seen before `trackway plan deploy`.
"""

from __future__ import annotations

from dataclasses import dataclass

from trackway.plan.model import EventSpec, EventVersion, Plan, PropertySpec, SchemaVer
from trackway.plan.views import typed_views

ADDITION, REVISION, BREAKING = "addition", "revision", "breaking"
_RANK = {ADDITION: 0, REVISION: 1, BREAKING: 2}


@dataclass(frozen=True)
class Change:
    event: str
    kind: str  # addition | revision | breaking
    what: str

    def line(self) -> str:
        return f"{self.kind:<9} {self.event}: {self.what}"


def _types(prop: PropertySpec) -> set[str]:
    kinds = set(prop.types)
    if "number" in kinds:
        kinds.add("integer")  # number accepts integers
    return kinds


def _property_changes(old: PropertySpec, new: PropertySpec) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    name = old.name
    if not old.required and new.required:
        out.append((BREAKING, f"property '{name}' is now required"))
    elif old.required and not new.required:
        out.append((REVISION, f"property '{name}' is no longer required"))
    old_t, new_t = _types(old), _types(new)
    if old.types != new.types:
        if not old_t:  # no type before: anything went
            out.append((BREAKING, f"property '{name}' now has type {'/'.join(new.types)}"))
        elif not new_t or old_t < new_t:
            out.append(
                (ADDITION, f"property '{name}' type widened {'/'.join(old.types)} -> {'/'.join(new.types) or 'any'}")
            )
        else:
            out.append(
                (BREAKING, f"property '{name}' type narrowed/changed {'/'.join(old.types)} -> {'/'.join(new.types)}")
            )
    old_e, new_e = old.enum, new.enum
    if old_e != new_e:
        if new_e is not None and (old_e is None or not set(map(repr, new_e)) >= set(map(repr, old_e))):
            out.append((BREAKING, f"property '{name}' enum narrowed (values no longer accepted)"))
        elif new_e is None:
            out.append((REVISION, f"property '{name}' enum removed"))
        else:
            out.append((ADDITION, f"property '{name}' enum gained values"))
    if old.format != new.format:
        if new.format is not None:
            out.append((BREAKING, f"property '{name}' format {old.format or 'none'} -> {new.format}"))
        else:
            out.append((REVISION, f"property '{name}' format {old.format} removed"))
    rest_old = {k: v for k, v in old.schema.items() if k not in ("type", "enum", "format")}
    rest_new = {k: v for k, v in new.schema.items() if k not in ("type", "enum", "format")}
    doc_keys = ("description", "examples", "privacy", "title")
    if {k: v for k, v in rest_old.items() if k not in doc_keys} != {
        k: v for k, v in rest_new.items() if k not in doc_keys
    }:
        out.append((REVISION, f"property '{name}' other schema keywords changed"))
    elif rest_old != rest_new:
        out.append((ADDITION, f"property '{name}' documentation changed (description/examples/privacy)"))
    return out


def _version_changes(old: EventVersion, new: EventVersion) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    old_props = {p.name: p for p in old.properties}
    new_props = {p.name: p for p in new.properties}
    removed = [n for n in old_props if n not in new_props]
    added = [n for n in new_props if n not in old_props]
    for name in removed:
        twin = next(
            (
                a
                for a in added
                if {**new_props[a].schema, "description": ""} == {**old_props[name].schema, "description": ""}
            ),
            None,
        )
        if twin:
            out.append((BREAKING, f"property '{name}' renamed to '{twin}'"))
        else:
            out.append((BREAKING, f"property '{name}' removed"))
    for name in added:
        if new_props[name].required:
            out.append((BREAKING, f"new required property '{name}'"))
        else:
            out.append((ADDITION, f"new optional property '{name}'"))
    for name in old_props.keys() & new_props.keys():
        out.extend(_property_changes(old_props[name], new_props[name]))
    if old.allows_extra and not new.allows_extra:
        out.append((BREAKING, "extra properties are now forbidden (additionalProperties: false)"))
    elif not old.allows_extra and new.allows_extra:
        out.append((ADDITION, "extra properties are now allowed"))
    return out


def event_label(event: EventSpec) -> str:
    return event.name if event.type == "track" else f"{event.name} ({event.type})"


def diff_plans(old: Plan, new: Plan) -> list[Change]:
    changes: list[Change] = []
    old_events = {e.key: e for e in old.events}
    new_events = {e.key: e for e in new.events}
    for key, event in old_events.items():
        if key not in new_events:
            changes.append(Change(event_label(event), BREAKING, "event removed from the plan"))
    for key, event in new_events.items():
        before = old_events.get(key)
        if before is None:
            changes.append(Change(event_label(event), ADDITION, f"new event ({event.status})"))
            continue
        for kind, what in _version_changes(before.current, event.current):
            changes.append(Change(event_label(event), kind, what))
        if before.status != event.status:
            changes.append(Change(event_label(event), ADDITION, f"status {before.status} -> {event.status}"))
        if before.description != event.description or before.owner != event.owner:
            changes.append(Change(event_label(event), ADDITION, "description/owner changed"))
    for kind, what in _version_changes(
        EventVersion(SchemaVer(1, 0, 0), old.common), EventVersion(SchemaVer(1, 0, 0), new.common)
    ):
        changes.append(Change("common context", kind, what))
    return changes


def worst(changes: list[Change]) -> str | None:
    return max((c.kind for c in changes), key=_RANK.__getitem__, default=None)


def required_bump(old: SchemaVer, kind: str) -> SchemaVer:
    if kind == BREAKING:
        return SchemaVer(old.model + 1, 0, 0)
    if kind == REVISION:
        return SchemaVer(old.model, old.revision + 1, 0)
    return SchemaVer(old.model, old.revision, old.addition + 1)


def version_problems(old: Plan, new: Plan) -> list[str]:
    """Lint's baseline check: each event whose change needs a bigger version than it got."""
    problems: list[str] = []
    by_event: dict[str, list[Change]] = {}
    for change in diff_plans(old, new):
        by_event.setdefault(change.event, []).append(change)
    old_events = {event_label(e): e for e in old.events}
    for event in new.events:
        label = event_label(event)
        before = old_events.get(label)
        if before is None:
            continue
        kind = worst(by_event.get(label, []))
        if kind is None:
            continue
        if kind == BREAKING and event.version.model <= before.version.model:
            first = next(c.what for c in by_event[label] if c.kind == BREAKING)
            problems.append(
                f"{event.path}: event '{event.name}': breaking change ({first}) keeps version "
                f"{event.version}; bump it to {required_bump(before.version, BREAKING)} (or undo the change)"
            )
        elif event.version < before.version:
            problems.append(
                f"{event.path}: event '{event.name}': version went down {before.version} -> {event.version}"
            )
    return problems


def view_changes(old: Plan, new: Plan, schema: str = "analytics_typed", dialect: str = "duckdb") -> list[Change]:
    """How the typed views differ between two plans: views and columns added, dropped, renamed or retyped."""
    before = {v.event.key: v for v in typed_views(old, dialect)}
    after = {v.event.key: v for v in typed_views(new, dialect)}
    changes: list[Change] = []
    for key, view in before.items():
        if key not in after:
            changes.append(Change(event_label(view.event), BREAKING, f"view {schema}.{view.name} dropped"))
    for key, view in after.items():
        label, old_view = event_label(view.event), before.get(key)
        if old_view is None:
            changes.append(Change(label, ADDITION, f"view {schema}.{view.name} added"))
            continue
        where = f"view {schema}.{view.name}"
        if old_view.name != view.name:
            changes.append(Change(label, BREAKING, f"view {schema}.{old_view.name} renamed to {view.name}"))
        old_cols = {c.name: c.type for c in old_view.columns}
        new_cols = {c.name: c.type for c in view.columns}
        for col, kind in old_cols.items():
            if col not in new_cols:
                changes.append(Change(label, BREAKING, f"{where}: column {col} ({kind}) dropped"))
            elif new_cols[col] != kind:
                changes.append(Change(label, BREAKING, f"{where}: column {col} {kind} -> {new_cols[col]}"))
        for col, kind in new_cols.items():
            if col not in old_cols:
                changes.append(Change(label, ADDITION, f"{where}: column {col} ({kind}) added"))
    return changes
