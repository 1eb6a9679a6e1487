"""BigQuery backend: loads raw objects with load jobs straight from gs://.

No event passes through the Airflow worker. Per object, a load job reads the
gzip'd NDJSON as one-column CSV (one STRING per line; a field delimiter that
valid JSON never contains) into a staging table; then one query job per batch
of objects replaces those objects' rows in ``raw.events_raw`` and their ledger
rows in one transaction, extracting the text fields with JSON_VALUE and giving
every line that is not a JSON object a ``parse_error``.

Quotas (see README "Scale-out"): BigQuery allows 1,500 load jobs per table
per day. Each staging table gets exactly one load job, and ``raw.events_raw``
gets none (only DML, one job per batch of ``BATCH_OBJECTS`` objects), so
hourly runs and backfills stay far inside it.

Retries: load job ids are derived from (object, fingerprint, UTC day), so a
retried task finds its earlier job (409 Already Exists) and reuses its staging
table instead of loading twice; staging tables expire after two days.

Concurrent loads of one object (a `trackway load --reload` or a backfill beside
the DAG): the ledger is read before the load jobs, so two loads can both find
an object new, and the reused load job does not stop the second from applying
it. A first load's apply only appends (its DELETE finds nothing), and BigQuery
runs appends side by side, so both could commit the object's rows. Each apply
transaction therefore (1) first updates the one row of ``raw.load_lock``:
BigQuery cancels a transaction that mutates a table another running
transaction mutates, so applies never overlap, and a cancelled one is run
again; and (2) chooses inside the transaction the objects whose version the
ledger still lacks (or that are reloaded), so an apply that comes second
skips what the first committed.

Schemas map to datasets: Trackway's ``raw`` is ``<prefix>_raw`` (``raw`` when
the URL has no prefix), and SQL given to ``query`` is rewritten the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from trackway.config import WarehouseTarget
from trackway.rawdata.records import LoadRun, ObjectLoad, PendingObject
from trackway.rawdata.schema import EVENTS_RAW_TABLE, LOAD_RUNS, LOADED_OBJECTS, RAW_SCHEMA, RAW_TABLES, RawTable
from trackway.warehouse.base import Warehouse, WarehouseBusy, load_run_params
from trackway.warehouse.ddl import ADDED_COLUMNS, PRIVACY_SCHEMA, PRIVACY_TABLES, privacy_ddl
from trackway.warehouse.readonly import ReadOnlyQueryError, as_subquery, bigquery_separators

log = logging.getLogger(__name__)

# Objects per DML transaction; also bounds the query's size (one UNION ALL branch per object).
BATCH_OBJECTS = 200
# Valid JSON never contains a raw U+0001, so each line arrives whole in one column.
LINE_DELIMITER = "\x01"
STAGING_EXPIRY = timedelta(days=2)
TRACKWAY_SCHEMAS = ("raw", "staging", "intermediate", "analytics", "audit", "privacy")
# One row every apply transaction updates, so that BigQuery never runs two at once (see above).
LOAD_LOCK = "load_lock"
# Applies cancelled by a concurrent one, run again after these pauses (seconds) before giving up.
APPLY_RETRY_PAUSES = (1.0, 2.0, 4.0, 8.0, 16.0)
# Rows per INSERT of insert_rows (each value is one query parameter).
_INSERT_CHUNK = 500


def _is_content_error(job: Any, exc: BaseException) -> bool:
    """True when a load job failed on the object's bytes (bad gzip, truncated, undecodable), not in transport.

    BigQuery answers a job that could not read its input with a 400 whose job errors
    have reason ``invalid`` (BigQuery's error-message reference); timeouts, 5xx, 403s,
    quota and connection errors are anything else.
    """
    from google.api_core.exceptions import BadRequest

    if not isinstance(exc, BadRequest):
        return False
    reasons = {e.get("reason") for e in (getattr(job, "errors", None) or [])}
    reasons |= {e.get("reason") for e in (getattr(exc, "errors", None) or []) if isinstance(e, dict)}
    return "invalid" in reasons


def _is_concurrent_update(exc: BaseException) -> bool:
    """BigQuery cancelled the transaction: another one mutated a table it mutates ("concurrent update")."""
    return "concurrent update" in str(exc).lower()


def _sha(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def load_job_id(url: str, fingerprint: str, day: date) -> str:
    """Deterministic: a retried task on the same day finds the job instead of loading again."""
    return f"trackway_load_{_sha(url, fingerprint, day.isoformat())}"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, datetime):
        return "TIMESTAMP"
    if isinstance(value, date):
        return "DATE"
    return "STRING"


def _param(value: Any) -> Any:
    from google.cloud import bigquery

    if isinstance(value, (list, tuple)):  # an IN UNNEST(?) list (in_list)
        return bigquery.ArrayQueryParameter(None, _kind(value[0]) if value else "STRING", list(value))
    if isinstance(value, bool):
        kind = "BOOL"
    elif isinstance(value, int):
        kind = "INT64"
    elif isinstance(value, float):
        kind = "FLOAT64"
    elif isinstance(value, datetime):
        kind = "TIMESTAMP"
    elif isinstance(value, date):
        kind = "DATE"
    else:
        kind = "STRING"
    return bigquery.ScalarQueryParameter(None, kind, value)


def _sql_str(value: str | None) -> str:
    """A BigQuery string literal; values are our own URLs and reasons, escaped anyway."""
    if value is None:
        return "NULL"
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    # Control characters (a newline ends a quoted literal) as BigQuery escapes: \n, \t, ... else \xhh.
    escaped = _CONTROL.sub(lambda m: _NAMED_ESCAPES.get(m.group(), f"\\x{ord(m.group()):02x}"), escaped)
    return "'" + escaped + "'"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\v": "\\v"}


class BigQueryWarehouse(Warehouse):
    kind = "bigquery"
    loads_in_place = True

    def __init__(self, target: WarehouseTarget, client: Any = None, credentials: Any = None) -> None:
        """``credentials``: google-auth credentials resolved by the caller (an Airflow connection, see
        ``trackway.warehouse.connections``); None: Application Default Credentials."""
        self.target = target
        self.project = target.project or ""
        self.client = client or self._client(target, credentials)

    @staticmethod
    def _client(target: WarehouseTarget, credentials: Any) -> Any:
        from google.cloud import bigquery

        if credentials is None and target.api_endpoint:
            # An emulator checks no credentials; never send real ones to it.
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()
        options = {"api_endpoint": target.api_endpoint} if target.api_endpoint else None
        # Without a connection: Application Default Credentials.
        return bigquery.Client(
            project=target.project, credentials=credentials, location=target.location, client_options=options
        )

    # -- names -------------------------------------------------------------------------

    def dataset(self, schema: str) -> str:
        return self.target.dataset(schema)

    def table_ref(self, schema: str, table: str) -> str:
        return f"`{self.project}.{self.dataset(schema)}.{table}`"

    def rewrite(self, sql: str) -> str:
        """Map Trackway schema names (raw.x, analytics.x) to this target's datasets."""
        if not self.target.dataset_prefix:
            return sql
        pattern = r"(?<![\w.`])(" + "|".join(TRACKWAY_SCHEMAS) + r")\.(?=\w)"
        return re.sub(pattern, lambda m: f"{self.dataset(m.group(1))}.", sql)

    # -- DDL ---------------------------------------------------------------------------

    def _landing_ddl(self, table: RawTable) -> str:
        text_columns = ",\n    ".join(f"`{c}` STRING" for c, _ in table.text_fields)
        return f"""CREATE TABLE IF NOT EXISTS {self.table_ref(RAW_SCHEMA, table.name)} (
    {text_columns},
    raw STRING,
    parse_error STRING,
    source_object STRING NOT NULL,
    line_number INT64 NOT NULL,
    load_id STRING NOT NULL,
    loaded_at TIMESTAMP NOT NULL
)
PARTITION BY DATE(loaded_at)
CLUSTER BY source_object"""

    def ensure_raw_tables(self) -> None:
        from google.cloud import bigquery

        dataset = bigquery.Dataset(f"{self.project}.{self.dataset(RAW_SCHEMA)}")
        dataset.location = self.target.location
        self.client.create_dataset(dataset, exists_ok=True)
        statements = [self._landing_ddl(t) for t in RAW_TABLES]
        statements.append(f"""CREATE TABLE IF NOT EXISTS {self.table_ref(RAW_SCHEMA, LOADED_OBJECTS)} (
    source_object STRING NOT NULL, fingerprint STRING NOT NULL, size_bytes INT64 NOT NULL,
    rows_loaded INT64 NOT NULL, parse_errors INT64 NOT NULL, blank_lines INT64 NOT NULL,
    object_error STRING, load_id STRING NOT NULL, loaded_at TIMESTAMP NOT NULL
) CLUSTER BY source_object""")
        statements.append(f"""CREATE TABLE IF NOT EXISTS {self.table_ref(RAW_SCHEMA, LOAD_RUNS)} (
    load_id STRING NOT NULL, interval_start TIMESTAMP NOT NULL, interval_end TIMESTAMP NOT NULL,
    started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP NOT NULL, triggered_by STRING NOT NULL,
    objects_found INT64 NOT NULL, objects_loaded INT64 NOT NULL, objects_skipped INT64 NOT NULL,
    rows_loaded INT64 NOT NULL, parse_errors INT64 NOT NULL
)""")
        lock = self.table_ref(RAW_SCHEMA, LOAD_LOCK)
        statements.append(f"CREATE TABLE IF NOT EXISTS {lock} (load_id STRING, locked_at TIMESTAMP)")
        # Its one row (two concurrent first runs may add two: every apply updates them all, which is the same).
        statements.append(
            f"INSERT INTO {lock} (load_id, locked_at) SELECT NULL, NULL FROM UNNEST([1]) "
            f"WHERE NOT EXISTS (SELECT 1 FROM {lock})"
        )
        for stmt in statements:
            self.client.query(stmt).result()
        for table, column in ADDED_COLUMNS:  # a table an older version created lacks the newer columns
            ref = self.table_ref(RAW_SCHEMA, table.name)
            existing = {f.name for f in self.client.get_table(ref.strip("`")).schema}
            if column not in existing:
                self.client.query(f"ALTER TABLE {ref} ADD COLUMN IF NOT EXISTS `{column}` STRING").result()

    # -- ledger ------------------------------------------------------------------------

    def loaded_fingerprints(self, source_objects: Sequence[str]) -> dict[str, str]:
        if not source_objects:
            return {}
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(
            query_parameters=[bigquery.ArrayQueryParameter("objects", "STRING", list(source_objects))]
        )
        rows = self.client.query(
            f"SELECT source_object, fingerprint FROM {self.table_ref(RAW_SCHEMA, LOADED_OBJECTS)} "
            "WHERE source_object IN UNNEST(@objects)",
            job_config=config,
        ).result()
        return {r[0]: r[1] for r in rows}

    # -- loading -----------------------------------------------------------------------

    def replace_object(
        self, load: ObjectLoad, rows: Sequence[Sequence[Any]], table: RawTable = EVENTS_RAW_TABLE
    ) -> None:
        raise NotImplementedError(
            "BigQuery loads raw objects in place with load jobs (load_in_place); rows never pass through the worker"
        )

    @staticmethod
    def _stage_name(url: str, fingerprint: str, day: date) -> str:
        return f"_stage_{_sha(url, fingerprint, day.isoformat())[:32]}"

    def _start_load_job(self, obj: PendingObject, day: date) -> tuple[Any, str]:
        """Load one object into its staging table; an existing job of the same id is reused."""
        from google.api_core.exceptions import Conflict
        from google.cloud import bigquery

        stage = self._stage_name(obj.url, obj.fingerprint, day)
        destination = f"{self.project}.{self.dataset(RAW_SCHEMA)}.{stage}"
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.CSV,
            schema=[bigquery.SchemaField("line", "STRING")],
            field_delimiter=LINE_DELIMITER,
            quote_character="",
            allow_quoted_newlines=False,
            ignore_unknown_values=True,  # a stray U+0001 in garbage cuts that line, never fails the object
            max_bad_records=0,
            encoding="UTF-8",
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
            labels={"trackway": "raw-load"},
        )
        job_id = load_job_id(obj.url, obj.fingerprint, day)
        try:
            job = self.client.load_table_from_uri(obj.url, destination, job_id=job_id, job_config=config)
        except Conflict:  # the same task ran before (retry): its job and staging table are reused
            job = self.client.get_job(job_id)
        return job, stage

    def load_in_place(
        self,
        objects: Sequence[PendingObject],
        *,
        load_id: str,
        progress: Callable[[str], None] | None = None,
    ) -> list[ObjectLoad]:
        """Load objects from gs:// in batches; returns their ledger records."""
        say = progress or (lambda msg: log.info("%s", msg))
        for obj in objects:
            if not obj.url.startswith("gs://"):
                raise ValueError(
                    f"BigQuery load jobs read gs:// objects only, not {obj.url}: set TRACKWAY_RAW_URL=gs://bucket/prefix"
                )
        results: list[ObjectLoad] = []
        for start in range(0, len(objects), BATCH_OBJECTS):
            batch = list(objects[start : start + BATCH_OBJECTS])
            tables = {o.url: o.table for o in batch}
            results.extend(
                self._drop_erased(load, tables[load.source_object]) for load in self._load_batch(batch, load_id)
            )
            say(f"  [{start + len(batch)}/{len(objects)}] objects loaded by BigQuery load jobs")
        return results

    def _drop_erased(self, load: ObjectLoad, table: RawTable) -> ObjectLoad:
        """Erased subjects' lines (and lines past retention) out of a just-loaded object, after its load job's script."""
        if (self.erased is None and self.retention is None) or load.object_error:
            return load
        dropped = self.drop_erased(table, load.source_object, load.load_id, self.query, self.execute)
        if not dropped:
            return load
        self.execute(
            f"UPDATE {RAW_SCHEMA}.{LOADED_OBJECTS} SET rows_loaded = rows_loaded - ? WHERE source_object = ?",
            [dropped, load.source_object],
        )
        return dataclasses.replace(load, rows=load.rows - dropped, erased=dropped)

    def _load_batch(self, batch: list[PendingObject], load_id: str) -> list[ObjectLoad]:
        from google.cloud import bigquery

        day = datetime.now(UTC).date()
        started = [(obj, *self._start_load_job(obj, day)) for obj in batch]  # jobs run in parallel
        staged: list[tuple[PendingObject, str]] = []
        failed: dict[str, str] = {}
        for obj, job, stage in started:
            try:
                job.result()
            except Exception as exc:
                if not _is_content_error(job, exc):
                    # Transport, quota, permission or service trouble: the object may be whole.
                    # Fail the task (Airflow retries it); nothing of this batch is committed or ledgered.
                    raise
                errors = getattr(job, "errors", None) or []
                detail = "; ".join(e.get("message", "") for e in errors[:3]) or str(exc)
                failed[obj.url] = f"BigQuery load job {job.job_id} failed: {detail}"
                log.warning("damaged raw object %s: %s", obj.url, failed[obj.url])
                continue
            table = self.client.get_table(f"{self.project}.{self.dataset(RAW_SCHEMA)}.{stage}")
            table.expires = datetime.now(UTC) + STAGING_EXPIRY
            self.client.update_table(table, ["expires"])
            staged.append((obj, stage))

        loaded_at = datetime.now(UTC)
        # One literal, placed where it belongs: never a text replace over a script that holds object URLs.
        script = self._apply_script(batch, staged, failed, load_id, f"TIMESTAMP '{loaded_at.isoformat()}'")
        config = bigquery.QueryJobConfig(labels={"trackway": "raw-apply"})
        for pause in (*APPLY_RETRY_PAUSES, None):
            try:
                self.client.query(script, job_config=config).result()
                break
            except Exception as exc:
                if not _is_concurrent_update(exc):
                    raise
                if pause is None:
                    raise WarehouseBusy(
                        "BigQuery kept cancelling this load's transaction: other loads are committing to "
                        f"{self.dataset(RAW_SCHEMA)} at the same time. Retry; objects they loaded are skipped"
                    ) from exc
                log.info("apply cancelled by a concurrent load; again in %.0f s", pause)
                time.sleep(pause)
        # Only what this transaction applied: an object a concurrent load committed first is not ours.
        return [load for load in self._ledger_rows([o.url for o in batch]) if load.load_id == load_id]

    def _apply_script(
        self,
        batch: list[PendingObject],
        staged: list[tuple[PendingObject, str]],
        failed: dict[str, str],
        load_id: str,
        loaded_at: str,
    ) -> str:
        """One transaction: drop the batch's old rows, insert the staged lines, upsert the ledger.

        Only for the objects ``trackway_apply`` names, chosen inside the transaction after it
        took ``raw.load_lock``: those whose version the ledger still lacks, and reloads.
        """
        ledger = self.table_ref(RAW_SCHEMA, LOADED_OBJECTS)
        candidates = "\n        UNION ALL ".join(
            f"SELECT {_sql_str(o.url)} AS source_object, {_sql_str(o.fingerprint)} AS fingerprint, "
            f"{'TRUE' if o.replace else 'FALSE'} AS reload_object"
            for o in batch
        )
        statements = [
            "DECLARE trackway_apply ARRAY<STRING>;",
            "BEGIN TRANSACTION;",
            f"UPDATE {self.table_ref(RAW_SCHEMA, LOAD_LOCK)} SET load_id = {_sql_str(load_id)}, "
            f"locked_at = {loaded_at} WHERE TRUE;",
            f"""SET trackway_apply = (
    SELECT ARRAY_AGG(c.source_object) FROM (
        {candidates}
    ) AS c
    WHERE c.reload_object OR NOT EXISTS (
        SELECT 1 FROM {ledger} AS l WHERE l.source_object = c.source_object AND l.fingerprint = c.fingerprint
    )
);""",
        ]
        for table in RAW_TABLES:
            urls = [o.url for o in batch if o.table.name == table.name]
            if not urls:
                continue
            target = self.table_ref(RAW_SCHEMA, table.name)
            url_list = ", ".join(_sql_str(u) for u in urls)
            # Old rows live in the partitions of their earlier loads (the ledger knows which): pruned delete.
            statements.append(
                f"DELETE FROM {target} WHERE DATE(loaded_at) IN "
                f"(SELECT DATE(loaded_at) FROM {ledger} WHERE source_object IN ({url_list})) "
                f"AND source_object IN ({url_list}) AND source_object IN UNNEST(trackway_apply);"
            )
            branches = [
                self._stage_select(obj, stage, table, load_id, loaded_at)
                for obj, stage in staged
                if obj.table.name == table.name
            ]
            if branches:
                columns = ", ".join(f"`{c}`" for c in table.columns)
                statements.append(f"INSERT INTO {target} ({columns})\n" + "\nUNION ALL\n".join(branches) + ";")
        statements.append(self._ledger_merge(batch, staged, failed, load_id, loaded_at))
        statements.append("COMMIT TRANSACTION;")
        return "\n".join(statements)

    def _stage_select(self, obj: PendingObject, stage: str, table: RawTable, load_id: str, loaded_at: str) -> str:
        fields = ",\n    ".join(
            f"CASE WHEN JSON_TYPE(j) = 'object' THEN COALESCE(JSON_VALUE(j, '$.\"{key}\"'), "
            f"TO_JSON_STRING(JSON_QUERY(j, '$.\"{key}\"'))) END AS `{column}`"
            for column, key in table.text_fields
        )
        return f"""SELECT
    {fields},
    line AS raw,
    CASE
        WHEN j IS NULL THEN 'invalid JSON'
        WHEN JSON_TYPE(j) != 'object' THEN CONCAT('not a JSON object (got ', JSON_TYPE(j), ')')
    END AS parse_error,
    {_sql_str(obj.url)} AS source_object,
    line_number,
    {_sql_str(load_id)} AS load_id,
    {loaded_at} AS loaded_at
FROM (
    -- Load jobs do not keep line order: number the lines (unique per object and load, not positions).
    SELECT line, SAFE.PARSE_JSON(line) AS j, ROW_NUMBER() OVER () AS line_number
    FROM {self.table_ref(RAW_SCHEMA, stage)}
    WHERE line IS NOT NULL AND TRIM(line) != '' AND {_sql_str(obj.url)} IN UNNEST(trackway_apply)
)"""

    def _ledger_merge(
        self,
        batch: list[PendingObject],
        staged: list[tuple[PendingObject, str]],
        failed: dict[str, str],
        load_id: str,
        loaded_at: str,
    ) -> str:
        """Upsert one ledger row per object; counts are read back from what was just inserted."""
        stage_of = {obj.url: stage for obj, stage in staged}
        tuples = []
        for obj in batch:
            url, table = _sql_str(obj.url), self.table_ref(RAW_SCHEMA, obj.table.name)
            if obj.url in stage_of:
                mine = f"FROM {table} WHERE source_object = {url} AND load_id = {_sql_str(load_id)}"
                rows = f"(SELECT COUNT(*) {mine})"
                errors = f"(SELECT COUNT(*) {mine} AND parse_error IS NOT NULL)"
                blanks = f"(SELECT COUNTIF(line IS NULL OR TRIM(line) = '') FROM {self.table_ref(RAW_SCHEMA, stage_of[obj.url])})"
            else:
                rows = errors = blanks = "0"
            tuples.append(
                f"SELECT {url} AS source_object, {_sql_str(obj.fingerprint)} AS fingerprint, "
                f"{int(obj.size_bytes)} AS size_bytes, {rows} AS rows_loaded, {errors} AS parse_errors, "
                f"{blanks} AS blank_lines, CAST({_sql_str(failed.get(obj.url))} AS STRING) AS object_error"
            )
        values = "\n    UNION ALL ".join(tuples)
        return f"""MERGE {self.table_ref(RAW_SCHEMA, LOADED_OBJECTS)} AS t
USING (
    SELECT * FROM (
    {values}
    ) WHERE source_object IN UNNEST(trackway_apply)
) AS s
ON t.source_object = s.source_object
WHEN MATCHED THEN UPDATE SET
    fingerprint = s.fingerprint, size_bytes = s.size_bytes, rows_loaded = s.rows_loaded,
    parse_errors = s.parse_errors, blank_lines = s.blank_lines, object_error = s.object_error,
    load_id = {_sql_str(load_id)}, loaded_at = {loaded_at}
WHEN NOT MATCHED THEN INSERT
    (source_object, fingerprint, size_bytes, rows_loaded, parse_errors, blank_lines, object_error, load_id, loaded_at)
    VALUES (s.source_object, s.fingerprint, s.size_bytes, s.rows_loaded, s.parse_errors, s.blank_lines,
        s.object_error, {_sql_str(load_id)}, {loaded_at});"""

    def _ledger_rows(self, urls: list[str]) -> list[ObjectLoad]:
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(query_parameters=[bigquery.ArrayQueryParameter("objects", "STRING", urls)])
        rows = self.client.query(
            "SELECT source_object, fingerprint, size_bytes, rows_loaded, parse_errors, blank_lines, object_error, "
            f"load_id, loaded_at FROM {self.table_ref(RAW_SCHEMA, LOADED_OBJECTS)} "
            "WHERE source_object IN UNNEST(@objects)",
            job_config=config,
        ).result()
        by_url = {
            r[0]: ObjectLoad(
                source_object=r[0],
                fingerprint=r[1],
                size_bytes=r[2],
                rows=r[3],
                parse_errors=r[4],
                blank_lines=r[5],
                object_error=r[6],
                load_id=r[7],
                loaded_at=r[8],
            )
            for r in rows
        }
        return [by_url[u] for u in urls if u in by_url]

    def record_load_run(self, run: LoadRun) -> None:
        self.query(
            f"INSERT INTO {self.table_ref(RAW_SCHEMA, LOAD_RUNS)} (load_id, interval_start, interval_end, started_at, "
            "finished_at, triggered_by, objects_found, objects_loaded, objects_skipped, rows_loaded, parse_errors) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            load_run_params(run),
        )

    # -- reading -----------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(query_parameters=[_param(p) for p in params])
        return [tuple(row.values()) for row in self.client.query(self.rewrite(sql), job_config=config).result()]

    def query_with_headers(self, sql: str, *, limit: int) -> tuple[list[str], list[tuple]]:
        """One SELECT: no ``;`` between statements, run as a subquery, and only after a dry run calls it a SELECT.

        BigQuery has no read-only session; its IAM roles are the real boundary
        (give people's jobs BigQuery Data Viewer + Job User). The dry run is free
        and never executes; an unknown statement type (None) is refused too.
        """
        from google.api_core.exceptions import BadRequest
        from google.cloud import bigquery

        if bigquery_separators(sql):
            raise ReadOnlyQueryError("it holds more than one statement (a ';' between them)")
        wrapped = as_subquery(self.rewrite(sql), limit)
        try:
            dry = self.client.query(wrapped, job_config=bigquery.QueryJobConfig(dry_run=True, use_query_cache=False))
        except BadRequest as exc:
            raise ReadOnlyQueryError(f"BigQuery refused it: {exc.message}") from exc
        if dry.statement_type != "SELECT":
            raise ReadOnlyQueryError(f"BigQuery's dry run calls it a {dry.statement_type or 'statement of no type'}")
        result = self.client.query(wrapped, job_config=bigquery.QueryJobConfig(labels={"trackway": "query"})).result(
            max_results=limit
        )
        rows = [tuple(row.values()) for row in result]
        return [field.name for field in result.schema], rows[:limit]

    def table_exists(self, schema: str, table: str) -> bool:
        from google.api_core.exceptions import NotFound

        try:
            self.client.get_table(f"{self.project}.{self.dataset(schema)}.{table}")
        except NotFound:
            return False
        return True

    def table_columns(self, schemas: Sequence[str]) -> dict[str, dict[str, str]]:
        """The tables of each schema's dataset, by the API: INFORMATION_SCHEMA is per dataset (or per region)."""
        from google.api_core.exceptions import NotFound

        tables: dict[str, dict[str, str]] = {}
        for schema in schemas:
            try:
                listed = list(self.client.list_tables(f"{self.project}.{self.dataset(schema)}"))
            except NotFound:  # the dataset does not exist (yet): no tables
                continue
            for item in listed:
                if item.table_type != "TABLE":
                    continue
                table = self.client.get_table(item.reference)
                tables[f"{schema}.{item.table_id}"] = {f.name.lower(): f.field_type for f in table.schema}
        return tables

    def json_from_text(self, kind: str) -> str:
        return "PARSE_JSON(?)"  # BigQuery casts no STRING to JSON

    # -- DML and the erasure ledger --------------------------------------------------

    def record_rewrite(self, source_object: str, fingerprint: str, size_bytes: int, lines_removed: int) -> int:
        """The ledger learns the rewritten version; the staging copies of the version it replaces go first.

        A load job copies an object's lines into ``raw._stage_<hash>`` (kept ``STAGING_EXPIRY``, so that a
        retried task reuses its job): after an erasure or retention rewrite they would be the last place
        the removed lines live. The rewritten object has a new fingerprint, so no load reuses them.
        """
        self.drop_staging_copies(source_object)
        return super().record_rewrite(source_object, fingerprint, size_bytes, lines_removed)

    def drop_staging_copies(self, source_object: str) -> int:
        """The staging tables of ``source_object``'s loaded version, on each day they may still live."""
        from google.api_core.exceptions import NotFound

        rows = self.query(
            f"SELECT fingerprint FROM {RAW_SCHEMA}.{LOADED_OBJECTS} WHERE source_object = ?", [source_object]
        )
        today = datetime.now(UTC).date()
        dropped = 0
        for (fingerprint,) in rows:
            for back in range(STAGING_EXPIRY.days + 1):
                stage = self._stage_name(source_object, str(fingerprint), today - timedelta(days=back))
                try:
                    self.client.delete_table(f"{self.project}.{self.dataset(RAW_SCHEMA)}.{stage}")
                except NotFound:
                    continue
                dropped += 1
        return dropped

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(query_parameters=[_param(p) for p in params])
        job = self.client.query(self.rewrite(sql), job_config=config)
        job.result()
        return int(job.num_dml_affected_rows or 0)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Each DML job commits on its own (BigQuery's transactions live in one script)."""
        yield

    def insert_rows(self, schema: str, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """DML inserts, never streaming ones: streamed rows could not be deleted for about 30 minutes."""
        from google.cloud import bigquery

        declared = dict(PRIVACY_TABLES.get(table, ())) if schema == PRIVACY_SCHEMA else {}
        kinds = [_DECLARED.get(declared.get(c, ""), "STRING") for c in columns]
        for start in range(0, len(rows), _INSERT_CHUNK):
            chunk = rows[start : start + _INSERT_CHUNK]
            values = ", ".join("(" + ", ".join(["?"] * len(columns)) + ")" for _ in chunk)
            params = [
                bigquery.ScalarQueryParameter(None, k, v) for row in chunk for k, v in zip(kinds, row, strict=True)
            ]
            job = self.client.query(
                f"INSERT INTO {self.table_ref(schema, table)} ({', '.join(columns)}) VALUES {values}",
                job_config=bigquery.QueryJobConfig(query_parameters=params),
            )
            job.result()

    def in_list(self, expression: str) -> str:
        return f"{expression} IN UNNEST(?)"

    def ensure_privacy_tables(self) -> None:
        from google.cloud import bigquery

        dataset = bigquery.Dataset(f"{self.project}.{self.dataset(PRIVACY_SCHEMA)}")
        dataset.location = self.target.location
        self.client.create_dataset(dataset, exists_ok=True)
        for name in PRIVACY_TABLES:
            ddl = privacy_ddl(name, text="STRING", ts="TIMESTAMP", integer="INT64", boolean="BOOL")
            self.client.query(ddl.replace("{table}", self.table_ref(PRIVACY_SCHEMA, name))).result()

    def close(self) -> None:
        self.client.close()


# privacy DDL placeholders -> BigQuery types (typed parameters: a NULL needs its column's type)
_DECLARED = {"{text}": "STRING", "{ts}": "TIMESTAMP", "{int}": "INT64", "{bool}": "BOOL"}
