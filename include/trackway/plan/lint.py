"""`trackway plan lint`: every problem of a plan, one line each, so CI and pre-commit can gate on it."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from pathlib import Path

import jsonschema_rs

from trackway.plan import names
from trackway.plan.diff import version_problems
from trackway.plan.model import IMPLIED_NAMES, PRIVACY_CLASSES, EventSpec, Plan, PlanError

JSON_TYPES = ("string", "number", "integer", "boolean", "array", "object", "null")


def _where(event: EventSpec) -> str:
    return f"{event.path}: event '{event.name}'"


def _check_schema(where: str, schema: dict) -> list[str]:
    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as exc:
        path = "/".join(str(p) for p in exc.instance_path) or "(root)"
        return [f"{where}: invalid JSON Schema at {path}: {exc.message}"]
    except jsonschema_rs.ReferencingError as exc:
        return [f"{where}: JSON Schema refers to something unknown: {exc}"]
    return []


def _event_name_problems(event: EventSpec, plan: Plan) -> list[str]:
    if event.type != "track" or IMPLIED_NAMES.get(event.type) == event.name:
        return []
    conv = plan.conventions
    out = []
    check = names.CASE_CHECKS.get(conv.event_case)
    if check and not check(event.name):
        out.append(
            f"{_where(event)}: name is not {conv.event_case} case "
            f"(convention: e.g. '{names.CASE_EXAMPLES[conv.event_case]}')"
        )
    if conv.event_pattern == "object_action" and len(names.snake(event.name).split("_")) < 2:
        out.append(
            f"{_where(event)}: name is not 'Object Action' (an object and a past-tense action, e.g. 'Listing Viewed')"
        )
    return out


def lint_plan(plan: Plan, baseline: Plan | None = None) -> list[str]:
    problems: list[str] = []
    conv = plan.conventions
    relations: dict[str, EventSpec] = {}
    problems += _check_schema(f"{plan.root / 'common.yaml'}: context", plan.common) if plan.common else []
    for event in plan.events:
        where = _where(event)
        problems += _event_name_problems(event, plan)
        if not event.description.strip():
            problems.append(f"{where}: no description; say what happened and when it is sent")
        if not event.owner.strip():
            problems.append(f"{where}: no owner; name the team that answers for this event")
        relation = names.relation_name(event.name)
        if relation in relations:
            other = relations[relation]
            problems.append(
                f"{where}: typed view name '{relation}' collides with event '{other.name}' ({other.path}); rename one"
            )
        relations[relation] = event
        for version in event.versions:
            vwhere = where if version is event.current else f"{where} version {version.version}"
            problems += _check_schema(vwhere, version.schema)
        columns: dict[str, str] = {}
        for prop in event.current.properties:
            pwhere = f"{where}: property '{prop.name}'"
            check = names.CASE_CHECKS.get(conv.property_case)
            if check and not check(prop.name):
                problems.append(
                    f"{pwhere}: name is not {conv.property_case} case (e.g. '{names.CASE_EXAMPLES[conv.property_case]}')"
                )
            if not prop.types:
                problems.append(f"{pwhere}: no 'type'; give it one of {', '.join(JSON_TYPES)}")
            if prop.privacy not in PRIVACY_CLASSES:
                problems.append(f"{pwhere}: privacy {prop.privacy!r} is not one of {', '.join(PRIVACY_CLASSES)}")
            if "privacy" not in prop.schema:
                problems.append(f"{pwhere}: no privacy class; set privacy: {' | '.join(PRIVACY_CLASSES)}")
            column = names.column_name(prop.name)
            if column in names.COMMON_COLUMNS:
                problems.append(
                    f"{pwhere}: column '{column}' collides with a common column of the typed view; rename it"
                )
            elif names.identifier(prop.name) in names.RESERVED_WORDS:
                problems.append(f"{pwhere}: is a reserved SQL word, so its column is '{column}'; rename it")
            if column in columns:
                problems.append(
                    f"{pwhere}: column '{column}' collides with property '{columns[column]}' after normalisation; rename one"
                )
            columns.setdefault(column, prop.name)
        for a, b in names.near_duplicates([p.name for p in event.current.properties]):
            if names.column_name(a) != names.column_name(b):
                problems.append(f"{where}: properties '{a}' and '{b}' are near-duplicates; keep one")
        for query in event.queries:
            if not plan.query_path(query).is_file():
                problems.append(f"{where}: analyst query {query} does not exist under {plan.root}")
    for a, b in names.near_duplicates([e.name for e in plan.events]):
        problems.append(f"{plan.root}: events '{a}' and '{b}' are near-duplicate names; merge them or rename one")
    if baseline is not None:
        problems += version_problems(baseline, plan)
    problems += pii_class_problems(plan)
    return problems


# ---- style: personal data without a PII class (docs/privacy.md)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{5,}[0-9]$")
_PERSON_NAMES = {
    "name",
    "firstname",
    "lastname",
    "fullname",
    "surname",
    "givenname",
    "familyname",
    "middlename",
    "username",
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _pii_hint(name: str, examples: list) -> str | None:
    """Why a property looks like personal data (its name or an example), or None."""
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", name)]
    joined = "".join(words)
    if "email" in joined or "mail" in words:
        return "an email name"
    if "phone" in joined or "msisdn" in joined:
        return "a phone name"
    if "ip" in words or joined.endswith("ipaddress") or joined in ("ipv4", "ipv6"):
        return "an IP address name"
    if joined in _PERSON_NAMES or (len(words) > 1 and "".join(words[-2:]) in _PERSON_NAMES):
        return "a person's name"
    for example in examples:
        if not isinstance(example, str):
            continue
        if _EMAIL.match(example):
            return "an email example"
        if _PHONE.match(example) and not _DATE.match(example) and sum(c.isdigit() for c in example) >= 7:
            return "a phone number example"
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(example)
            return "an IP address example"
    return None


def pii_class_problems(plan: Plan) -> list[str]:
    """A property whose name or example looks like PII, with no class from the plan, a name rule or a default."""
    from trackway.plan.privacy import PlanPrivacy, schema_fields

    try:
        rules = PlanPrivacy(plan)
    except PlanError as exc:
        return [str(exc)]
    fix = "set pii: direct|indirect|none (and action: hash|drop|truncate|keep if not the default; docs/privacy.md)"
    out = []
    candidates: list[tuple[EventSpec | None, str, dict, tuple[str, ...]]] = [
        (None, f"{plan.root / 'common.yaml'}: context", plan.common, ("context",))
    ]
    candidates += [(e, _where(e), e.current.schema, (e.payload_field,)) for e in plan.events]
    for event, where, schema, prefix in candidates:
        for path, sub in schema_fields(schema, prefix):
            examples = sub.get("examples")
            hint = _pii_hint(path[-1], examples if isinstance(examples, list) else [])
            if hint and "pii" not in sub and rules.class_of(event, path) is None:
                out.append(
                    f"{where}: property '{'.'.join(path[1:])}' looks like personal data ({hint}) but has no PII class; {fix}"
                )
    return out


def lint_dir(root: Path, baseline: Path | None = None) -> list[str]:
    from trackway.plan.model import load_plan

    return lint_plan(load_plan(root), load_plan(baseline) if baseline else None)
