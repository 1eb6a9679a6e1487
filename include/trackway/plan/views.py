"""The typed views of a tracking plan: one per planned event, its properties as typed columns.

``typed_views(plan, schema, dialect)`` gives each view's name, columns and SELECT, for
DuckDB or PostgreSQL; `trackway plan deploy` (trackway.plan.deploy) creates them when
the plan changes, and `trackway plan diff` compares their columns. They are not dbt
models (adr/0029): a plan of 600 events would otherwise be 600 tasks of every hourly
run.

Safety: plan names never reach SQL as identifiers; columns and views use the
normalised names of trackway.plan.names (``[a-z0-9_]``, quoted anyway), and names
used as values are standard SQL string literals. A value that does not cast to the
plan's type is NULL in the view (the violation is in analytics.tracking_plan_violations).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from trackway.plan import names
from trackway.plan.model import EventSpec, Plan, PropertySpec
from trackway.plan.privacy import stored_plan

DIALECTS = ("duckdb", "postgres")
# The same rules as the dbt macros trackway.iso_timestamp_regex / iso_zone_regex (macros/cross_db.sql).
ISO_TIMESTAMP_REGEX = (
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,9})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$"
)
ISO_ZONE_REGEX = "(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
# PostgreSQL's exception-guarded casts, created by the dbt project's on-run-start hook (macros/create_udfs.sql).
PG_UDF_SCHEMA = "staging"
EVENTS_RELATION = "analytics.events"
_FORMAT_REGEX = {
    "email": "^[^@[:space:]]+@[^@[:space:]]+[.][^@[:space:]]+$",
    "uri": "^[a-zA-Z][a-zA-Z0-9+.-]*:[^[:space:]]*$",
    "uuid": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # the SQL type analysts see (portable spelling)
    property: str | None = None  # the plan property it types; None for the common columns
    description: str = ""


@dataclass(frozen=True)
class TypedView:
    event: EventSpec
    name: str  # relation name inside the typed schema
    columns: tuple[Column, ...]
    select: str  # the view's query

    @property
    def definition_hash(self) -> str:
        """Changes exactly when the view would be created differently (its query, name or comments)."""
        parts = [self.name, self.select, self.description] + [f"{c.name}\0{c.description}" for c in self.columns]
        return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]

    @property
    def description(self) -> str:
        event = self.event
        return (
            f"{event.description} (plan: {event.type} '{event.name}', owner {event.owner or 'none'}, "
            f"status {event.status}, version {event.version})"
        )


def lit(value: str) -> str:
    return names.sql_string(value)


class _Sql:
    """The few expressions that differ between DuckDB and PostgreSQL."""

    def __init__(self, dialect: str) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"typed views are written for {', '.join(DIALECTS)}, not {dialect}")
        self.pg = dialect == "postgres"

    def text(self, col: str, key: str) -> str:
        if self.pg:
            return f"({col} ->> {lit(key)})"
        return f"json_extract_string({col}, {_pointer(key)})"

    def value(self, col: str, key: str) -> str:
        return f"({col} -> {lit(key)})" if self.pg else f"json_extract({col}, {_pointer(key)})"

    def jtype(self, col: str, key: str) -> str:
        """JSON Schema type of a key's value: string, integer, number, boolean, array, object, null; NULL if absent."""
        if self.pg:
            return (
                f"(case jsonb_typeof({col} -> {lit(key)}) when 'number' then "
                f"case when ({col} ->> {lit(key)}) ~ '^-?[0-9]+$' then 'integer' else 'number' end "
                f"else jsonb_typeof({col} -> {lit(key)}) end)"
            )
        return (
            f"(case json_type({col}, {_pointer(key)}) when 'VARCHAR' then 'string' when 'BIGINT' then 'integer' "
            "when 'UBIGINT' then 'integer' when 'HUGEINT' then 'integer' when 'DOUBLE' then 'number' "
            "when 'BOOLEAN' then 'boolean' when 'ARRAY' then 'array' when 'OBJECT' then 'object' when 'NULL' then 'null' end)"
        )

    def timestamp(self, text: str) -> str:
        if self.pg:
            return f"{PG_UDF_SCHEMA}.trackway_try_timestamptz({text})"
        v = f"upper(trim({text}))"
        return (
            f"(case when regexp_matches({v}, {lit(ISO_TIMESTAMP_REGEX)}) then try_cast("
            f"case when regexp_matches({v}, {lit(ISO_ZONE_REGEX)}) then {v} else {v} || '+00:00' end as timestamptz) end)"
        )

    def date(self, text: str) -> str:
        if self.pg:
            return (
                f"(case when {text} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$' then cast("
                f"{PG_UDF_SCHEMA}.trackway_try_timestamptz({text} || 'T00:00:00Z') at time zone 'UTC' as date) end)"
            )
        return f"(case when regexp_matches({text}, '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$') then try_cast({text} as date) end)"

    def matches(self, text: str, regex: str) -> str:
        return f"({text} ~ {lit(regex)})" if self.pg else f"regexp_matches({text}, {lit(regex)})"

    def requested_major(self) -> str:
        if self.pg:
            return "substring((context #>> '{protocols,event_version}') from '^[0-9]+')"
        return "regexp_extract(json_extract_string(context, '/protocols/event_version'), '^[0-9]+')"


def _pointer(key: str) -> str:
    return lit("/" + key.replace("~", "~0").replace("/", "~1"))


def _allowed_types(prop: PropertySpec) -> list[str]:
    kinds = set(prop.types)
    if "number" in kinds:
        kinds.add("integer")
    return sorted(kinds)


def _format_ok(sql: _Sql, prop: PropertySpec, text: str) -> str | None:
    """SQL that is true when a string value has the plan's format (None: no format check)."""
    fmt = prop.format
    if fmt == "date":
        return f"{sql.date(text)} is not null"
    if fmt == "date-time":
        return f"{sql.timestamp(text)} is not null"
    if fmt in _FORMAT_REGEX:
        return sql.matches(text, _FORMAT_REGEX[fmt])
    return None


def _valid(sql: _Sql, prop: PropertySpec, col: str) -> str:
    """True when the value is present, has a planned type and (for strings) format: it casts."""
    jt, text = sql.jtype(col, prop.name), sql.text(col, prop.name)
    main = prop.main_type
    cond = (
        f"{jt} in ({', '.join(lit(t) for t in _allowed_types(prop) if t != 'null')})"
        if prop.types
        else f"{jt} <> 'null'"
    )
    if main == "integer":
        cond += f" and length({text}) <= 18"
    if main == "string":
        fmt = _format_ok(sql, prop, text)
        if fmt:
            cond += f" and {fmt}"
    return f"({cond})"


def column_type(prop: PropertySpec, dialect: str) -> str:
    main, fmt = prop.main_type, prop.format
    if main == "integer":
        return "bigint"
    if main == "number":
        return "double precision"
    if main == "boolean":
        return "boolean"
    if main in ("array", "object"):
        return "jsonb" if dialect == "postgres" else "json"
    if main == "string" and fmt == "date":
        return "date"
    if main == "string" and fmt == "date-time":
        return "timestamp with time zone"
    return "text"


def typed_expr(sql: _Sql, prop: PropertySpec, col: str) -> str:
    """The property cast to the plan's type; NULL when absent or when it does not cast (a violation)."""
    text, main, fmt = sql.text(col, prop.name), prop.main_type, prop.format
    if main == "integer":
        value = f"cast({text} as bigint)"
    elif main == "number":
        value = (
            f"cast(cast(({col} -> {lit(prop.name)}) as numeric) as double precision)"
            if sql.pg
            else f"try_cast({text} as double)"
        )
    elif main == "boolean":
        value = f"cast({text} as boolean)"
    elif main in ("array", "object"):
        value = sql.value(col, prop.name)
    elif main == "string" and fmt == "date":
        value = sql.date(text)
    elif main == "string" and fmt == "date-time":
        value = sql.timestamp(text)
    else:
        value = text
    if main == "number" and sql.pg:
        # PostgreSQL numbers can exceed double precision; those stay NULL (and are flagged).
        guard = f"abs(cast(({col} -> {lit(prop.name)}) as numeric)) < 1e300"
        return f"case when {_valid(sql, prop, col)} and {guard} then {value} end"
    return f"case when {_valid(sql, prop, col)} then {value} end"


_COMMON_TYPES = {
    "event_id": "text",
    "event_type": "text",
    "event_name": "text",
    "event_version": "text",
    "user_id": "text",
    "anonymous_id": "text",
    "session_id": "text",
    "source_id": "text",
    "occurred_at": "timestamp with time zone",
    "received_at": "timestamp with time zone",
    "event_date": "date",
}


def view_names(plan: Plan) -> dict[tuple[str, str], str]:
    """(type, name) -> view name, distinct within the plan (a hash suffix where two would collide)."""
    out: dict[tuple[str, str], str] = {}
    used: set[str] = set()
    for event in plan.events:
        alias = names.relation_name(event.name)
        if event.type != "track" and alias in used:
            alias = names.identifier(f"{event.type} {event.name}")
        if alias in used:
            alias = alias[:54] + "_" + names.hash8(event.type + event.name)
        used.add(alias)
        out[event.key] = alias
    return out


def typed_view(event: EventSpec, name: str, dialect: str) -> TypedView:
    sql = _Sql(dialect)
    payload = event.payload_field
    json_type = "jsonb" if sql.pg else "json"
    columns: list[Column] = []
    lines: list[str] = []
    for common in names.COMMON_COLUMNS:
        if common in ("properties", "traits", "context"):
            continue
        if common == "event_version":
            lines.append(f"coalesce({sql.requested_major()}, {lit(str(event.version.model))}) as event_version")
        else:
            lines.append(common)
        columns.append(Column(common, _COMMON_TYPES[common], description="messageId" if common == "event_id" else ""))
    if event.type in ("page", "screen"):
        lines.append("page_name")
        columns.append(Column("page_name", "text"))
    mapping = names.unique_columns([p.name for p in event.current.properties])
    for prop in event.current.properties:
        col = mapping[prop.name]
        lines.append(f"{typed_expr(sql, prop, payload)} as {names.quote_ident(col)}")
        description = (
            (prop.description or "")
            + f" (property '{prop.name}', {prop.main_type or 'any'}"
            + (f", format {prop.format}" if prop.format else "")
            + f", privacy {prop.privacy})"
        )
        columns.append(Column(col, column_type(prop, dialect), prop.name, description))
    lines += [payload, "context"]
    columns += [Column(payload, json_type), Column("context", json_type)]
    select = (
        "select\n    "
        + ",\n    ".join(lines)
        + f"\nfrom {EVENTS_RELATION}\nwhere event_type = {lit(event.type)} and event_name = {lit(event.name)}"
    )
    return TypedView(event, name, tuple(columns), select)


def typed_views(plan: Plan, dialect: str) -> list[TypedView]:
    """Every planned event's view, in plan order, typed as the warehouse holds its events.

    A hashed property is a string pseudonym (no format), a dropped one is absent: trackway.plan.privacy.
    """
    plan = stored_plan(plan)
    aliases = view_names(plan)
    return [typed_view(event, aliases[event.key], dialect) for event in plan.events]


def views_version(version: str, schema: str, dialect: str) -> str:
    """What a deploy records and the hourly check compares: the plan version, where the views go, and how
    they are written (this module and the name rules, by content), without generating 600 views' SQL."""
    digest = hashlib.sha256(f"{version}\0{schema}\0{dialect}".encode())
    for module in (Path(__file__), Path(names.__file__)):
        digest.update(module.read_bytes())
    return digest.hexdigest()[:16]
