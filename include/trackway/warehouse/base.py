"""The warehouse seam: what the loader and the CLI need from any warehouse.

Each backend (DuckDB, PostgreSQL, BigQuery) implements this small
interface, so adding one touches no DAG. Typing of events is not here: it
lives in dbt (see adr/0002-raw-then-transform.md).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from trackway.rawdata.lines import parse_object
from trackway.rawdata.partitions import partition_of
from trackway.rawdata.records import LoadRun, ObjectLoad, RawObject, ledger_row
from trackway.rawdata.schema import EVENTS_RAW_TABLE, LOADED_OBJECTS, QUARANTINE_TABLE, RAW_SCHEMA, RawTable
from trackway.subjects.keys import SubjectKey
from trackway.subjects.sets import SubjectMatcher, subject_values
from trackway.warehouse.ddl import PRIVACY_SCHEMA

Fetch = Callable[[str, Sequence[Any]], list[tuple]]
Run = Callable[[str, Sequence[Any]], Any]
_ID_CHUNK = 20_000
#: raw.events_raw columns that name the person a line is about.
SUBJECT_COLUMNS = ("user_id", "anonymous_id", "previous_id")


#: How a sanitised line is recognised in SQL (trackway.plan.retention.SANITIZED_MARK): never sanitised twice.
SANITIZED_LIKE = '%"sanitized_at"%'


class Expiring(Protocol):
    """What retention does to each event (trackway.plan.retention.Expiry; that layer sits above this one)."""

    @property
    def bound(self) -> datetime | None: ...

    def decide(self, obj: Any, source_object: str | None = None) -> str | None: ...

    def apply(self, obj: dict, action: str) -> dict | None: ...


@dataclass
class Expired:
    """Raw rows retention deleted or sanitised: by object, their line numbers (and the sanitised records)."""

    deleted: dict[str, list[int]] = field(default_factory=dict)
    sanitized: dict[tuple[str, int], dict] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.deleted.values()) + len(self.sanitized)


class WarehouseBusy(RuntimeError):
    """Another process holds the warehouse (DuckDB's single writer); the message says what to do."""


def ledger_params(load: ObjectLoad) -> list[Any]:
    """Parameters of ``LEDGER_UPSERT`` in its column order."""
    return [
        load.source_object,
        load.fingerprint,
        load.size_bytes,
        load.rows,
        load.parse_errors,
        load.blank_lines,
        load.object_error,
        load.load_id,
        load.loaded_at,
    ]


def load_run_params(run: LoadRun) -> list[Any]:
    """Parameters of ``LOAD_RUN_INSERT`` in its column order."""
    return [
        run.load_id,
        run.interval_start,
        run.interval_end,
        run.started_at,
        run.finished_at,
        run.triggered_by,
        run.objects_found,
        run.objects_loaded,
        run.objects_skipped,
        run.rows_loaded,
        run.parse_errors,
    ]


class Warehouse(ABC):
    """A connection to one warehouse. Use as a context manager."""

    kind: str
    #: Set by the loader when erasure requests exist: each object's lines of erased subjects are
    #: deleted inside the object's own load transaction (``drop_erased``), so none is ever visible.
    erased: SubjectMatcher | None = None
    #: Ids of the lines loaded while ``erased`` is set, for privacy.id_hashes (the loader sets and empties it).
    loaded_ids: set[str] | None = None
    #: Set by the loader: each object's lines past retention are deleted or sanitised in its load transaction.
    retention: Expiring | None = None

    @abstractmethod
    def ensure_raw_tables(self) -> None:
        """Create schema raw and its tables if missing (idempotent)."""

    @abstractmethod
    def loaded_fingerprints(self, source_objects: Sequence[str]) -> dict[str, str]:
        """Fingerprints of the given objects that are already loaded."""

    @abstractmethod
    def replace_object(
        self, load: ObjectLoad, rows: Sequence[Sequence[Any]], table: RawTable = EVENTS_RAW_TABLE
    ) -> None:
        """Atomically replace every row of ``load.source_object`` in ``table`` and record it in the ledger.

        Rows are tuples in ``table.columns`` order. Delete + insert + ledger happen in
        one transaction, so a crash leaves either the old or the new state.
        """

    def load_object(self, obj: RawObject, table: RawTable = EVENTS_RAW_TABLE) -> ObjectLoad:
        """Read one raw object into ``table`` and record it in the ledger, atomically; return the ledger row.

        Backends override this with their own streaming path (DuckDB reads the file
        itself, PostgreSQL streams COPY). This default parses in Python and holds the
        object's rows in memory, so it suits small objects only.
        """
        with obj.open() as handle:
            parsed = parse_object(
                handle,
                source_object=obj.source_object,
                load_id=obj.load_id,
                loaded_at=obj.loaded_at,
                text_fields=table.text_fields,
                source=obj.source,
                received_at=obj.received_at,
                judge=obj.judge,
            )
        load = ledger_row(obj, parsed.stats)
        self.replace_object(load, parsed.rows, table)
        return load

    #: How many objects ``load_objects`` is best given at once.
    parallel_objects: int = 1

    def load_objects(self, objs: Sequence[RawObject], table: RawTable = EVENTS_RAW_TABLE) -> list[ObjectLoad]:
        """Load several objects; each object's rows still commit together with its ledger row."""
        return [self.load_object(obj, table) for obj in objs]

    @abstractmethod
    def record_load_run(self, run: LoadRun) -> None: ...

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run a read query; ``?`` placeholders work on every backend."""

    @abstractmethod
    def query_with_headers(self, sql: str, *, limit: int) -> tuple[list[str], list[tuple]]:
        """Run people's SQL (trackway query, plan test): column names and at most ``limit`` rows.

        Only one read-only SELECT, on a connection opened ``read_only``; anything else
        raises ``ReadOnlyQueryError`` saying what is allowed (see ``readonly``).
        """

    @abstractmethod
    def table_exists(self, schema: str, table: str) -> bool: ...

    def table_columns(self, schemas: Sequence[str]) -> dict[str, dict[str, str]]:
        """``schema.table`` -> column -> its type, for the tables (not views) of ``schemas``; names lower case."""
        rows = self.query(
            "SELECT c.table_schema, c.table_name, c.column_name, c.data_type FROM information_schema.columns AS c "
            "JOIN information_schema.tables AS t ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            f"WHERE t.table_type = 'BASE TABLE' AND {self.in_list('c.table_schema')}",
            [list(schemas)],
        )
        tables: dict[str, dict[str, str]] = {}
        for schema, table, column, kind in rows:
            tables.setdefault(f"{schema}.{table}", {})[str(column).lower()] = str(kind)
        return tables

    def json_from_text(self, kind: str) -> str:
        """SQL for a JSON column of type ``kind`` made from the text bound to its one ``?`` placeholder."""
        return f"CAST(? AS {kind})"

    def run_script(self, statements: Sequence[str]) -> None:
        """Run statements (DDL included, no parameters) in one transaction: all of them, or none.

        For deploys such as the tracking plan's typed views (trackway.plan.deploy).
        """
        raise NotImplementedError(f"{self.kind} runs no deploy scripts yet; use DuckDB or PostgreSQL")

    @abstractmethod
    def close(self) -> None: ...

    # -- DML and the erasure ledger (trackway.privacy) --------------------------------

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one DML statement (``?`` placeholders); the number of rows it changed."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Statements run inside commit together (BigQuery: each DML statement is atomic on its own)."""

    @abstractmethod
    def insert_rows(self, schema: str, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Append rows (tuples in ``columns`` order)."""

    @abstractmethod
    def in_list(self, expression: str) -> str:
        """SQL that is true when ``expression`` is in the list bound to its one ``?`` placeholder."""

    @abstractmethod
    def ensure_privacy_tables(self) -> None:
        """Create schema privacy and its tables if missing (warehouse/ddl.py PRIVACY_TABLES; idempotent)."""

    def add_id_hashes(self, key: SubjectKey, ids: Iterable[str]) -> int:
        """Insert (id, keyed hash) into privacy.id_hashes for the ids it lacks; returns how many.

        The dbt test that no erased subject is in a mart joins through this table: the
        warehouse itself never computes a keyed hash.
        """
        wanted = sorted(set(ids))
        added = 0
        for start in range(0, len(wanted), _ID_CHUNK):
            chunk = wanted[start : start + _ID_CHUNK]
            known = {
                r[0]
                for r in self.query(f"SELECT id FROM {PRIVACY_SCHEMA}.id_hashes WHERE {self.in_list('id')}", [chunk])
            }
            rows = [(v, key.hash(v)) for v in chunk if v not in known]
            self.insert_rows(PRIVACY_SCHEMA, "id_hashes", ("id", "id_hash"), rows)
            added += len(rows)
        return added

    def drop_staging_copies(self, source_object: str) -> int:
        """Delete the copies of an object's lines that its loads left outside the raw tables; how many.

        None here: only BigQuery's load jobs stage an object (``raw._stage_<hash>``) before inserting it.
        """
        return 0

    def record_rewrite(self, source_object: str, fingerprint: str, size_bytes: int, lines_removed: int) -> int:
        """The load ledger learns an object's rewritten version: not new data, and its erased lines are blank.

        Its rows in raw were deleted already; the lines left keep their line numbers
        (erased lines become blank lines), so the ledger's counts stay true.
        """
        return self.execute(
            f"UPDATE {RAW_SCHEMA}.{LOADED_OBJECTS} SET fingerprint = ?, size_bytes = ?, "
            "rows_loaded = CASE WHEN rows_loaded > ? THEN rows_loaded - ? ELSE 0 END, blank_lines = blank_lines + ? "
            "WHERE source_object = ?",
            [fingerprint, size_bytes, lines_removed, lines_removed, lines_removed, source_object],
        )

    def drop_erased(self, table: RawTable, source_object: str, load_id: str, fetch: Fetch, run: Run) -> int:
        """Delete the lines of erased subjects from an object's fresh rows, inside the load's transaction.

        ``fetch``/``run`` execute in that transaction (``?`` placeholders). The object
        is noted in privacy.load_filtered so an erasure run rewrites it. Returns the lines dropped.
        """
        expired = 0
        if self.retention is not None:  # nothing past retention comes back with a reload or a backfill
            found = self.expire_rows(table, self.retention, fetch, run, source_object=source_object)
            expired = sum(len(v) for v in found.deleted.values())
        matcher = self.erased
        if matcher is None:
            return expired
        name = f"{RAW_SCHEMA}.{table.name}"
        doomed: list[int] = []
        if table is QUARANTINE_TABLE:
            for line_number, event, received_at in fetch(
                f"SELECT line_number, event, received_at FROM {name} WHERE source_object = ?", [source_object]
            ):
                try:
                    record = json.loads(event) if event else None
                except ValueError:
                    continue
                if matcher.drops_ids(subject_values(record), received_at):
                    doomed.append(line_number)
        else:
            seen = fetch(
                f"SELECT DISTINCT {', '.join(SUBJECT_COLUMNS)} FROM {name} WHERE source_object = ?", [source_object]
            )
            ids = {value for row in seen for value in row if value}
            hits = matcher.matching(ids)
            if hits:
                where = " OR ".join(self.in_list(column) for column in SUBJECT_COLUMNS)
                rows = fetch(
                    f"SELECT line_number, {', '.join(SUBJECT_COLUMNS)}, received_at FROM {name} "
                    f"WHERE source_object = ? AND ({where})",
                    [source_object, *([hits] * len(SUBJECT_COLUMNS))],
                )
                doomed = [r[0] for r in rows if matcher.drops_ids(r[1:4], r[4])]
                gone = set(doomed)
                kept = {value for r in rows if r[0] not in gone for value in r[1:4] if value}
                ids = (ids - set(hits)) | kept
            if self.loaded_ids is not None:
                self.loaded_ids.update(ids)
        if doomed:
            run(
                f"DELETE FROM {name} WHERE source_object = ? AND {self.in_list('line_number')}", [source_object, doomed]
            )
            run(
                f"INSERT INTO {PRIVACY_SCHEMA}.load_filtered (source_object, load_id, rows_filtered, filtered_at) "
                "VALUES (?, ?, ?, ?)",
                [source_object, load_id, len(doomed), datetime.now(UTC)],
            )
        return len(doomed) + expired

    def expire_rows(
        self,
        table: RawTable,
        expiry: Expiring,
        fetch: Fetch,
        run: Run,
        *,
        source_object: str | None = None,
        dry_run: bool = False,
    ) -> Expired:
        """Delete or sanitise the rows of ``table`` past retention (of one object, or all); what was done.

        Candidates are read by their arrival text (one day of margin), then decided in Python
        per line; rows already sanitised are skipped in SQL. Sanitising rewrites the ``raw``
        line (and the quarantine's ``event``); ids and timestamps stay, so nothing else changes.
        """
        found = Expired()
        bound = expiry.bound
        if bound is None:
            return found
        name = f"{RAW_SCHEMA}.{table.name}"
        sql = (
            f"SELECT source_object, line_number, raw FROM {name} WHERE received_at IS NOT NULL "
            "AND received_at < ? AND (raw IS NULL OR raw NOT LIKE ?)"
        )
        params: list[Any] = [(bound + timedelta(days=1)).date().isoformat(), SANITIZED_LIKE]
        if source_object is not None:
            hour = partition_of(source_object)
            if hour is not None and hour[0] >= bound + timedelta(days=1):
                return found  # the collector's object of a recent hour (its lines arrived in that hour): no query
            sql += " AND source_object = ?"
            params.append(source_object)
        for obj_url, line_number, raw in fetch(sql, params):
            try:
                record = json.loads(raw) if raw else None
            except ValueError:
                continue
            action = expiry.decide(record, obj_url)
            if action == "delete":
                found.deleted.setdefault(obj_url, []).append(int(line_number))
            elif action is not None and isinstance(record, dict):
                sanitized = expiry.apply(record, action)
                if sanitized is not None:
                    found.sanitized[(obj_url, int(line_number))] = sanitized
        if dry_run:
            return found
        for obj_url, lines in sorted(found.deleted.items()):
            run(f"DELETE FROM {name} WHERE source_object = ? AND {self.in_list('line_number')}", [obj_url, lines])
        quarantine = table is QUARANTINE_TABLE
        for (obj_url, line_number), record in sorted(found.sanitized.items()):
            line = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
            if quarantine:
                event = record.get("event")
                run(
                    f"UPDATE {name} SET raw = ?, event = ? WHERE source_object = ? AND line_number = ?",
                    [line, None if event is None else json.dumps(event, separators=(",", ":")), obj_url, line_number],
                )
            else:
                run(
                    f"UPDATE {name} SET raw = ? WHERE source_object = ? AND line_number = ?",
                    [line, obj_url, line_number],
                )
        return found

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
