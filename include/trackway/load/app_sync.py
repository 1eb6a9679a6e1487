"""Copy a product database's tables into the warehouse's ``app`` schema with dlt (adr/0023, docs/app-data.md).

Each table declared in the sources file (``kind: database``) is read with dlt's
``sql_database`` source: incrementally on its cursor (an ``updated_at``-style column),
merged on its primary key, its schema evolving with the source. A column whose type
changes keeps its name and type; values that no longer fit go to dlt's variant column
(``price__v_text``), and the report says so. Rows deleted in the product database are
marked (``_trackway_deleted_at``) or removed, as the table's entry says.

The product database is opened read-only where the driver allows it (SQLite, PostgreSQL):
the sync never writes it. On DuckDB the warehouse file is held for the whole sync,
after waiting for any load or transform that holds it (``WarehouseBusy``, as the loader).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from trackway.config import AppDatabase, AppTable, ConfigError, Settings, WarehouseTarget

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

log = logging.getLogger(__name__)

#: Set on rows the product database no longer has, when the table's entry says ``deletes: soft``.
DELETED_AT = "_trackway_deleted_at"
#: Columns dlt adds to every table (which load wrote a row, a row id): not the product's data.
DLT_COLUMN_PREFIX = "_dlt_"
#: dlt's name for a column holding the values that no longer fit a column's type: ``<column>__v_<type>``.
VARIANT_MARK = "__v_"
_KEY_BATCH = 500


class _QuietDeletedAtHint(logging.Filter):
    """dlt's sql_table warns that the ``_trackway_deleted_at`` hint matches no source column: it is ours, by design."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (DELETED_AT in str(record.args) and "do not match any reflected" in record.msg)


class AppSyncError(RuntimeError):
    """A product database cannot be synced as declared; the message names the table and what to change."""


@dataclass
class TableSync:
    """What one sync did to one table."""

    table: str
    primary_key: list[str]
    rows: int = 0  # rows copied (new or changed since the last sync)
    deleted: int = 0  # rows the product no longer has, marked or removed now
    new_columns: list[str] = field(default_factory=list)
    type_changes: list[str] = field(default_factory=list)  # "price: values that are not bigint go to price__v_text"
    gone_columns: list[str] = field(default_factory=list)  # in the warehouse, no longer in the product's table


@dataclass
class AppSyncReport:
    database: str
    schema: str  # where the tables went (BigQuery: the dataset)
    warehouse: str  # duckdb, postgres or bigquery
    tables: list[TableSync] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def as_dict(self) -> dict:
        return {**asdict(self), "rows": self.rows}

    def lines(self) -> list[str]:
        """One line per table, then one per schema change: what the CLI, the demo and the task log print."""
        out = []
        for t in self.tables:
            deleted = f", {t.deleted} deleted" if t.deleted else ""
            out.append(f"{self.schema}.{t.table}: {t.rows:,} rows copied{deleted}")
            out += [f"  {self.schema}.{t.table}: new column {c}" for c in t.new_columns]
            out += [f"  {self.schema}.{t.table}: type change: {c}" for c in t.type_changes]
            out += [
                f"  {self.schema}.{t.table}: column {c} is no longer in the product's table" for c in t.gone_columns
            ]
        return out


# ---- the product database


def connection_url(conn_id: str) -> URL:
    """The SQLAlchemy URL of an Airflow connection: its hook's (PostgreSQL, MySQL, ...), or a SQLite file's."""
    from airflow.sdk import BaseHook
    from sqlalchemy.engine import URL

    conn = BaseHook.get_connection(conn_id)
    if conn.conn_type == "sqlite":
        return URL.create("sqlite", database=conn.host)
    hook = conn.get_hook()
    try:
        return hook.sqlalchemy_url
    except (AttributeError, NotImplementedError) as exc:
        raise AppSyncError(
            f"Airflow connection {conn_id!r} (type {conn.conn_type}) gives no SQLAlchemy URL: use a connection type "
            "whose provider builds one (postgres, mysql, mssql, sqlite)"
        ) from exc


def source_engine(database: AppDatabase) -> Engine:
    """An engine on the product database that cannot write where the driver allows it: SQLite, PostgreSQL."""
    from pathlib import Path

    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    url = make_url(database.url) if database.url else connection_url(database.conn_id or "")
    backend = url.get_backend_name()
    if backend == "sqlite":
        path: str = url.database or ""
        if path in ("", ":memory:") or not Path(path).is_file():
            # SQLite would create an empty file there and every table would be "missing".
            raise AppSyncError(f"database {database.name!r}: no SQLite file at {path or '(none)'}")
        # SQLite's own read-only mode, through a file: URI (pysqlite's uri=true).
        return create_engine(url.set(database=Path(path).resolve().as_uri(), query={"uri": "true", "mode": "ro"}))
    if backend == "postgresql":
        return create_engine(url, connect_args={"options": "-c default_transaction_read_only=on"})
    return create_engine(url)


def check_tables(engine: Engine, database: AppDatabase) -> dict[str, tuple[str, ...]]:
    """Each table's primary key, after checking what its entry names exists; AppSyncError lists every problem."""
    from sqlalchemy import inspect

    inspector = inspect(engine)
    schema = database.source_schema
    present = set(inspector.get_table_names(schema=schema)) | set(inspector.get_view_names(schema=schema))
    keys: dict[str, tuple[str, ...]] = {}
    problems: list[str] = []
    for table in database.tables:
        if table.name not in present:
            problems.append(
                f"table {table.name!r} is not in the database (it has: {', '.join(sorted(present)) or 'none'})"
            )
            continue
        columns = [c["name"] for c in inspector.get_columns(table.name, schema=schema)]
        key = table.primary_key or tuple(inspector.get_pk_constraint(table.name, schema=schema)["constrained_columns"])
        if not key:
            problems.append(
                f"table {table.name!r} has no primary key and its entry names none: add primary_key: [column] "
                "(what identifies a row; without it an updated row could not replace its older copy)"
            )
        named = [("cursor", table.cursor), ("delete_column", table.delete_column)] + [("primary_key", k) for k in key]
        for what, column in named:
            if column is not None and column not in columns:
                problems.append(
                    f"table {table.name!r}: {what} {column!r} is not one of its columns ({', '.join(columns)})"
                )
        keys[table.name] = key
    if problems:
        raise AppSyncError(f"database {database.name!r}: " + "; ".join(problems))
    return keys


# ---- the warehouse


@contextmanager
def _destination(settings: Settings, database: AppDatabase) -> Iterator[tuple[Any, str, WarehouseTarget]]:
    """(dlt destination, dataset name, target) for the warehouse; on DuckDB the file is held until the end."""
    import dlt

    target = settings.load_warehouse  # PostgreSQL: the loader's role, which owns the landing schemas raw and app
    if target.kind == "duckdb":
        from trackway.warehouse.duckdb_warehouse import DuckDBWarehouse

        assert target.duckdb_path is not None, "WarehouseTarget.parse sets the path for duckdb URLs"
        # Waits while a load or transform holds the file, then WarehouseBusy (exit 75 / an Airflow retry).
        wh = DuckDBWarehouse(
            target.duckdb_path,
            lock_wait_seconds=target.duckdb_lock_wait_seconds,
            memory_limit=target.duckdb_memory(),
        )
        try:
            yield dlt.destinations.duckdb(wh.con), database.schema, target
        finally:
            wh.close()
    elif target.kind == "postgres":
        yield dlt.destinations.postgres(target.url.get_secret_value()), database.schema, target
    else:
        yield _bigquery(target), target.dataset(database.schema), target


def _bigquery(target: WarehouseTarget) -> Any:
    import dlt
    from dlt.common.configuration.specs.gcp_credentials import GcpDefaultCredentials, GcpServiceAccountCredentials

    if target.api_endpoint:
        raise AppSyncError(
            "TRACKWAY_BIGQUERY_API_ENDPOINT is set, but dlt's BigQuery destination always calls Google's API: "
            "unset it to sync into BigQuery (the endpoint is for emulators)"
        )
    if target.conn_id:
        from trackway.warehouse.connections import google_credentials

        native = google_credentials(target.conn_id)
    else:
        import google.auth

        native, _ = google.auth.default()
    credentials = GcpServiceAccountCredentials()
    # Any google-auth credentials (a key, ADC, workload identity), as dlt takes them for its default credentials.
    GcpDefaultCredentials.parse_native_representation(credentials, native)
    credentials.project_id = target.project or ""
    return dlt.destinations.bigquery(credentials=credentials, location=target.location)


# ---- the sync


def _resource(engine: Engine, database: AppDatabase, table: AppTable, key: tuple[str, ...]) -> Any:
    import dlt
    from dlt.sources.sql_database import sql_table

    resource = sql_table(
        credentials=engine,
        table=table.name,
        schema=database.source_schema,
        # Rows with no cursor value are copied on the first sync (the SQL filter skips them later).
        incremental=dlt.sources.incremental(table.cursor, on_cursor_value_missing="include"),
        write_disposition="merge",
        primary_key=list(key),
        # Types come from the values, so a column whose type changes evolves (a variant column) instead of failing.
        reflection_level="minimal",
    )
    hints: dict[str, Any] = {}
    if table.delete_column and table.deletes == "remove":
        hints[table.delete_column] = {"hard_delete": True}  # dlt deletes rows whose delete_column is set
    if table.delete_column is None and table.deletes == "soft":
        hints[DELETED_AT] = {"data_type": "timestamp", "nullable": True}
    if hints:
        resource.apply_hints(columns=hints)
    return resource


def _columns(pipeline: Any) -> dict[str, set[str]]:
    """The warehouse's columns of each table, as dlt's schema knows them (empty before the first sync)."""
    if not pipeline.default_schema_name:
        return {}
    return {name: set(t.get("columns", {})) for name, t in pipeline.default_schema.tables.items()}


def _schema_changes(sync: TableSync, before: set[str], after: set[str], source: Sequence[str], naming: Any) -> None:
    if not before:  # a new table: nothing changed
        return
    for column in sorted(after - before):
        if VARIANT_MARK in column:
            base, kind = column.split(VARIANT_MARK, 1)
            sync.type_changes.append(f"{base}: values that do not fit its type now go to {column} ({kind})")
        elif not column.startswith(DLT_COLUMN_PREFIX):
            sync.new_columns.append(column)
    ours = {naming.normalize_identifier(c) for c in source}
    sync.gone_columns = sorted(
        c for c in after - ours if not c.startswith(DLT_COLUMN_PREFIX) and VARIANT_MARK not in c and c != DELETED_AT
    )


def _apply_deletes(
    pipeline: Any, engine: Engine, database: AppDatabase, table: AppTable, key: tuple[str, ...], now: datetime
) -> int:
    """Rows the warehouse has and the product database no longer has: marked (soft) or removed; how many."""
    from sqlalchemy import column, select
    from sqlalchemy import table as sa_table

    naming = pipeline.default_schema.naming
    name = naming.normalize_table_identifier(table.name)
    if name not in pipeline.default_schema.tables:
        return 0  # never copied (an empty table): nothing to delete
    with engine.connect() as con:
        query: Any = select(*(column(k) for k in key)).select_from(sa_table(table.name, schema=database.source_schema))
        present = {tuple(str(v) for v in row) for row in con.execute(query)}
    soft = table.deletes == "soft"
    with pipeline.sql_client() as client:
        qualified = client.make_qualified_table_name(name)
        cols = [client.escape_column_name(naming.normalize_identifier(k)) for k in key]
        marker = client.escape_column_name(DELETED_AT)
        live = f" WHERE {marker} IS NULL" if soft else ""
        with client.execute_query(f"SELECT {', '.join(cols)} FROM {qualified}{live}") as cursor:
            gone = [tuple(row) for row in cursor.fetchall() if tuple(str(v) for v in row) not in present]
        for start in range(0, len(gone), _KEY_BATCH):
            batch = gone[start : start + _KEY_BATCH]
            match = " OR ".join("(" + " AND ".join(f"{c} = %s" for c in cols) + ")" for _ in batch)
            values = [v for row in batch for v in row]
            if soft:
                client.execute_sql(f"UPDATE {qualified} SET {marker} = %s WHERE {match}", now, *values)
            else:
                client.execute_sql(f"DELETE FROM {qualified} WHERE {match}", *values)
    return len(gone)


def _dlt_defaults() -> None:
    """dlt's settings Trackway relies on, before dlt reads its configuration (once per process).

    No anonymous usage telemetry (no request leaves for it). No Airflow Variables as a dlt
    configuration source: credentials come from the sources file's Airflow connection only,
    and dlt would otherwise look a Variable up for every setting it resolves. An operator's
    own value of either variable wins.
    """
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")


def sync_database(
    settings: Settings, database: AppDatabase, *, now: Callable[[], datetime] | None = None
) -> AppSyncReport:
    """Copy every declared table of ``database`` once: new and changed rows merged, deletes applied, changes reported."""
    _dlt_defaults()
    import dlt
    from dlt.pipeline.exceptions import PipelineStepFailed

    dlt_log = logging.getLogger("dlt")
    if not any(isinstance(f, _QuietDeletedAtHint) for f in dlt_log.filters):
        dlt_log.addFilter(_QuietDeletedAtHint())
    started = time.monotonic()
    engine = source_engine(database)
    try:
        keys = check_tables(engine, database)
        with _destination(settings, database) as (destination, dataset, target):
            pipeline = dlt.pipeline(
                pipeline_name=f"trackway_app_{database.name}",
                destination=destination,
                dataset_name=dataset,
                pipelines_dir=str(settings.home / "dlt"),
            )
            pipeline.sync_destination()  # a worker without the local state gets it (and the schema) from the warehouse
            before = _columns(pipeline)
            resources = [_resource(engine, database, t, keys[t.name]) for t in database.tables]
            try:
                pipeline.run(resources)
            except PipelineStepFailed as exc:
                # The failed package goes, with the cursor state it carried: the next run copies the same rows again.
                pipeline.drop_pending_packages()
                raise AppSyncError(
                    f"database {database.name!r}: the sync failed at dlt's {exc.step} step and was rolled back to the "
                    f"last good sync: {str(exc.exception).splitlines()[0] if str(exc.exception) else type(exc.exception).__name__}"
                ) from exc
            after = _columns(pipeline)
            naming = pipeline.default_schema.naming
            normalized = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
            counts = normalized.row_counts if normalized else {}
            report = AppSyncReport(database.name, dataset, target.kind)
            moment = (now or (lambda: datetime.now(UTC)))()
            for table in database.tables:
                name = naming.normalize_table_identifier(table.name)
                sync = TableSync(table.name, list(keys[table.name]), rows=int(counts.get(name, 0)))
                source = _source_columns(engine, database, table)
                _schema_changes(sync, before.get(name, set()), after.get(name, set()), source, naming)
                if table.deletes != "ignore" and table.delete_column is None:
                    sync.deleted = _apply_deletes(pipeline, engine, database, table, keys[table.name], moment)
                report.tables.append(sync)
    finally:
        engine.dispose()
    report.seconds = round(time.monotonic() - started, 2)
    for line in report.lines():
        (log.warning if "type change" in line or "no longer" in line else log.info)(line)
    return report


def _source_columns(engine: Engine, database: AppDatabase, table: AppTable) -> list[str]:
    from sqlalchemy import inspect

    return [c["name"] for c in inspect(engine).get_columns(table.name, schema=database.source_schema)]


def sync_named(settings: Settings, name: str) -> AppSyncReport:
    """The app_sync DAG's task: one declared database, by name (the sources file is read when the task runs)."""
    try:
        database = settings.app_database(name)
    except ConfigError as exc:
        raise AppSyncError(str(exc)) from None
    return sync_database(settings, database)
