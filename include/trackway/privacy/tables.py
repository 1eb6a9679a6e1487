"""Where a person's rows live in the warehouse, and how they are found, counted and deleted there.

The warehouse never hashes: ids are hashed in Python. ``privacy.id_hashes`` keeps each
id's keyed hash (filled at load and by every erasure run), so the ledger's hashes turn
back into the ids to delete without any id in clear in the ledger itself.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from trackway.subjects.keys import SubjectKey
from trackway.subjects.sets import SubjectMatcher, subject_values
from trackway.warehouse import Warehouse
from trackway.warehouse.ddl import PRIVACY_SCHEMA

#: Rows per insert into privacy.id_hashes and ids per IN list.
_CHUNK = 20_000
# DAU's rolling monthly window: a day's row counts the people of the 30 days up to it.
_WINDOW_DAYS = 29


@dataclass(frozen=True)
class Target:
    """A table (never a view: views follow their tables) and its columns that name a person."""

    schema: str
    table: str
    columns: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"


_SUBJECT = ("user_id", "anonymous_id", "previous_id")
RAW_EVENTS = Target("raw", "events_raw", _SUBJECT)
EVENTS = Target("analytics", "events", (*_SUBJECT, "person_id"))
IDENTITY_MAP = Target("analytics", "identity_map", ("anonymous_id", "user_id", "person_id"))
PERSON_DAYS = Target("intermediate", "int_person_days", ("person_id",))
#: Every table that may hold a person's rows (dbt's tables, raw.events_raw, the id hashes).
#: The quarantine (ids inside its ``event`` JSON) is read in Python: see ``quarantine_matches``.
TARGETS: tuple[Target, ...] = (
    RAW_EVENTS,
    Target("staging", "stg_events", _SUBJECT),
    Target("intermediate", "int_events_new", _SUBJECT),
    Target("intermediate", "int_experiment_exposures", ("user_id", "anonymous_id")),
    Target("intermediate", "int_identity_links", ("anonymous_id", "user_id")),
    PERSON_DAYS,
    EVENTS,
    Target("analytics", "events_rejected", ("user_id", "anonymous_id")),
    Target("analytics", "sessions", ("anonymous_id", "user_id", "person_id")),
    Target("analytics", "users", ("user_id", "person_id")),
    IDENTITY_MAP,
    Target(PRIVACY_SCHEMA, "id_hashes", ("id",)),
)
#: The tracking plan's tables (when there is a plan): rows of a person's events, by event id.
BY_EVENT_ID = (
    ("intermediate", "plan_violation_rows", "event_id"),
    ("analytics", "tracking_plan_violations", "example_event_id"),
)
#: Where ids are read from to keep privacy.id_hashes complete (every id in the marts is in one of these).
ID_SOURCES = (RAW_EVENTS, EVENTS, IDENTITY_MAP)
QUARANTINE = "raw.events_quarantine"


def present(wh: Warehouse, targets: Iterable[Target] = TARGETS) -> list[Target]:
    return [t for t in targets if wh.table_exists(t.schema, t.table)]


def _ids_union(target: Target) -> str:
    return " UNION ALL ".join(f"SELECT {c} AS v FROM {target.name} WHERE {c} IS NOT NULL" for c in target.columns)


def _matches(wh: Warehouse, target: Target, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return "(" + " OR ".join(wh.in_list(prefix + c) for c in target.columns) + ")"


def _chunks(values: list, size: int = _CHUNK) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def backfill_id_hashes(wh: Warehouse, key: SubjectKey, sources: Iterable[Target] = ID_SOURCES) -> int:
    """Hash the ids privacy.id_hashes does not have yet (anti-join in SQL; only new ids come to Python)."""
    added = 0
    for target in present(wh, sources):
        new = wh.query(
            f"SELECT DISTINCT ids.v FROM ({_ids_union(target)}) AS ids "
            f"WHERE NOT EXISTS (SELECT 1 FROM {PRIVACY_SCHEMA}.id_hashes AS h WHERE h.id = ids.v)"
        )
        added += wh.add_id_hashes(key, [r[0] for r in new])
    return added


def ids_of(wh: Warehouse, hashes: Iterable[str]) -> dict[str, str]:
    """Clear id -> hash for the ids the warehouse holds under these hashes (after ``backfill_id_hashes``)."""
    found: dict[str, str] = {}
    for chunk in _chunks(sorted(set(hashes))):
        for value, digest in wh.query(
            f"SELECT id, id_hash FROM {PRIVACY_SCHEMA}.id_hashes WHERE {wh.in_list('id_hash')}", [chunk]
        ):
            found[value] = digest
    return found


def linked_ids(wh: Warehouse, user_ids: list[str]) -> list[tuple[str, str]]:
    """(user id, linked id): anonymous ids (and alias previousIds) linked to these users, in the marts or in raw.

    From analytics.identity_map (whose person is the user, or the user itself), and from
    raw lines carrying both ids that no transform has read yet.
    """
    if not user_ids:
        return []
    found: set[tuple[str, str]] = set()
    if wh.table_exists("analytics", "identity_map"):
        rows = wh.query(
            "SELECT anonymous_id, user_id, person_id FROM analytics.identity_map "
            f"WHERE {wh.in_list('user_id')} OR {wh.in_list('person_id')}",
            [user_ids, user_ids],
        )
        wanted = set(user_ids)
        for anonymous_id, user_id, person_id in rows:
            owner = user_id if user_id in wanted else person_id
            found.add((owner, anonymous_id))
    if wh.table_exists("raw", "events_raw"):
        for column in ("anonymous_id", "previous_id"):
            rows = wh.query(
                f"SELECT DISTINCT user_id, {column} FROM raw.events_raw WHERE {wh.in_list('user_id')} AND {column} IS NOT NULL",
                [user_ids],
            )
            found.update((u, v) for u, v in rows if u != v)
    return sorted((u, v) for u, v in found if u != v)


@dataclass
class QuarantineHits:
    rows: dict[str, list[int]] = field(default_factory=dict)  # source object -> line numbers

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.rows.values())


def _quarantine_records(wh: Warehouse) -> Iterator[tuple[str, int, object, object]]:
    """(source object, line number, the quarantined event record, receivedAt) of every quarantine row."""
    if not wh.table_exists("raw", "events_quarantine"):
        return
    for source_object, line_number, event, received_at in wh.query(
        f"SELECT source_object, line_number, event, received_at FROM {QUARANTINE}"
    ):
        try:
            record = json.loads(event) if event else None
        except ValueError:
            continue
        yield source_object, line_number, record, received_at


def quarantine_matches(wh: Warehouse, matcher: SubjectMatcher) -> QuarantineHits:
    """Quarantine rows of filtered subjects: their ids are inside the ``event`` JSON, read here in Python."""
    hits = QuarantineHits()
    for source_object, line_number, record, received_at in _quarantine_records(wh):
        if matcher.drops_ids(subject_values(record), received_at):
            hits.rows.setdefault(source_object, []).append(line_number)
    return hits


def count_rows(
    wh: Warehouse, matcher: SubjectMatcher, targets: Iterable[Target] | None = None
) -> dict[str, Counter[str]]:
    """Rows per table and subject hash: every distinct id counted and hashed (independent of privacy.id_hashes).

    A row naming a subject in two columns counts twice: these are counts to bring to 0.
    """
    counts: dict[str, Counter[str]] = {}
    for target in present(wh, targets or TARGETS):
        found: Counter[str] = Counter()
        for value, rows in wh.query(f"SELECT v, count(*) FROM ({_ids_union(target)}) AS ids GROUP BY v"):
            digest = matcher.filtered(value)
            if digest is not None:
                found[digest] += int(rows)
        counts[target.name] = found
    quarantined: Counter[str] = Counter()
    for _, _, record, _ in _quarantine_records(wh):
        quarantined.update(set(matcher.hashes_in(record)))
    counts[QUARANTINE] = quarantined
    return counts


@dataclass
class Deleted:
    rows: dict[str, int] = field(default_factory=dict)
    objects: set[str] = field(default_factory=set)  # raw objects that held the deleted lines
    days: list[date] = field(default_factory=list)  # activity days whose aggregates need recomputing


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def objects_holding(wh: Warehouse, ids: list[str]) -> set[str]:
    """The raw objects whose loaded lines name these ids."""
    if not ids or not wh.table_exists("raw", "events_raw"):
        return set()
    return {
        r[0]
        for r in wh.query(
            f"SELECT DISTINCT source_object FROM raw.events_raw WHERE {_matches(wh, RAW_EVENTS)}",
            [ids] * len(RAW_EVENTS.columns),
        )
    }


def delete_subjects(wh: Warehouse, ids: list[str], quarantine: QuarantineHits) -> Deleted:
    """Delete every row naming these ids, in one transaction (BigQuery: statement by statement).

    daily_active_users has no ids: the person's days are deleted from int_person_days, days
    left with nobody lose their row, and the other person-days of the affected windows are
    marked changed so that the next dbt run of daily_active_users recomputes them.
    """
    done = Deleted()
    targets = present(wh)
    if not ids and not quarantine.rows:
        return done
    done.objects = objects_holding(wh, ids)
    if ids and PERSON_DAYS in targets:
        done.days = sorted(
            {
                _as_date(r[0])
                for r in wh.query(
                    f"SELECT DISTINCT activity_date FROM {PERSON_DAYS.name} WHERE {wh.in_list('person_id')}", [ids]
                )
            }
        )
    with wh.transaction():
        if ids and EVENTS in targets:
            for schema, table, column in BY_EVENT_ID:
                if wh.table_exists(schema, table):
                    done.rows[f"{schema}.{table}"] = wh.execute(
                        f"DELETE FROM {schema}.{table} WHERE {column} IN "
                        f"(SELECT event_id FROM {EVENTS.name} WHERE {_matches(wh, EVENTS)})",
                        [ids] * len(EVENTS.columns),
                    )
        for target in targets if ids else ():
            done.rows[target.name] = wh.execute(
                f"DELETE FROM {target.name} WHERE {_matches(wh, target)}", [ids] * len(target.columns)
            )
        removed = 0
        for source_object, lines in sorted(quarantine.rows.items()):
            removed += wh.execute(
                f"DELETE FROM {QUARANTINE} WHERE source_object = ? AND {wh.in_list('line_number')}",
                [source_object, lines],
            )
            done.objects.add(source_object)
        done.rows[QUARANTINE] = removed
        if done.days:
            _daily_actives(wh, done.days)
    return done


def _daily_actives(wh: Warehouse, days: list[date]) -> None:
    if wh.table_exists("analytics", "daily_active_users"):
        wh.execute(
            f"DELETE FROM analytics.daily_active_users WHERE {wh.in_list('activity_date')} "
            f"AND activity_date NOT IN (SELECT activity_date FROM {PERSON_DAYS.name})",
            [days],
        )
    wh.execute(
        f"UPDATE {PERSON_DAYS.name} SET transformed_at = ? WHERE activity_date >= ? AND activity_date <= ?",
        [datetime.now(UTC), days[0], days[-1] + timedelta(days=_WINDOW_DAYS)],
    )


def deletable_counts(wh: Warehouse, ids: list[str], quarantine: QuarantineHits) -> dict[str, int]:
    """What ``delete_subjects`` would delete, per table (the dry run)."""
    counts: Counter[str] = Counter()
    for target in present(wh) if ids else ():
        rows = wh.query(f"SELECT count(*) FROM {target.name} WHERE {_matches(wh, target)}", [ids] * len(target.columns))
        counts[target.name] = int(rows[0][0])
    counts[QUARANTINE] = quarantine.count
    return dict(counts)
