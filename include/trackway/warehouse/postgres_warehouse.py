"""PostgreSQL backend: the production warehouse of the docker-compose stack."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from trackway.config import WarehouseTarget
from trackway.rawdata.records import LoadRun, ObjectLoad, ObjectStats, RawObject, ledger_row
from trackway.rawdata.schema import EVENTS_RAW_TABLE, LOADED_OBJECTS, RAW_SCHEMA, RawTable
from trackway.warehouse.base import Warehouse, ledger_params, load_run_params
from trackway.warehouse.ddl import LEDGER_UPSERT, LOAD_RUN_INSERT, delete_object_rows, raw_ddl


def _pg(sql: str) -> str:
    """Our shared SQL uses ``?`` placeholders; psycopg wants ``%s``."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresWarehouse(Warehouse):
    kind = "postgres"

    def __init__(self, target: WarehouseTarget) -> None:
        self.con = psycopg.connect(
            host=target.host,
            port=target.port,
            user=target.user,
            password=target.password.get_secret_value() if target.password else None,
            dbname=target.database,
            application_name="trackway",
            autocommit=True,
        )

    def ensure_raw_tables(self) -> None:
        with self.con.transaction(), self.con.cursor() as cur:
            # Serialize concurrent first runs: CREATE ... IF NOT EXISTS can race in PostgreSQL.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('trackway.raw.ddl'))")
            for stmt in raw_ddl("TEXT", "TIMESTAMPTZ"):
                cur.execute(stmt)

    def loaded_fingerprints(self, source_objects: Sequence[str]) -> dict[str, str]:
        if not source_objects:
            return {}
        with self.con.transaction(), self.con.cursor() as cur:
            cur.execute(
                f"SELECT source_object, fingerprint FROM {RAW_SCHEMA}.{LOADED_OBJECTS} WHERE source_object = ANY(%s)",
                [list(source_objects)],
            )
            return dict(cur.fetchall())

    def load_object(self, obj: RawObject, table: RawTable = EVENTS_RAW_TABLE) -> ObjectLoad:
        """Stream the object through COPY FROM STDIN: one line in Python at a time, one transaction.

        psycopg sends COPY data in chunks as rows are written, so memory stays flat
        whatever the object's size.
        """
        from trackway.rawdata.lines import iter_rows

        stats = ObjectStats()
        cols = ", ".join(f'"{c}"' for c in table.columns)
        with self.con.transaction(), self.con.cursor() as cur:
            _lock_object(cur, obj.source_object)
            cur.execute(_pg(delete_object_rows(table)), [obj.source_object])
            with obj.open() as handle, cur.copy(f"COPY {RAW_SCHEMA}.{table.name} ({cols}) FROM STDIN") as copy:
                for row in iter_rows(
                    handle,
                    stats,
                    source_object=obj.source_object,
                    load_id=obj.load_id,
                    loaded_at=obj.loaded_at,
                    text_fields=table.text_fields,
                    source=obj.source,
                    received_at=obj.received_at,
                    judge=obj.judge,
                ):
                    copy.write_row(row)
            load = ledger_row(obj, stats)
            cur.execute(_pg(LEDGER_UPSERT), ledger_params(load))
        return load

    def replace_object(
        self, load: ObjectLoad, rows: Sequence[Sequence[Any]], table: RawTable = EVENTS_RAW_TABLE
    ) -> None:
        cols = ", ".join(f'"{c}"' for c in table.columns)
        with self.con.transaction(), self.con.cursor() as cur:
            _lock_object(cur, load.source_object)
            cur.execute(_pg(delete_object_rows(table)), [load.source_object])
            with cur.copy(f"COPY {RAW_SCHEMA}.{table.name} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(
                _pg(LEDGER_UPSERT),
                ledger_params(load),
            )

    def record_load_run(self, run: LoadRun) -> None:
        with self.con.transaction(), self.con.cursor() as cur:
            cur.execute(
                _pg(LOAD_RUN_INSERT),
                load_run_params(run),
            )

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.con.transaction(), self.con.cursor() as cur:
            cur.execute(_pg(sql), list(params))
            return cur.fetchall()

    def query_with_headers(self, sql: str, *, limit: int) -> tuple[list[str], list[tuple]]:
        with self.con.transaction(), self.con.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute(sql)
            return [d.name for d in cur.description or []], cur.fetchmany(limit)

    def run_script(self, statements: Sequence[str]) -> None:
        # Simple-query protocol (no parameters): a few hundred statements per round trip, one transaction.
        with self.con.transaction(), self.con.cursor() as cur:
            for start in range(0, len(statements), 200):
                cur.execute(";\n".join(statements[start : start + 200]).encode("utf-8"))

    def table_exists(self, schema: str, table: str) -> bool:
        rows = self.query(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [schema, table]
        )
        return bool(rows[0][0])

    def close(self) -> None:
        self.con.close()


def _lock_object(cur: Any, source_object: str) -> None:
    """Serialise loads of one object across sessions until this transaction ends.

    Under READ COMMITTED two concurrent loads of the same object (a ``--reload`` beside
    the DAG, overlapping backfills) would each delete nothing and both insert. With the
    lock the second waits, and its DELETE then sees and removes the first one's rows.
    """
    cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [source_object])
