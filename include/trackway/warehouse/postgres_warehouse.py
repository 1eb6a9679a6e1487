"""PostgreSQL backend: the production warehouse of the docker-compose stack."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from trackway.config import WarehouseTarget
from trackway.rawdata.records import LoadRun, ObjectLoad, ObjectStats, RawObject, ledger_row
from trackway.rawdata.schema import EVENTS_RAW_TABLE, LOADED_OBJECTS, RAW_SCHEMA, RawTable
from trackway.warehouse.base import Warehouse, ledger_params, load_run_params
from trackway.warehouse.ddl import (
    LEDGER_UPSERT,
    LOAD_RUN_INSERT,
    PRIVACY_SCHEMA,
    delete_object_rows,
    privacy_statements,
    raw_ddl,
)
from trackway.warehouse.readonly import ReadOnlyQueryError, as_subquery


def _pg(sql: str) -> str:
    """Our shared SQL uses ``?`` placeholders; psycopg wants ``%s``."""
    return sql.replace("%", "%%").replace("?", "%s")


# Membership in these lets a role read or write the server's files or run programs: no place for people's SQL.
_SERVER_ACCESS_ROLES = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program")


class PostgresWarehouse(Warehouse):
    kind = "postgres"

    def __init__(self, target: WarehouseTarget, *, read_only: bool = False) -> None:
        self.read_only = read_only
        self.target = target
        self.con = psycopg.connect(
            host=target.host,
            port=target.port,
            user=target.user,
            password=target.password.get_secret_value() if target.password else None,
            dbname=target.database,
            application_name="trackway",
            autocommit=True,
            # Read-only at the session level too: a statement outside transaction() cannot write either.
            options="-c default_transaction_read_only=on" if read_only else None,
        )
        if read_only:
            # Every transaction() opens with BEGIN READ ONLY, whatever the session's default has become.
            self.con.read_only = True
        self._server_access: bool | None = None

    def ensure_raw_tables(self) -> None:
        with self.con.transaction(), self.con.cursor() as cur:
            # Serialize concurrent first runs: CREATE ... IF NOT EXISTS can race in PostgreSQL.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('trackway.raw.ddl'))")
            cur.execute("SELECT to_regnamespace(%s) IS NOT NULL", [RAW_SCHEMA])
            row = cur.fetchone()
            schema_exists = bool(row and row[0])
            for stmt in raw_ddl("TEXT", "TIMESTAMPTZ"):
                # CREATE SCHEMA IF NOT EXISTS still needs CREATE on the database, which the
                # loader's own role lacks: it owns raw, made by `trackway warehouse grant`.
                if schema_exists and stmt.startswith("CREATE SCHEMA"):
                    continue
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
        """Stream the object through binary COPY FROM STDIN, one transaction (adr/0045).

        The collector's lines are read by ``trackway.rawdata.copyrows`` (msgspec, only the
        kept keys); extra sources' records, which need their mapping, by ``iter_rows``. Both
        go out through psycopg's compiled binary ``write_row``. Memory stays flat whatever
        the object's size.
        """
        from trackway.rawdata.copyrows import copy_rows, copy_types
        from trackway.rawdata.lines import iter_rows

        stats = ObjectStats()
        cols = ", ".join(f'"{c}"' for c in table.columns)
        with self.con.transaction(), self.con.cursor() as cur:
            _lock_object(cur, obj.source_object)
            cur.execute(_pg(delete_object_rows(table)), [obj.source_object])
            copy_sql = f"COPY {RAW_SCHEMA}.{table.name} ({cols}) FROM STDIN (FORMAT binary)"
            _send_bytes_compiled(cur)
            with obj.open() as handle, cur.copy(copy_sql) as copy:
                copy.set_types(copy_types(table.text_fields, raw_line_bytes=obj.source is None))
                where: dict[str, Any] = {
                    "source_object": obj.source_object,
                    "load_id": obj.load_id,
                    "loaded_at": obj.loaded_at,
                    "text_fields": table.text_fields,
                }
                if obj.source is None:  # the collector's lines
                    rows = copy_rows(handle, stats, **where)
                else:  # an extra source's records need its mapping
                    rows = iter_rows(
                        handle, stats, source=obj.source, received_at=obj.received_at, judge=obj.judge, **where
                    )
                write_row = copy.write_row
                for row in rows:
                    write_row(row)
            stats.erased = self.drop_erased(table, obj.source_object, obj.load_id, _fetcher(cur), _fetcher(cur))
            stats.rows -= stats.erased
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
        """One SELECT as a subquery, through the extended protocol, in a read-only transaction rolled back after.

        ``prepare=True`` sends Parse/Bind/Execute, which takes exactly one statement
        (the simple protocol ran ``COMMIT; DROP ...`` as two); the subquery admits
        only a query; the rollback undoes any ``set_config`` the query made.
        """
        if not self.read_only:
            raise ReadOnlyQueryError("people's SQL runs only on a read-only connection")
        self._refuse_server_access()
        try:
            with self.con.transaction(force_rollback=True), self.con.cursor() as cur:
                cur.execute(as_subquery(sql, limit), prepare=True)
                return [d.name for d in cur.description or []], cur.fetchall()
        except (
            psycopg.errors.SyntaxError,  # not a query: DML, DDL, COPY, SET, a second statement
            psycopg.errors.FeatureNotSupported,  # WITH ... DELETE inside the subquery
            psycopg.errors.ReadOnlySqlTransaction,  # a write inside a query: nextval(), SELECT ... FOR UPDATE
            psycopg.errors.ActiveSqlTransaction,  # set_config('transaction_read_only', 'off', ...)
        ) as exc:
            raise ReadOnlyQueryError(f"PostgreSQL refused it: {str(exc).splitlines()[0]}") from exc

    def _refuse_server_access(self) -> None:
        """A superuser's SELECT can still read the server's files (pg_read_file): people's SQL needs a plainer role."""
        if self._server_access is None:
            with self.con.transaction(), self.con.cursor() as cur:
                checks = " OR ".join(["pg_has_role(current_user, %s, 'MEMBER')"] * len(_SERVER_ACCESS_ROLES))
                cur.execute(f"SELECT current_setting('is_superuser') = 'on' OR {checks}", list(_SERVER_ACCESS_ROLES))
                row = cur.fetchone()
                self._server_access = bool(row and row[0])
        if self._server_access:
            raise ReadOnlyQueryError(
                f"role {self.target.user!r} of {self.target.display_url} is a superuser or may touch the server's "
                "files, so people's SQL does not run as it: set TRACKWAY_READ_WAREHOUSE_URL to a read-only role "
                "(`trackway warehouse grant` creates one; docs/reference/warehouse-roles.md)"
            )

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

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self.con.transaction(), self.con.cursor() as cur:
            cur.execute(_pg(sql), list(params))
            return max(cur.rowcount, 0)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.con.transaction():
            yield

    def insert_rows(self, schema: str, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        copy_sql = f"COPY {schema}.{table} ({', '.join(columns)}) FROM STDIN"
        with self.con.transaction(), self.con.cursor() as cur, cur.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)

    def in_list(self, expression: str) -> str:
        return f"{expression} = ANY(?)"

    def ensure_privacy_tables(self) -> None:
        with self.con.transaction(), self.con.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('trackway.privacy.ddl'))")
            cur.execute("SELECT to_regnamespace(%s) IS NOT NULL", [PRIVACY_SCHEMA])
            row = cur.fetchone()
            schema_exists = bool(row and row[0])
            for stmt in privacy_statements("TEXT", "TIMESTAMPTZ", "BIGINT", "BOOLEAN"):
                # As for raw: the loader's role owns schema privacy (trackway warehouse grant) but may not
                # CREATE SCHEMA, which IF NOT EXISTS still asks of it.
                if schema_exists and stmt.startswith("CREATE SCHEMA"):
                    continue
                cur.execute(stmt)

    def close(self) -> None:
        self.con.close()


def _fetcher(cur: Any) -> Any:
    """``fetch``/``run`` for ``drop_erased`` on this transaction's cursor (``?`` placeholders)."""

    def fetch(sql: str, params: Sequence[Any]) -> list[tuple]:
        cur.execute(_pg(sql), list(params))
        return cur.fetchall() if cur.description else []

    return fetch


def _send_bytes_compiled(cur: Any) -> None:
    """Bytes typed ``bytea`` in ``set_types`` go through psycopg's compiled dumper, on this cursor.

    ``psycopg.dbapi20`` registers a Python dumper for the bytea oid last (for its ``Binary``
    wrapper), and ``set_types`` picks dumpers by oid: with it, formatting the rows took about
    40% more client time than with the compiled one (adr/0046).
    """
    from psycopg.adapt import PyFormat

    cur.adapters.register_dumper(bytes, cur.adapters.get_dumper(bytes, PyFormat.BINARY))


def _lock_object(cur: Any, source_object: str) -> None:
    """Serialise loads of one object across sessions until this transaction ends.

    Under READ COMMITTED two concurrent loads of the same object (a ``--reload`` beside
    the DAG, overlapping backfills) would each delete nothing and both insert. With the
    lock the second waits, and its DELETE then sees and removes the first one's rows.
    """
    cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [source_object])
