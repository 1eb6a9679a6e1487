"""`trackway plan lint`: every problem of a plan, errors apart from style, so CI and pre-commit can gate on it.

Errors are what the collector or dbt cannot use: a file that does not load, a schema the
collector cannot compile, a ``$ref`` it cannot follow, a name no SQL literal can hold, two
versions with one major, and (with ``--baseline``) a breaking change that keeps its major
version. Warnings are conventions: names, descriptions, owners, types, privacy classes,
column names. Each finding names its file, event and property, and carries a rule code so
that long lists can be grouped and counted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from trackway.plan import names
from trackway.plan.diff import version_problems
from trackway.plan.model import IMPLIED_NAMES, PRIVACY_CLASSES, EventSpec, EventVersion, Plan, PlanError, load_plan
from trackway.plan.schema import SchemaProblem, property_path, schema_problems

JSON_TYPES = ("string", "number", "integer", "boolean", "array", "object", "null")
ERROR, WARNING = "error", "warning"

# Every rule and its kind, in the order a report lists them (docs/tracking-plan.md has the same table).
RULES = {
    "plan-file": ERROR,  # a file that does not load: YAML, fields, duplicate event, outside the folder
    "invalid-schema": ERROR,  # a JSON Schema the collector cannot compile
    "schema-ref": ERROR,  # a $ref outside the schema or to nothing in it
    "unsafe-name": ERROR,  # a NUL character: no SQL string literal can hold it
    "duplicate-version": ERROR,  # two versions of an event with one major: the collector would keep one
    "version-bump": ERROR,  # with --baseline: a breaking change that keeps its major version
    "reference": ERROR,  # a `references:` analytics_x cannot join: not schema.table.column, or not an id type
    "event-case": WARNING,
    "event-pattern": WARNING,
    "description": WARNING,
    "owner": WARNING,
    "property-case": WARNING,
    "no-type": WARNING,
    "privacy": WARNING,
    "common-column": WARNING,
    "reserved-word": WARNING,
    "column-collision": WARNING,
    "view-collision": WARNING,
    "near-duplicate": WARNING,
    "query-missing": WARNING,
    "pii-class": WARNING,  # a property that looks like personal data (name or example) with no class
}


@dataclass(frozen=True)
class Finding:
    rule: str
    file: str
    where: str  # "event 'X'", "event 'X': property 'p'", or "" for the whole file
    message: str

    @property
    def severity(self) -> str:
        return RULES[self.rule]

    def line(self) -> str:
        """One line, whatever the message (a YAML parser's spans several)."""
        message = re.sub(r"\s*\n\s*", " ", self.message.strip())
        return ": ".join([self.file, self.severity, *([self.where] if self.where else []), message]) + f" [{self.rule}]"


def _event_where(event: EventSpec, version: EventVersion | None = None) -> str:
    label = f"event '{event.name}'" if event.type == "track" else f"{event.type} '{event.name}'"
    return label if version is None or version is event.current else f"{label} version {version.version}"


def _schema_findings(file: str, where: str, problems: Iterable[SchemaProblem]) -> list[Finding]:
    out = []
    for problem in problems:
        prop, rest = property_path(problem.pointer)
        what = "invalid JSON Schema" if problem.kind == "invalid-schema" else "unusable $ref"
        out.append(
            Finding(
                problem.kind,
                file,
                where + (f": property '{prop}'" if prop else ""),
                f"{what}{f' at {rest!r}' if rest else ''}: {problem.message}",
            )
        )
    return out


def _unsafe(text: object) -> bool:
    return isinstance(text, str) and "\x00" in text


def _event_errors(event: EventSpec) -> list[Finding]:
    file = str(event.path)
    out: list[Finding] = []
    if _unsafe(event.name):
        out.append(Finding("unsafe-name", file, _event_where(event), "the name has a NUL character; remove it"))
    majors: dict[int, str] = {}
    for version in event.versions:
        where = _event_where(event, version)
        out += _schema_findings(file, where, schema_problems(version.schema))
        if version.version.model in majors:
            out.append(
                Finding(
                    "duplicate-version",
                    file,
                    where,
                    f"version {version.version} has the same major as {majors[version.version.model]}; "
                    "the collector picks a version by major: keep one per major",
                )
            )
        majors.setdefault(version.version.model, str(version.version))
        for prop in version.properties:
            values = prop.enum or []
            if _unsafe(prop.name) or any(_unsafe(v) for v in values):
                what = "name" if _unsafe(prop.name) else "enum"
                out.append(
                    Finding(
                        "unsafe-name",
                        file,
                        f"{where}: property {prop.name!r}",
                        f"its {what} has a NUL character; remove it",
                    )
                )
    return out


def _reference_findings(event: EventSpec) -> list[Finding]:
    """``references: app.listings.id`` (analytics_x, plan/xgen.py): well formed, on a string or integer id."""
    out = []
    for prop in event.current.properties:
        if "references" not in prop.schema:
            continue
        where = f"{_event_where(event)}: property '{prop.name}'"
        try:
            prop.reference  # noqa: B018 (parsed for its error)
        except PlanError as exc:
            out.append(Finding("reference", str(event.path), where, str(exc).split(": references: ", 1)[-1]))
            continue
        if prop.main_type not in ("string", "integer"):
            out.append(
                Finding(
                    "reference",
                    str(event.path),
                    where,
                    f"references a row, so its type must be string or integer (an id), not {prop.main_type or 'any'}",
                )
            )
    return out


def _event_name_findings(event: EventSpec, plan: Plan) -> list[Finding]:
    if event.type != "track" or IMPLIED_NAMES.get(event.type) == event.name:
        return []
    conv, file, where = plan.conventions, str(event.path), _event_where(event)
    out = []
    check = names.CASE_CHECKS.get(conv.event_case)
    if check and not check(event.name):
        out.append(
            Finding(
                "event-case",
                file,
                where,
                f"name is not {conv.event_case} case (convention: e.g. '{names.CASE_EXAMPLES[conv.event_case]}')",
            )
        )
    if conv.event_pattern == "object_action" and len(names.snake(event.name).split("_")) < 2:
        out.append(
            Finding(
                "event-pattern",
                file,
                where,
                "name is not 'Object Action' (an object and a past-tense action, e.g. 'Listing Viewed')",
            )
        )
    return out


def _property_findings(event: EventSpec, plan: Plan) -> list[Finding]:
    conv, file = plan.conventions, str(event.path)
    out: list[Finding] = []
    columns: dict[str, str] = {}
    for prop in event.current.properties:
        where = f"{_event_where(event)}: property '{prop.name}'"
        check = names.CASE_CHECKS.get(conv.property_case)
        if check and not check(prop.name):
            example = names.CASE_EXAMPLES[conv.property_case]
            out.append(
                Finding("property-case", file, where, f"name is not {conv.property_case} case (e.g. '{example}')")
            )
        if not prop.types:
            out.append(
                Finding(
                    "no-type",
                    file,
                    where,
                    f"no 'type': any value passes and its typed column is text; give it one of {', '.join(JSON_TYPES)}",
                )
            )
        if prop.privacy not in PRIVACY_CLASSES:
            out.append(
                Finding("privacy", file, where, f"privacy {prop.privacy!r} is not one of {', '.join(PRIVACY_CLASSES)}")
            )
        if "privacy" not in prop.schema:
            out.append(Finding("privacy", file, where, f"no privacy class; set privacy: {' | '.join(PRIVACY_CLASSES)}"))
        column = names.column_name(prop.name)
        if column in names.COMMON_COLUMNS:
            out.append(
                Finding(
                    "common-column",
                    file,
                    where,
                    f"column '{column}' collides with a common column of the typed view; rename it",
                )
            )
        elif names.identifier(prop.name) in names.RESERVED_WORDS:
            out.append(
                Finding("reserved-word", file, where, f"is a reserved SQL word, so its column is '{column}'; rename it")
            )
        if column in columns:
            out.append(
                Finding(
                    "column-collision",
                    file,
                    where,
                    f"column '{column}' collides with property '{columns[column]}' after normalisation; rename one",
                )
            )
        columns.setdefault(column, prop.name)
    for a, b in names.near_duplicates([p.name for p in event.current.properties]):
        if names.column_name(a) != names.column_name(b):
            out.append(
                Finding(
                    "near-duplicate",
                    file,
                    _event_where(event),
                    f"properties '{a}' and '{b}' are near-duplicates; keep one",
                )
            )
    return out


def _baseline_findings(baseline: Plan, plan: Plan) -> list[Finding]:
    by_path = {str(e.path): e for e in plan.events}
    out = []
    for line in version_problems(baseline, plan):
        file = next((p for p in by_path if line.startswith(p + ": ")), "")
        rest = line[len(file) + 2 :] if file else line
        event = by_path.get(file)
        where = _event_where(event) if event else ""
        if where and rest.startswith(f"event '{event.name}': " if event else ""):
            rest = rest.split(": ", 1)[1]
        out.append(Finding("version-bump", file or str(plan.root), where, rest))
    return out


def lint_findings(
    plan: Plan, baseline: Plan | None = None, load_problems: Iterable[tuple[Path, str]] = ()
) -> list[Finding]:
    """Every finding, errors first (each kind in plan order)."""
    found: list[Finding] = [Finding("plan-file", str(path), "", what) for path, what in load_problems]
    if plan.common:
        found += _schema_findings(str(plan.root / "common.yaml"), "context", schema_problems(plan.common))
    relations: dict[str, EventSpec] = {}
    for event in plan.events:
        found += _event_errors(event)
        found += _reference_findings(event)
        found += _event_name_findings(event, plan)
        where, file = _event_where(event), str(event.path)
        if not event.description.strip():
            found.append(Finding("description", file, where, "no description; say what happened and when it is sent"))
        if not event.owner.strip():
            found.append(Finding("owner", file, where, "no owner; name the team that answers for this event"))
        relation = names.relation_name(event.name)
        if relation in relations:
            other = relations[relation]
            found.append(
                Finding(
                    "view-collision",
                    file,
                    where,
                    f"typed view name '{relation}' collides with event '{other.name}' ({other.path}); rename one",
                )
            )
        relations[relation] = event
        found += _property_findings(event, plan)
        for query in event.queries:
            if not plan.query_path(query).is_file():
                found.append(
                    Finding("query-missing", file, where, f"analyst query {query} does not exist under {plan.root}")
                )
    for a, b in names.near_duplicates([e.name for e in plan.events]):
        found.append(
            Finding(
                "near-duplicate",
                str(plan.root),
                "",
                f"events '{a}' and '{b}' are near-duplicate names; merge them or rename one",
            )
        )
    if baseline is not None:
        found += _baseline_findings(baseline, plan)
    found += pii_class_findings(plan)
    return [f for f in found if f.severity == ERROR] + [f for f in found if f.severity == WARNING]


def lint_plan(plan: Plan, baseline: Plan | None = None) -> list[str]:
    """One line per finding, errors first (what benchmarks and tests compare)."""
    return [f.line() for f in lint_findings(plan, baseline)]


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


def pii_class_findings(plan: Plan) -> list[Finding]:
    """A property whose name or example looks like PII, with no class from the plan, a name rule or a default."""
    from trackway.plan.privacy import PlanPrivacy, schema_fields

    try:
        rules = PlanPrivacy(plan)
    except PlanError as exc:
        return [Finding("plan-file", str(plan.root / "plan.yaml"), "", str(exc))]
    fix = "set pii: direct|indirect|none (and action: hash|drop|truncate|keep if not the default; docs/privacy.md)"
    out = []
    candidates: list[tuple[EventSpec | None, str, str, dict, tuple[str, ...]]] = [
        (None, str(plan.root / "common.yaml"), "context", plan.common, ("context",))
    ]
    candidates += [(e, str(e.path), _event_where(e), e.current.schema, (e.payload_field,)) for e in plan.events]
    for event, file, where, schema, prefix in candidates:
        for path, sub in schema_fields(schema, prefix):
            examples = sub.get("examples")
            hint = _pii_hint(path[-1], examples if isinstance(examples, list) else [])
            if hint and "pii" not in sub and rules.class_of(event, path) is None:
                out.append(
                    Finding(
                        "pii-class",
                        file,
                        f"{where}: property '{'.'.join(path[1:])}'",
                        f"looks like personal data ({hint}) but has no PII class; {fix}",
                    )
                )
    return out


def lint_dir(root: Path, baseline: Path | None = None) -> tuple[Plan, list[Finding]]:
    """Lint a plan folder, reporting files that do not load among the findings instead of stopping at the first."""
    problems: list[tuple[Path, str]] = []
    plan = load_plan(root, problems)
    return plan, lint_findings(plan, load_plan(baseline) if baseline else None, problems)


def counts(findings: Iterable[Finding]) -> dict[str, dict[str, int]]:
    """severity -> rule -> count, rules in RULES order."""
    out: dict[str, dict[str, int]] = {ERROR: {}, WARNING: {}}
    tally: dict[str, int] = {}
    for finding in findings:
        tally[finding.rule] = tally.get(finding.rule, 0) + 1
    for rule, severity in RULES.items():
        if rule in tally:
            out[severity][rule] = tally[rule]
    return out


def report(findings: list[Finding], max_per_rule: int = 20) -> list[str]:
    """The lines to print: errors, then warnings, grouped by rule, at most ``max_per_rule`` each (0: all)."""
    by_rule: dict[str, list[Finding]] = {}
    for finding in findings:
        by_rule.setdefault(finding.rule, []).append(finding)
    lines = []
    for rule, severity in RULES.items():
        group = by_rule.get(rule, [])
        shown = group if max_per_rule <= 0 else group[:max_per_rule]
        lines += [f.line() for f in shown]
        if len(group) > len(shown):
            lines.append(
                f"... and {len(group) - len(shown)} more {severity}s [{rule}] (--max-findings 0 lists them all)"
            )
    return lines


def summary(findings: list[Finding], events: int, seconds: float) -> str:
    """``plan lint: 564 events: 2 errors (invalid-schema 2), 4210 warnings (privacy 2001, ...) in 0.85s``."""
    if not findings:
        return f"plan lint: ok, {events} events, no errors or warnings in {seconds:.2f}s"
    parts = []
    for severity, rules in counts(findings).items():
        total = sum(rules.values())
        detail = ", ".join(f"{rule} {n}" for rule, n in rules.items())
        parts.append(f"{total} {severity}{'s' if total != 1 else ''}" + (f" ({detail})" if detail else ""))
    return f"plan lint: {events} events: {', '.join(parts)} in {seconds:.2f}s"
