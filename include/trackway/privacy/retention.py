"""Retention in every store: raw objects, raw tables and marts, as of a moment (docs/privacy.md#retention).

``trackway privacy run`` calls ``apply`` after the erasure requests. Events past their rule's
``full_days`` (``trackway.plan.retention``) are deleted, or sanitised to their allowlist:

* ``raw.events_raw`` and ``raw.events_quarantine``: rows deleted, or their line rewritten;
* every dbt table with the lineage columns (``source_object``, ``line_number``): the same
  rows deleted, or every column that is not an id, a timestamp, a name or lineage set to
  null (``properties``/``traits``/``context`` to their allowlisted parts, ``raw`` to the
  sanitised line); ``analytics.sessions`` and ``analytics.users`` have no line: the plan's
  default rule applies to them by ``started_at`` and ``last_seen_at``;
* raw objects of the collector's folders: rewritten with the erasure rewrite (verified,
  atomic, old versions removed, the load ledger told), deleted when no line is left.

The aggregates (``daily_active_users``, the metric marts) are counts and stay. Objects of other
systems are never rewritten: every load expires their lines instead (``Warehouse.retention``).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from trackway.objectstore import ObjectStore
from trackway.plan.retention import Expiry, RetentionRules
from trackway.privacy import objects as raw_objects
from trackway.privacy.rewrite import RewriteError, rewrite_object
from trackway.rawdata.partitions import partition_of
from trackway.rawdata.schema import EVENTS_RAW_TABLE, LOADED_OBJECTS, QUARANTINE_TABLE, RAW_SCHEMA
from trackway.warehouse import Warehouse
from trackway.warehouse.base import Expired
from trackway.warehouse.ddl import PRIVACY_SCHEMA

#: dbt schemas whose tables may hold an event's columns.
MART_SCHEMAS = ("staging", "intermediate", "analytics")
#: Columns a sanitised row keeps: what happened, when, to whom (ids), and where it came from.
KEPT_COLUMNS = frozenset(
    {
        "event_type",
        "event_name",
        "page_name",
        "type",
        "event",
        "name",
        "session_id_source",
        "library_name",
        "library_version",
        "sample_rate",
        "experiments",
        "experiments_json",
        "reject_reason",
        "parse_error",
        "line_number",
        "source_object",
        "is_valid",
    }
)
KEPT_SUFFIXES = ("_id", "_at", "_date", "_timestamp")
#: The JSON columns set to the sanitised event's part (its allowlisted keys, the rest null).
JSON_PARTS = ("properties", "traits", "context")
#: Typed columns of analytics.events and their sources: kept when the plan retains one of them.
COLUMN_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "ip": (("context", "ip"),),
    "user_agent": (("context", "userAgent"),),
    "locale": (("context", "locale"),),
    "page_url": (("context", "page", "url"), ("properties", "url")),
    "page_path": (("context", "page", "path"), ("properties", "path")),
    "page_title": (("context", "page", "title"), ("properties", "title")),
    "referrer": (("context", "page", "referrer"), ("properties", "referrer")),
    "page_search": (("context", "page", "search"), ("properties", "search")),
    **{
        f"utm_{k}": (("context", "campaign", "name" if k == "campaign" else k),)
        for k in ("source", "medium", "campaign", "term", "content")
    },
}
#: The marts without a line of their own, the column their age is read from, and the columns sanitised.
SESSIONS = (
    "analytics",
    "sessions",
    "started_at",
    (
        "landing_page_path",
        "exit_page_path",
        "referrer",
        "user_agent",
        *(f"utm_{k}" for k in ("source", "medium", "campaign", "term", "content")),
    ),
)
USERS = (
    "analytics",
    "users",
    "last_seen_at",
    ("traits", "first_referrer", *(f"first_utm_{k}" for k in ("source", "medium", "campaign", "term", "content"))),
)


@dataclass
class RetentionReport:
    as_of: datetime
    dry_run: bool
    rules: list[str] = field(default_factory=list)
    deleted: Counter[str] = field(default_factory=Counter)  # table -> rows
    sanitized: Counter[str] = field(default_factory=Counter)
    #: object prefix (events/dt=YYYY-MM-DD/) -> objects rewritten, objects deleted, lines sanitised, lines deleted
    prefixes: dict[str, Counter[str]] = field(default_factory=dict)
    objects_failed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        would = "would " if self.dry_run else ""
        out = [f"retention as of {self.as_of.isoformat()}: {'; '.join(self.rules)}"]
        for table in sorted(set(self.deleted) | set(self.sanitized)):
            if self.deleted[table] or self.sanitized[table]:
                out.append(
                    f"  {table}: {would}delete {self.deleted[table]:,} row(s), {would}sanitize {self.sanitized[table]:,}"
                )
        for prefix, n in sorted(self.prefixes.items()):
            out.append(
                f"  {prefix}: {would}rewrite {n['rewritten']} object(s), {would}delete {n['deleted']} object(s); "
                f"{n['lines_sanitized']:,} line(s) to sanitize, {n['lines_deleted']:,} to delete"
                if self.dry_run
                else f"  {prefix}: {n['rewritten']} object(s) rewritten, {n['deleted']} deleted; "
                f"{n['lines_sanitized']:,} line(s) sanitized, {n['lines_deleted']:,} deleted"
            )
        if len(out) == 1:
            out.append("  nothing past retention")
        out += [f"  object not rewritten: {problem}" for problem in self.objects_failed]
        return out


def describe(rules: RetentionRules) -> list[str]:
    out = [f"default {rules.default.label()} ({rules.default.origin})"]
    out += [f"{t} {n!r} {r.label()}" for (t, n), r in sorted(rules.events.items())]
    out += [f"source {p} {r.label()}" for p, r in rules.sources]
    return out


def apply(
    wh: Warehouse, store: ObjectStore, rules: RetentionRules, as_of: datetime, *, dry_run: bool = False
) -> RetentionReport:
    """Delete or sanitise everything past retention as of ``as_of`` in every store; ``dry_run`` only counts."""
    started = time.perf_counter()
    report = RetentionReport(as_of, dry_run, describe(rules))
    expiry = Expiry.at(rules, as_of)  # one key for the whole run: every store gets the same pseudonyms
    if expiry.bound is None:
        return report
    wh.ensure_raw_tables()
    with wh.transaction():
        found = {}
        for table in (EVENTS_RAW_TABLE, QUARANTINE_TABLE):
            found[table.name] = wh.expire_rows(table, expiry, wh.query, wh.execute, dry_run=dry_run)
            report.deleted[f"{RAW_SCHEMA}.{table.name}"] = sum(len(v) for v in found[table.name].deleted.values())
            report.sanitized[f"{RAW_SCHEMA}.{table.name}"] = len(found[table.name].sanitized)
        _marts(wh, found[EVENTS_RAW_TABLE.name], rules, report, dry_run=dry_run)
        _person_marts(wh, rules, as_of, report, dry_run=dry_run)
        if not dry_run:
            wh.ensure_privacy_tables()
            wh.insert_rows(
                PRIVACY_SCHEMA,
                "retention_runs",
                ("as_of", "applied_at", "detail"),
                [(as_of, datetime.now(as_of.tzinfo), json.dumps({"rules": report.rules}))],
            )
    _objects(wh, store, expiry, report, dry_run=dry_run)
    report.seconds = time.perf_counter() - started
    return report


def _by_event_id(
    wh: Warehouse, tables: dict[str, dict[str, str]], expired: Expired, report: RetentionReport, *, dry_run: bool
) -> None:
    """Tables without lineage that name a deleted event: its own rows deleted, a reference to it set to null.

    (The tracking plan's violation rows by ``event_id``; identity links' ``link_event_id``,
    a violation's ``example_event_id``...: the link or the count stays, the deleted event's id goes.)
    """
    if not expired.deleted or not wh.table_exists("analytics", "events"):
        return
    ids: list[str] = []
    for source_object, lines in sorted(expired.deleted.items()):
        ids += [
            str(r[0])
            for r in wh.query(
                f"SELECT event_id FROM analytics.events WHERE source_object = ? AND {wh.in_list('line_number')}",
                [source_object, lines],
            )
        ]
    if not ids:
        return
    for table, columns in sorted(tables.items()):
        if "source_object" in columns or table == "analytics.events":
            continue  # rows with lineage: by line (``_marts``)
        for column in sorted(c for c in columns if c.endswith("event_id")):
            where = wh.in_list(column)
            if dry_run:
                count = int(wh.query(f"SELECT count(*) FROM {table} WHERE {where}", [ids])[0][0])
            elif column == "event_id":
                count = wh.execute(f"DELETE FROM {table} WHERE {where}", [ids])
            else:
                count = wh.execute(f"UPDATE {table} SET {column} = NULL WHERE {where}", [ids])
            (report.deleted if column == "event_id" else report.sanitized)[table] += count


def _kept_column(column: str) -> bool:
    return column in KEPT_COLUMNS or column.endswith(KEPT_SUFFIXES)


def _retained(tree: Any, path: tuple[str, ...]) -> bool:
    for part in path:
        if tree is True:
            return True
        if not isinstance(tree, dict):
            return False
        tree = tree.get(part)
    return tree is True


def _marts(wh: Warehouse, expired: Expired, rules: RetentionRules, report: RetentionReport, *, dry_run: bool) -> None:
    """The dbt tables' rows of the expired lines: deleted, or their columns reduced to the allowlist."""
    if not expired.deleted and not expired.sanitized:
        return
    # dbt's tables (not views) and their columns, read once: on BigQuery an API call per table.
    tables = wh.table_columns(MART_SCHEMAS)
    _by_event_id(wh, tables, expired, report, dry_run=dry_run)
    # The tables that carry an event's lineage (``source_object``, ``line_number``): by line.
    lineage = {name: cols for name, cols in tables.items() if {"source_object", "line_number"} <= set(cols)}
    for table, columns in sorted(lineage.items()):
        for source_object, lines in sorted(expired.deleted.items()):
            where = f"source_object = ? AND {wh.in_list('line_number')}"
            if dry_run:
                report.deleted[table] += int(
                    wh.query(f"SELECT count(*) FROM {table} WHERE {where}", [source_object, lines])[0][0]
                )
            else:
                report.deleted[table] += wh.execute(f"DELETE FROM {table} WHERE {where}", [source_object, lines])
        for (source_object, line_number), record in sorted(expired.sanitized.items()):
            sets, params = _sanitized_columns(columns, record, rules, wh)
            where = "source_object = ? AND line_number = ?"
            if dry_run:
                report.sanitized[table] += int(
                    wh.query(f"SELECT count(*) FROM {table} WHERE {where}", [source_object, line_number])[0][0]
                )
            elif sets:
                report.sanitized[table] += wh.execute(
                    f"UPDATE {table} SET {', '.join(sets)} WHERE {where}", [*params, source_object, line_number]
                )


def _sanitized_columns(
    columns: dict[str, str], record: dict, rules: RetentionRules, wh: Warehouse
) -> tuple[list[str], list[Any]]:
    """SET clauses (and their values) that reduce one row to what the sanitised event still holds."""
    allow = rules.allowlist(record)
    sets: list[str] = []
    params: list[Any] = []
    for column, kind in sorted(columns.items()):
        if _kept_column(column):
            continue
        if column in JSON_PARTS:
            part = record.get(column)
            sets.append(f"{column} = {wh.json_from_text(kind)}" if "json" in kind.lower() else f"{column} = ?")
            params.append(None if part is None else json.dumps(part, separators=(",", ":")))
        elif column == "raw":
            sets.append("raw = ?")
            params.append(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
        elif not any(_retained(allow, path) for path in COLUMN_PATHS.get(column, ())):
            sets.append(f"{column} = NULL")
    return sets, params


def _person_marts(
    wh: Warehouse, rules: RetentionRules, as_of: datetime, report: RetentionReport, *, dry_run: bool
) -> None:
    """Sessions and users (no line of their own) under the plan's default rule, by their last activity."""
    rule = rules.default
    if not rule.expires:
        return
    cutoff = as_of - timedelta(days=rule.full_days)
    for schema, table, age, columns in (SESSIONS, USERS):
        if not wh.table_exists(schema, table):
            continue
        name = f"{schema}.{table}"
        nulls = list(columns)  # the marts' own columns (marts/_marts__models.yml)
        if rule.then == "delete":
            where = f"{age} < ?"
            count = wh.query(f"SELECT count(*) FROM {name} WHERE {where}", [cutoff])[0][0]
            report.deleted[name] += int(count) if dry_run else wh.execute(f"DELETE FROM {name} WHERE {where}", [cutoff])
        elif nulls:
            where = f"{age} < ? AND NOT ({' AND '.join(f'{c} IS NULL' for c in nulls)})"
            if dry_run:
                report.sanitized[name] += int(wh.query(f"SELECT count(*) FROM {name} WHERE {where}", [cutoff])[0][0])
            else:
                sets = ", ".join(f"{c} = NULL" for c in nulls)
                report.sanitized[name] += wh.execute(f"UPDATE {name} SET {sets} WHERE {where}", [cutoff])


class _Counting:
    """The line edit of one object's rewrite, counting what it did and how many lines are left."""

    def __init__(self, expiry: Expiry, url: str) -> None:
        self.expiry, self.url = expiry, url
        self.sanitized = self.deleted = self.left = 0

    def __call__(self, line: bytes) -> bytes | None:
        before = (self.expiry.sanitized, self.expiry.deleted)
        new = self.expiry.edit_line(line, self.url)
        self.sanitized += self.expiry.sanitized - before[0]
        self.deleted += self.expiry.deleted - before[1]
        if (new is None and line.strip()) or new:
            self.left += 1
        return new


def _prefix(key: str) -> str:
    folder = key.split("/", 1)[0]
    where = partition_of(key)
    return f"{folder}/dt={where[0]:%Y-%m-%d}/" if where else folder + "/"


def _objects(wh: Warehouse, store: ObjectStore, expiry: Expiry, report: RetentionReport, *, dry_run: bool) -> None:
    """Rewrite (or delete) the collector's raw objects old enough to hold lines past retention."""
    bound = expiry.bound
    assert bound is not None
    ledger = wh.table_exists(RAW_SCHEMA, LOADED_OBJECTS)
    for key in raw_objects.raw_keys(store):
        where = partition_of(key)
        if where is not None and where[0] >= bound + timedelta(days=1):
            continue  # its lines arrived in that hour: too recent for any rule
        edit = _Counting(expiry, store.url_for(key))
        try:
            done = rewrite_object(store, key, edit, dry_run=dry_run)
        except (RewriteError, FileNotFoundError, OSError) as exc:
            report.objects_failed.append(f"{store.url_for(key)}: {exc}")
            continue
        if not done.edited:
            continue
        counts = report.prefixes.setdefault(_prefix(key), Counter())
        counts["lines_sanitized"] += edit.sanitized
        counts["lines_deleted"] += edit.deleted
        url = store.url_for(key)
        if edit.left == 0:
            counts["deleted"] += 1
            if not dry_run:
                store.delete(key)
                store.delete_old_versions(key)
                if ledger:
                    wh.drop_staging_copies(url)  # before the ledger forgets the version they were made from
                    wh.execute(f"DELETE FROM {RAW_SCHEMA}.{LOADED_OBJECTS} WHERE source_object = ?", [url])
            continue
        counts["rewritten"] += 1
        if done.replaced and done.fingerprint is not None and ledger:
            wh.record_rewrite(url, done.fingerprint, done.size, edit.deleted)
