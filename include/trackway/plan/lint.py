"""`trackway plan lint`: every problem of a plan, one line each, so CI and pre-commit can gate on it."""

from __future__ import annotations

from pathlib import Path

import jsonschema_rs

from trackway.plan import names
from trackway.plan.diff import version_problems
from trackway.plan.model import IMPLIED_NAMES, PRIVACY_CLASSES, EventSpec, Plan

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
    return problems


def lint_dir(root: Path, baseline: Path | None = None) -> list[str]:
    from trackway.plan.model import load_plan

    return lint_plan(load_plan(root), load_plan(baseline) if baseline else None)
