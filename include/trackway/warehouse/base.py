"""The warehouse seam: what the loader and the CLI need from any warehouse.

Each backend (DuckDB, PostgreSQL, later BigQuery) implements this small
interface, so adding one touches no DAG. Typing of events is not here: it
lives in dbt (see adr/0002-raw-then-transform.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from trackway.config import Source

RAW_SCHEMA = "raw"
EVENTS_RAW = "events_raw"
EVENTS_QUARANTINE = "events_quarantine"
LOADED_OBJECTS = "loaded_objects"
LOAD_RUNS = "load_runs"

# Input-derived columns of raw.events_raw: all text, copied from the JSON keys.
RAW_TEXT_FIELDS: tuple[tuple[str, str], ...] = (
    ("message_id", "messageId"),
    ("type", "type"),
    ("event", "event"),
    ("name", "name"),
    ("user_id", "userId"),
    ("anonymous_id", "anonymousId"),
    ("group_id", "groupId"),
    ("previous_id", "previousId"),
    ("source_id", "sourceId"),
    ("timestamp", "timestamp"),
    ("original_timestamp", "originalTimestamp"),
    ("sent_at", "sentAt"),
    ("received_at", "receivedAt"),
)
LINE_COLUMNS: tuple[str, ...] = ("raw", "parse_error", "source_object", "line_number", "load_id", "loaded_at")


@dataclass(frozen=True)
class RawTable:
    """A raw landing table: text columns copied from JSON keys, then the line and its lineage.

    Lineage columns are typed because we write them; everything from the input is text.
    """

    name: str
    text_fields: tuple[tuple[str, str], ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.text_fields) + LINE_COLUMNS


EVENTS_RAW_TABLE = RawTable(EVENTS_RAW, RAW_TEXT_FIELDS)
# What the collector quarantined (invalid events of otherwise valid batches), with its reason.
QUARANTINE_TABLE = RawTable(
    EVENTS_QUARANTINE,
    (("reason", "reason"), ("received_at", "receivedAt"), ("source_id", "sourceId"), ("event", "event")),
)
RAW_TABLES = (EVENTS_RAW_TABLE, QUARANTINE_TABLE)
RAW_COLUMNS: tuple[str, ...] = EVENTS_RAW_TABLE.columns


class WarehouseBusy(RuntimeError):
    """Another process holds the warehouse (DuckDB's single writer); the message says what to do."""


@dataclass(frozen=True)
class ObjectLoad:
    """One raw object's load, recorded in raw.loaded_objects: the exactly-once ledger."""

    source_object: str
    fingerprint: str
    size_bytes: int
    rows: int
    parse_errors: int
    blank_lines: int
    object_error: str | None
    load_id: str
    loaded_at: datetime


@dataclass(frozen=True)
class RawObject:
    """One raw object to load: where it is, how to read it, and the ledger facts about it.

    ``open`` returns a binary stream that supports ``seek`` (ObjectStoragePath and
    local files do). ``local_path`` is set when the object is a file on this machine,
    so an engine that reads files itself (DuckDB) can read it in place.
    """

    source_object: str
    fingerprint: str
    size_bytes: int
    load_id: str
    loaded_at: datetime
    open: Callable[[], IO[bytes]]
    local_path: Path | None = None
    #: An extra raw source (sources file): its layout, field mapping and defaults apply to each record.
    source: Source | None = None
    #: receivedAt for records that carry none (the object's arrival time).
    received_at: str | None = None


@dataclass(frozen=True)
class LoadRun:
    load_id: str
    interval_start: datetime
    interval_end: datetime
    started_at: datetime
    finished_at: datetime
    triggered_by: str
    objects_found: int
    objects_loaded: int
    objects_skipped: int
    rows_loaded: int
    parse_errors: int


@dataclass
class ObjectStats:
    """What reading one object found: rows written, bad lines, blank lines, damage."""

    rows: int = 0
    parse_errors: int = 0
    blank_lines: int = 0
    object_error: str | None = None


def ledger_row(obj: RawObject, stats: ObjectStats) -> ObjectLoad:
    return ObjectLoad(
        source_object=obj.source_object,
        fingerprint=obj.fingerprint,
        size_bytes=obj.size_bytes,
        rows=stats.rows,
        parse_errors=stats.parse_errors,
        blank_lines=stats.blank_lines,
        object_error=stats.object_error,
        load_id=obj.load_id,
        loaded_at=obj.loaded_at,
    )


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
        from trackway.load.raw_lines import parse_object

        with obj.open() as handle:
            parsed = parse_object(
                handle,
                source_object=obj.source_object,
                load_id=obj.load_id,
                loaded_at=obj.loaded_at,
                text_fields=table.text_fields,
                source=obj.source,
                received_at=obj.received_at,
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
        """Run ad-hoc SQL for people: column names and at most ``limit`` rows."""

    @abstractmethod
    def table_exists(self, schema: str, table: str) -> bool: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
