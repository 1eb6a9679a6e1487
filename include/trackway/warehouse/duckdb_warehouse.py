"""DuckDB backend: the embedded default, one file, no server."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from trackway.warehouse.base import (
    EVENTS_RAW_TABLE,
    LOADED_OBJECTS,
    RAW_SCHEMA,
    LoadRun,
    ObjectLoad,
    RawTable,
    Warehouse,
    WarehouseBusy,
)
from trackway.warehouse.ddl import LEDGER_UPSERT, LOAD_RUN_INSERT, delete_object_rows, raw_ddl


def _arrow_schema(table: RawTable) -> pa.Schema:
    return pa.schema(
        [(c, pa.string()) for c in table.columns[:-3]]
        + [("line_number", pa.int64()), ("load_id", pa.string()), ("loaded_at", pa.timestamp("us", tz="UTC"))]
    )


# DuckDB allows one writing process per file: the load task and dbt take turns.
# Writers wait their turn; people reading (status, query) should hear at once.
_LOCK_WAIT_SECONDS = {False: 120, True: 5}


class DuckDBWarehouse(Warehouse):
    kind = "duckdb"

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise FileNotFoundError(f"no DuckDB warehouse at {self.path}; run a load first (make demo)")
        self.con = self._connect(read_only)

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + _LOCK_WAIT_SECONDS[read_only]
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.ConnectionException as exc:
                # This process already writes the file (dbt-duckdb runs in-process): DuckDB
                # refuses a second, read-only handle, but sharing the open database is safe.
                if read_only and "different configuration" in str(exc):
                    return duckdb.connect(str(self.path))
                raise
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() > deadline:
                    raise WarehouseBusy(
                        f"{self.path} is locked by another process (a load or dbt run; DuckDB allows one writer): "
                        "retry when it has finished"
                    ) from exc
                time.sleep(0.5)

    def ensure_raw_tables(self) -> None:
        for stmt in raw_ddl("VARCHAR", "TIMESTAMP WITH TIME ZONE", index_source_object=False):
            self.con.execute(stmt)

    def loaded_fingerprints(self, source_objects: Sequence[str]) -> dict[str, str]:
        if not source_objects:
            return {}
        wanted = pa.table({"source_object": pa.array(list(source_objects), pa.string())})
        self.con.register("_wanted", wanted)
        try:
            rows = self.con.execute(
                f"SELECT l.source_object, l.fingerprint FROM {RAW_SCHEMA}.{LOADED_OBJECTS} l "
                "JOIN _wanted w USING (source_object)"
            ).fetchall()
        finally:
            self.con.unregister("_wanted")
        return dict(rows)

    def replace_object(
        self, load: ObjectLoad, rows: Sequence[Sequence[Any]], table: RawTable = EVENTS_RAW_TABLE
    ) -> None:
        schema = _arrow_schema(table)
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in table.columns]
        batch = pa.table(
            [pa.array(list(col), type=field.type) for col, field in zip(columns, schema, strict=True)],
            schema=schema,
        )
        cols = ", ".join(f'"{c}"' for c in table.columns)
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute(delete_object_rows(table), [load.source_object])
            self.con.register("_batch", batch)
            self.con.execute(f"INSERT INTO {RAW_SCHEMA}.{table.name} ({cols}) SELECT {cols} FROM _batch")
            self.con.unregister("_batch")
            self.con.execute(
                LEDGER_UPSERT,
                [
                    load.source_object,
                    load.fingerprint,
                    load.size_bytes,
                    load.rows,
                    load.parse_errors,
                    load.blank_lines,
                    load.object_error,
                    load.load_id,
                    load.loaded_at,
                ],
            )
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def record_load_run(self, run: LoadRun) -> None:
        self.con.execute(
            LOAD_RUN_INSERT,
            [
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
            ],
        )

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.con.execute(sql, list(params)).fetchall()

    def query_with_headers(self, sql: str, *, limit: int) -> tuple[list[str], list[tuple]]:
        cursor = self.con.execute(sql)
        return [d[0] for d in cursor.description or []], cursor.fetchmany(limit)

    def table_exists(self, schema: str, table: str) -> bool:
        row = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchone()
        return bool(row and row[0])

    def close(self) -> None:
        self.con.close()
