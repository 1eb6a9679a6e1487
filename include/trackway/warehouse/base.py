"""The warehouse seam: what the loader and the CLI need from any warehouse.

Each backend (DuckDB, PostgreSQL, BigQuery) implements this small
interface, so adding one touches no DAG. Typing of events is not here: it
lives in dbt (see adr/0002-raw-then-transform.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from trackway.rawdata.lines import parse_object
from trackway.rawdata.records import LoadRun, ObjectLoad, RawObject, ledger_row
from trackway.rawdata.schema import EVENTS_RAW_TABLE, RawTable


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
        """Run ad-hoc SQL for people: column names and at most ``limit`` rows."""

    @abstractmethod
    def table_exists(self, schema: str, table: str) -> bool: ...

    def run_script(self, statements: Sequence[str]) -> None:
        """Run statements (DDL included, no parameters) in one transaction: all of them, or none.

        For deploys such as the tracking plan's typed views (trackway.plan.deploy).
        """
        raise NotImplementedError(f"{self.kind} runs no deploy scripts yet; use DuckDB or PostgreSQL")

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
