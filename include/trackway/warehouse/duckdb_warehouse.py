"""DuckDB backend: the embedded default, one file, no server."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import duckdb

if TYPE_CHECKING:  # imported where Arrow tables are built: status and queries need none (~0.3 s)
    import pyarrow as pa

from trackway.config.warehouse import memory_size_mib
from trackway.rawdata.records import LoadRun, ObjectLoad, ObjectStats, RawObject, ledger_row
from trackway.rawdata.schema import (
    EVENTS_RAW_TABLE,
    LOADED_OBJECTS,
    PLAN_VERDICT_COLUMN,
    RAW_SCHEMA,
    RAW_TEXT_FIELDS,
    RawTable,
)
from trackway.warehouse.base import Warehouse, WarehouseBusy, ledger_params, load_run_params
from trackway.warehouse.ddl import LEDGER_UPSERT, LOAD_RUN_INSERT, delete_object_rows, privacy_statements, raw_ddl
from trackway.warehouse.readonly import ReadOnlyQueryError


def _arrow_schema(table: RawTable) -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [(c, pa.string()) for c in table.columns[:-3]]
        + [("line_number", pa.int64()), ("load_id", pa.string()), ("loaded_at", pa.timestamp("us", tz="UTC"))]
    )


log = logging.getLogger(__name__)

# DuckDB's buffer pool during loads; with preserve_insertion_order off, big inserts spill instead of growing.
# Lower still when TRACKWAY_DUCKDB_MEMORY_LIMIT says so.
LOAD_MEMORY_LIMIT_MIB = 512
# parse_error of lines whose verdict Python gives (rare: invalid, odd or blank lines), replaced before commit.
_PENDING = "trackway:pending-check"
_FIX_BATCH = 10_000
_ARROW_BATCH = 50_000
_CHUNK = 4 * 1024 * 1024
# DuckDB's rows per row group. A transaction that wrote at least this many rows filled whole row groups, and
# the checkpoint's vacuum would rewrite nearly all of them to merge each transaction's partly filled last
# ones: 6-7 s of a 16 s load of 1 M events (docs/benchmarks.md, "Loader"). Such loads skip the vacuum.
_ROW_GROUP_ROWS = 122_880
# DuckDB's CSV reader ends a record at a lone CR too, and splits at its delimiter: objects holding
# either go the Python way so line numbers and texts stay exactly as written.
_HAZARDS = ((b"\r", "carriage returns"), (b"\x01", "0x01 bytes"))
_LINES_OPTIONS = (
    "columns={'line': 'VARCHAR'}, delim=chr(1), quote='', escape='', header=false, auto_detect=false, "
    "strict_mode=false, new_line='\\n', compression=?"
)
# A line DuckDB may accept as JSON where Python's json refuses it, or that needs a closer look:
# NaN/Infinity literals and trailing commas (yyjson allows both), \u0000 and lone-surrogate escapes,
# NUL bytes. Such lines, and the ones DuckDB refuses, get their verdict from trackway.rawdata.lines.
# One check per kind, cheapest first. The NaN/Infinity pattern starts with no literal RE2 can skip to, so it
# cost more than the JSON extraction: it runs only on lines holding "nan" or "inf" in any case, which every
# such literal does.
_PLAIN_LINE = (
    "f IS NOT NULL AND starts_with(ltrim(line, ' \t'), '{') "
    "AND NOT contains(line, chr(0)) "
    "AND NOT regexp_matches(line, ',\\s*[\\]}]') "
    "AND NOT regexp_matches(line, '\\\\u(0000|[dD][89a-fA-F])') "
    "AND NOT (CASE WHEN regexp_matches(line, '(?i)nan') OR regexp_matches(line, '(?i)inf') "
    "THEN regexp_matches(line, '[:\\[,]\\s*[-+]?[nNiI][aAnN][nNfF]') ELSE false END)"
)


def _chunks(statements: Sequence[str], size: int = 200) -> Iterator[str]:
    """Statements joined a few hundred at a time: one round trip each, not one per statement."""
    for start in range(0, len(statements), size):
        yield ";\n".join(statements[start : start + size])


def _json_path(key: str) -> str:
    return '$."' + key.replace('"', '\\"') + '"'


def _scan_chunks(chunks: Iterator[bytes]) -> str | None:
    """The first hazard found in a decompressed byte stream, or None."""
    for chunk in chunks:
        for needle, what in _HAZARDS:
            if needle in chunk:
                return what
    return None


def _read_chunks(handle: Any) -> Iterator[bytes]:
    while chunk := handle.read(_CHUNK):
        yield chunk


# DuckDB allows one writing process per file: the load task and dbt take turns. Writers wait their turn
# (TRACKWAY_DUCKDB_LOCK_WAIT_SECONDS); readers (status, query, health) wait TRACKWAY_DUCKDB_READ_WAIT_SECONDS,
# longer than one micro-batch transform holds the file, so they answer while micro-batches run.
_RETRY_SECONDS = 0.25
# Read-only connections read the warehouse file and nothing else: no other file, no URL, no ATTACH, no
# extension, no Python variable as a table; lock_configuration (last) keeps a query from SETting them back.
READ_ONLY_CONFIG = {
    "enable_external_access": False,
    "python_enable_replacements": False,
    "lock_configuration": True,
}


class _Hazard:
    """The result of scanning an object for bytes DuckDB's line reader would misread.

    A scan that finds one interrupts the running DuckDB statement: that object goes
    the Python way, so there is no point finishing the native read.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.found: str | None = None
        self.stop = False
        self.done = threading.Event()

    def scan_files(self, files: list[tuple[str, str]]) -> None:
        """Scan (path, compression) files in turn; runs in a thread beside DuckDB's read."""
        import zlib

        from trackway.rawdata.gunzip import open_gzip

        try:
            for path, kind in files:
                with open(path, "rb") as raw, open_gzip(raw) if kind == "gzip" else raw as body:
                    for chunk in _read_chunks(body):
                        if self.stop:
                            return
                        found = _scan_chunks(iter((chunk,)))
                        if found:
                            self.found = f"{found} in {Path(path).name}"
                            self.con.interrupt()
                            return
        except (EOFError, OSError, zlib.error) as exc:
            self.found = f"a damaged stream ({exc})"  # DuckDB fails on it too; Python keeps what is readable
        finally:
            self.done.set()


def _native_source(obj: RawObject, table: RawTable) -> bool:
    """Whether DuckDB can load an extra source's object itself: no field mapping and no plan verdicts to compute.

    The defaults of ``trackway.rawdata.layouts.map_record`` (a derived message id, the source's
    type and name, the arrival time) are then SQL (``_source_picks``).
    """
    source = obj.source
    return source is not None and not source.fields and obj.judge is None and table.text_fields == RAW_TEXT_FIELDS


def _source_picks(obj: RawObject, table: RawTable) -> tuple[str, list[Any]]:
    """The text columns' SELECT expressions for ``obj`` and their parameters (an extra source's defaults)."""
    picks = [f"f[{i}]" for i in range(1, len(table.text_fields) + 1)]
    params: list[Any] = []
    source = obj.source
    if source is None:
        return ", ".join(picks), params
    column = {c: i for i, (c, _) in enumerate(table.text_fields)}

    def default(name: str, value: str | None) -> None:
        if value:
            picks[column[name]] = f"coalesce({picks[column[name]]}, ?)"
            params.append(value)

    # As derived_message_id: sha256 of "<source name>\n<raw line>", first 32 hex digits.
    picks[column["message_id"]] = (
        f"coalesce(f[{column['message_id'] + 1}], 'derived-' || left(sha256(? || chr(10) || line), 32))"
    )
    params.append(source.name)
    default("type", source.type)
    default("source_id", source.name)
    default("received_at", obj.received_at)
    picks[column[PLAN_VERDICT_COLUMN]] = "NULL"  # the loader's column: no plan, no verdict (map_record)
    return ", ".join(picks), params


def _refuse_pending(con: duckdb.DuckDBPyConnection, table: RawTable, obj: RawObject) -> None:
    """An extra source's object with a line DuckDB could not judge goes the Python way, whole.

    Such a line may be a Firehose cut inside a string (``firehose_lines``), and map_record's
    defaults for it are Python's to give.
    """
    found = con.execute(
        f"SELECT count(*) FROM {RAW_SCHEMA}.{table.name} WHERE source_object = ? AND parse_error = ?",
        [obj.source_object, _PENDING],
    ).fetchone()
    if found and found[0]:
        raise duckdb.InvalidInputException(f"{found[0]} records of {obj.source_object} need the Python parser")


class DuckDBWarehouse(Warehouse):
    kind = "duckdb"

    def __init__(
        self,
        path: Path,
        *,
        read_only: bool = False,
        lock_wait_seconds: float = 120.0,
        memory_limit: str | None = None,
    ) -> None:
        """memory_limit: DuckDB's budget (WarehouseTarget.duckdb_memory); beyond it DuckDB spills to its
        default temp_directory, "<file>.tmp" beside the warehouse.

        SET after connecting, never given as connect config: DuckDB shares one open database per file in a
        process and refuses a connection with another configuration (dbt-duckdb, in this process, opens it
        without config and SETs its profile's settings on every cursor).
        """
        self.path = Path(path)
        self.memory_config = {"memory_limit": memory_limit} if memory_limit else {}
        budget = memory_size_mib(memory_limit, "memory_limit") if memory_limit else LOAD_MEMORY_LIMIT_MIB
        self.load_memory_limit = f"{min(budget, LOAD_MEMORY_LIMIT_MIB)}MiB"
        self.lock_wait_seconds = lock_wait_seconds
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise FileNotFoundError(f"no DuckDB warehouse at {self.path}; run a load first (make demo)")
        self.read_only = read_only
        # False when this process already holds the file open for writing and the handle is shared (see _connect).
        self.sandboxed = read_only
        self.con = self._connect(read_only)
        # Objects read in one statement: DuckDB reads each gzip stream on its own thread.
        threads = self.con.execute("SELECT current_setting('threads')").fetchone()
        self.parallel_objects = max(1, int(threads[0])) if threads else 1
        self.vacuum_skipped = False

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_wait_seconds
        while True:
            try:
                if read_only:
                    return duckdb.connect(
                        str(self.path), read_only=True, config={**self.memory_config, **READ_ONLY_CONFIG}
                    )
                return self._budgeted(duckdb.connect(str(self.path)))
            except duckdb.ConnectionException as exc:
                # This process already writes the file (dbt-duckdb runs in-process): DuckDB
                # refuses a second, read-only handle, but sharing the open database is safe
                # for Trackway's own reads. People's SQL is refused on it (query_with_headers).
                if read_only and "different configuration" in str(exc):
                    self.sandboxed = False
                    return self._budgeted(duckdb.connect(str(self.path)))
                raise
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() > deadline:
                    raise WarehouseBusy(
                        f"warehouse {self.path} is busy: another process holds it (a load, a transform, or a reader "
                        f"such as trackway query; DuckDB allows one writer), still after {self.lock_wait_seconds:g} s "
                        f"({'TRACKWAY_DUCKDB_READ_WAIT_SECONDS' if read_only else 'TRACKWAY_DUCKDB_LOCK_WAIT_SECONDS'}). "
                        "Retry when it has finished; nothing was written"
                    ) from exc
                time.sleep(_RETRY_SECONDS)

    def _budgeted(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        for name, value in self.memory_config.items():
            con.execute(f"SET {name} = '{value}'")
        return con

    def ensure_raw_tables(self) -> None:
        for stmt in raw_ddl("VARCHAR", "TIMESTAMP WITH TIME ZONE", index_source_object=False):
            self.con.execute(stmt)

    def loaded_fingerprints(self, source_objects: Sequence[str]) -> dict[str, str]:
        if not source_objects:
            return {}
        import pyarrow as pa  # here, not at the top: an empty hour's load imports no Arrow (~1 s)

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
        import pyarrow as pa

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
                ledger_params(load),
            )
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def _prepare_for_loads(self) -> None:
        self.con.execute(f"SET memory_limit = '{self.load_memory_limit}'")
        self.con.execute("SET preserve_insertion_order = false")
        # Loaded blocks are written straight to the file; checkpointing after every few objects
        # only rewrites metadata at a high cost, so let the WAL (block pointers) grow a while.
        self.con.execute("SET checkpoint_threshold = '1GB'")

    def load_object(self, obj: RawObject, table: RawTable = EVENTS_RAW_TABLE) -> ObjectLoad:
        return self.load_objects([obj], table)[0]

    def load_objects(self, objs: Sequence[RawObject], table: RawTable = EVENTS_RAW_TABLE) -> list[ObjectLoad]:
        """DuckDB reads, splits and decompresses the objects and extracts the text columns itself.

        Local gzip or plain objects are read together in one statement (one thread
        each) and committed together with their ledger rows. Python sees only lines
        DuckDB cannot judge like Python's json would (bad or odd lines), and objects
        DuckDB cannot read as written (bz2/xz, remote, CR line ends, invalid UTF-8,
        truncated gzip), which are copied to a plain temporary file or streamed through
        the Python parser instead.
        """
        from trackway.rawdata.lines import UnsupportedObject, read_head, sniff_compression

        self._prepare_for_loads()
        loads: dict[int, ObjectLoad] = {}
        native: list[tuple[int, RawObject, str, str]] = []
        with contextlib.ExitStack() as temporary:
            for n, obj in enumerate(objs):
                with obj.open() as handle:
                    try:
                        kind = sniff_compression(read_head(handle))
                    except UnsupportedObject as exc:
                        loads[n] = self._commit_rows(obj, table, iter(()), ObjectStats(object_error=str(exc)))
                        continue
                if obj.source is not None and not _native_source(obj, table):
                    loads[n] = self._load_python(obj, table)  # field mappings, a plan's verdicts: Python's job
                elif obj.source is not None and obj.source.layout == "firehose":
                    tmp = temporary.enter_context(
                        tempfile.NamedTemporaryFile(prefix="trackway-load-", suffix=".ndjson")
                    )
                    hazard = self._decompress_to(obj, tmp, firehose=True)
                    if hazard is None:
                        native.append((n, obj, tmp.name, "none"))
                    else:
                        log.info("%s: read by Python instead of DuckDB (%s)", obj.source_object, hazard)
                        loads[n] = self._load_python(obj, table)
                elif obj.local_path is not None and kind in ("gzip", "none"):
                    native.append((n, obj, str(obj.local_path), kind))
                else:
                    loads[n] = self._load_copy(obj, table, kind)
            if len(native) > 1:
                try:
                    group = [(obj, path, kind) for _, obj, path, kind in native]
                    for (n, _, _, _), load in zip(native, self._load_native(group, table), strict=True):
                        loads[n] = load
                    native = []
                except duckdb.Error as exc:  # one of them needs the slow way: take them one at a time
                    log.info("objects read one by one (%s)", str(exc).splitlines()[0])
            for n, obj, path, kind in native:
                loads[n] = self._load_one(obj, table, path, kind)
        return [loads[n] for n in range(len(objs))]

    def _decompress_to(self, obj: RawObject, tmp: IO[bytes], *, firehose: bool = False) -> str | None:
        """The object's decompressed bytes into ``tmp`` (Firehose: a record per line), scanned on the way.

        Returns why DuckDB must not read the copy (a hazard byte, a damaged stream), or None.
        Transport failures raise ObjectReadError (not caught here): the load fails, nothing is ledgered.
        """
        from trackway.rawdata.layouts import firehose_lines
        from trackway.rawdata.lines import guarded, open_decompressed

        hazard = None
        try:
            with obj.open() as handle, open_decompressed(guarded(handle, obj.source_object)) as body:
                for chunk in firehose_lines(body) if firehose else _read_chunks(body):
                    hazard = hazard or _scan_chunks(iter((chunk,)))
                    tmp.write(chunk)
            tmp.flush()
        except (EOFError, OSError, ValueError) as exc:  # damaged: the Python path says where
            hazard = str(exc)
        return hazard

    def _load_one(self, obj: RawObject, table: RawTable, path: str, kind: str) -> ObjectLoad:
        try:
            return self._load_native([(obj, path, kind)], table)[0]
        except duckdb.Error as exc:
            log.info("%s: read by Python instead of DuckDB (%s)", obj.source_object, str(exc).splitlines()[0])
        return self._load_python(obj, table)

    def _load_copy(self, obj: RawObject, table: RawTable, kind: str) -> ObjectLoad:
        """Remote or bz2/xz: decompress into a plain temporary file (scanned on the way), then read natively."""
        with tempfile.NamedTemporaryFile(prefix="trackway-load-", suffix=".ndjson") as tmp:
            hazard = self._decompress_to(obj, tmp)
            if hazard is None:
                return self._load_one(obj, table, tmp.name, "none")
        log.info("%s: read by Python instead of DuckDB (%s)", obj.source_object, hazard)
        return self._load_python(obj, table)

    def _load_native(self, group: Sequence[tuple[RawObject, str, str]], table: RawTable) -> list[ObjectLoad]:
        """One INSERT reading every (object, local path, compression) of ``group``; one transaction."""
        paths = ", ".join(f"'{_json_path(key)}'" for _, key in table.text_fields)
        cols = ", ".join(f'"{c}"' for c in table.columns)
        # try(): NULL for what DuckDB's JSON reader refuses; such lines are pending, like odd valid ones.
        selects = []
        params: list[Any] = []
        for obj, path, kind in group:
            picks, defaults = _source_picks(obj, table)
            selects.append(f"""
            SELECT {picks}, line, CASE WHEN {_PLAIN_LINE} THEN NULL ELSE '{_PENDING}' END, ?, ordinality, ?, ?
            FROM (
                SELECT line, ordinality, try(json_extract_string(line, [{paths}])) AS f
                FROM read_csv(?, {_LINES_OPTIONS}) WITH ORDINALITY
            )""")
            params += [*defaults, obj.source_object, obj.load_id, obj.loaded_at, path, kind]
        insert = f"INSERT INTO {RAW_SCHEMA}.{table.name} ({cols}) " + " UNION ALL ".join(selects)
        hazard = _Hazard(self.con)
        scanner = threading.Thread(
            target=hazard.scan_files, args=([(path, kind) for _, path, kind in group],), daemon=True
        )
        self.con.execute("BEGIN TRANSACTION")
        scanner.start()
        try:
            for obj, _, _ in group:
                self.con.execute(delete_object_rows(table), [obj.source_object])
            self.con.execute(insert, params)
            hazard.done.wait()
            if hazard.found:
                raise duckdb.InterruptException(f"object has {hazard.found}")
            loads = []
            for obj, _, _ in group:
                if obj.source is not None:
                    _refuse_pending(self.con, table, obj)
                stats = self._check_pending(obj, table)
                stats.erased = self._drop_erased(table, obj)
                counted = self.con.execute(
                    f"SELECT count(*) FROM {RAW_SCHEMA}.{table.name} WHERE source_object = ?", [obj.source_object]
                ).fetchone()
                stats.rows = int(counted[0]) if counted else 0
                load = ledger_row(obj, stats)
                self.con.execute(LEDGER_UPSERT, ledger_params(load))
                loads.append(load)
            self.con.execute("COMMIT")
            self._keep_row_groups_if_full(sum(load.rows for load in loads))
            return loads
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        finally:
            hazard.stop = True
            scanner.join()

    def _keep_row_groups_if_full(self, rows: int) -> None:
        """After a big transaction: this connection's checkpoint keeps row groups as the loads wrote them.

        Small loads (micro-batches) keep DuckDB's vacuum, which merges their small row groups; a big load
        leaves at most one partly filled row group per thread and transaction beside full ones. The setting
        is the process's DuckDB instance's, like the load's memory_limit; a later process starts with the
        default again, and its checkpoints vacuum what deletes left.
        """
        if rows >= _ROW_GROUP_ROWS and not self.vacuum_skipped:
            self.con.execute("SET max_vacuum_tasks = 0")
            self.vacuum_skipped = True

    def _check_pending(self, obj: RawObject, table: RawTable) -> ObjectStats:
        """Give the lines DuckDB could not judge their exact verdict, a batch at a time."""
        import pyarrow as pa

        from trackway.rawdata.lines import parse_line, row_values

        stats = ObjectStats()
        text_cols = [c for c, _ in table.text_fields]
        fix_schema = pa.schema(
            [("line_number", pa.int64())]
            + [(c, pa.string()) for c in text_cols]
            + [("raw", pa.string()), ("parse_error", pa.string())]
        )
        sets = ", ".join(f'"{c}" = _fix."{c}"' for c in (*text_cols, "raw", "parse_error"))
        last = 0
        while True:
            pending = self.con.execute(
                f"SELECT line_number, raw FROM {RAW_SCHEMA}.{table.name} WHERE source_object = ? "
                "AND parse_error = ? AND line_number > ? ORDER BY line_number LIMIT ?",
                [obj.source_object, _PENDING, last, _FIX_BATCH],
            ).fetchall()
            if not pending:
                return stats
            last = pending[-1][0]
            blanks: list[int] = []
            fixes: list[tuple] = []
            for line_number, text in pending:
                line = (text or "").encode("utf-8", errors="surrogatepass")
                if not line.strip():
                    blanks.append(line_number)
                    continue
                raw, error, parsed = parse_line(line)
                values = (
                    row_values(parsed, table.text_fields)
                    if parsed is not None and not error
                    else [None] * len(text_cols)
                )
                stats.parse_errors += bool(error)
                fixes.append((line_number, *values, raw, error))
            stats.blank_lines += len(blanks)
            if blanks:
                self.con.register("_blank", pa.table({"line_number": pa.array(blanks, pa.int64())}))
                self.con.execute(
                    f"DELETE FROM {RAW_SCHEMA}.{table.name} WHERE source_object = ? "
                    "AND line_number IN (SELECT line_number FROM _blank)",
                    [obj.source_object],
                )
                self.con.unregister("_blank")
            if fixes:
                columns = list(zip(*fixes, strict=True))
                fix = pa.table(
                    [pa.array(list(col), type=f.type) for col, f in zip(columns, fix_schema, strict=True)],
                    schema=fix_schema,
                )
                self.con.register("_fix", fix)
                self.con.execute(
                    f"UPDATE {RAW_SCHEMA}.{table.name} AS t SET {sets} FROM _fix "
                    "WHERE t.source_object = ? AND t.line_number = _fix.line_number",
                    [obj.source_object],
                )
                self.con.unregister("_fix")

    def _load_python(self, obj: RawObject, table: RawTable) -> ObjectLoad:
        """The object streamed through the Python parser, in Arrow batches: for what DuckDB cannot read."""
        from trackway.rawdata.lines import iter_rows

        stats = ObjectStats()
        with obj.open() as handle:
            rows = iter_rows(
                handle,
                stats,
                source_object=obj.source_object,
                load_id=obj.load_id,
                loaded_at=obj.loaded_at,
                text_fields=table.text_fields,
                source=obj.source,
                received_at=obj.received_at,
                judge=obj.judge,
            )
            return self._commit_rows(obj, table, rows, stats)

    def _commit_rows(self, obj: RawObject, table: RawTable, rows: Iterator[tuple], stats: ObjectStats) -> ObjectLoad:
        import pyarrow as pa

        from trackway.rawdata.lines import batched_rows

        schema = _arrow_schema(table)
        cols = ", ".join(f'"{c}"' for c in table.columns)
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute(delete_object_rows(table), [obj.source_object])
            for batch in batched_rows(rows, _ARROW_BATCH):
                columns = list(zip(*batch, strict=True))
                data = pa.table(
                    [pa.array(list(col), type=f.type) for col, f in zip(columns, schema, strict=True)], schema=schema
                )
                self.con.register("_batch", data)
                self.con.execute(f"INSERT INTO {RAW_SCHEMA}.{table.name} ({cols}) SELECT {cols} FROM _batch")
                self.con.unregister("_batch")
            stats.erased = self._drop_erased(table, obj)
            stats.rows -= stats.erased
            load = ledger_row(obj, stats)
            self.con.execute(LEDGER_UPSERT, ledger_params(load))
            self.con.execute("COMMIT")
            self._keep_row_groups_if_full(load.rows)
            return load
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.con.execute(sql, list(params)).fetchall()

    def _drop_erased(self, table: RawTable, obj: RawObject) -> int:
        return self.drop_erased(table, obj.source_object, obj.load_id, self._run, self._run)

    def record_load_run(self, run: LoadRun) -> None:
        self.con.execute(
            LOAD_RUN_INSERT,
            load_run_params(run),
        )

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.con.execute(sql, list(params)).fetchall()

    def query_with_headers(self, sql: str, *, limit: int) -> tuple[list[str], list[tuple]]:
        """One statement DuckDB's parser calls a SELECT, on the read-only connection without file access."""
        if not self.sandboxed:
            raise ReadOnlyQueryError(
                f"{self.path} is open for writing in this process (a load or dbt run), so no read-only "
                "connection can be made: run the query once it has finished"
                if self.read_only
                else "people's SQL runs only on a read-only connection"
            )
        try:
            statements = self.con.extract_statements(sql)
        except duckdb.Error as exc:
            raise ReadOnlyQueryError(f"DuckDB cannot parse it: {str(exc).splitlines()[0]}") from exc
        if len(statements) != 1:
            raise ReadOnlyQueryError(f"it holds {len(statements)} statements")
        if statements[0].type != duckdb.StatementType.SELECT:
            raise ReadOnlyQueryError(f"it is a {statements[0].type.name} statement")
        try:
            cursor = self.con.execute(statements[0].query)
        except (duckdb.PermissionException, duckdb.InvalidInputException) as exc:
            # A file, URL or extension (outside the warehouse), or a write hidden in a SELECT (WITH ... DELETE).
            if isinstance(exc, duckdb.InvalidInputException) and "read-only" not in str(exc):
                raise
            raise ReadOnlyQueryError(f"DuckDB refused it: {str(exc).splitlines()[0]}") from exc
        return [d[0] for d in cursor.description or []], cursor.fetchmany(limit)

    def run_script(self, statements: Sequence[str]) -> None:
        self.con.execute("BEGIN TRANSACTION")
        try:
            for chunk in _chunks(statements):
                self.con.execute(chunk)
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def table_exists(self, schema: str, table: str) -> bool:
        rows = self.con.execute(  # fetchall: an unfinished result blocks the next register()/execute
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchall()
        return bool(rows and rows[0][0])

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        rows = self._run(sql, params)
        return int(rows[0][0]) if rows and rows[0] and isinstance(rows[0][0], int) else 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def insert_rows(self, schema: str, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        import pyarrow as pa

        data = pa.Table.from_pydict(
            {c: _arrow_values(values) for c, values in zip(columns, zip(*rows, strict=True), strict=True)}
        )
        self.con.register("_rows", data)
        try:
            cols = ", ".join(columns)
            self.con.execute(f"INSERT INTO {schema}.{table} ({cols}) SELECT {cols} FROM _rows")
        finally:
            self.con.unregister("_rows")

    def in_list(self, expression: str) -> str:
        return f"list_contains(?, {expression})"

    def ensure_privacy_tables(self) -> None:
        for stmt in privacy_statements("VARCHAR", "TIMESTAMP WITH TIME ZONE", "BIGINT", "BOOLEAN"):
            self.con.execute(stmt)

    def close(self) -> None:
        self.con.close()


def _arrow_values(values: Sequence[Any]) -> Any:
    """A column for Arrow: timestamps kept in UTC (Arrow would infer naive ones otherwise)."""
    import pyarrow as pa

    if any(isinstance(v, datetime) for v in values):
        return pa.array(list(values), pa.timestamp("us", tz="UTC"))
    return list(values)
