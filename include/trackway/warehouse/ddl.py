"""DDL for the raw schema, shared by backends that speak standard SQL.

``{text}`` and ``{ts}`` are the backend's text and timestamptz types.
"""

from trackway.rawdata.schema import (
    EVENTS_RAW_TABLE,
    LOAD_RUNS,
    LOADED_OBJECTS,
    PLAN_VERDICT_COLUMN,
    RAW_SCHEMA,
    RAW_TABLES,
    RawTable,
)


def _landing_table_ddl(table: RawTable) -> str:
    text_columns = ",\n    ".join(f'"{c}" {{text}}' for c, _ in table.text_fields)
    return f"""CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.{table.name} (
    {text_columns},
    raw {{text}},
    parse_error {{text}},
    source_object {{text}} NOT NULL,
    line_number BIGINT NOT NULL,
    load_id {{text}} NOT NULL,
    loaded_at {{ts}} NOT NULL
)"""


# Columns added after a landing table was first released: a table created by an older
# version gets them here (inserts name their columns, so their position does not matter).
ADDED_COLUMNS: list[tuple[RawTable, str]] = [(EVENTS_RAW_TABLE, PLAN_VERDICT_COLUMN)]

RAW_DDL = [
    f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}",
    *(_landing_table_ddl(table) for table in RAW_TABLES),
    *(
        f'ALTER TABLE {RAW_SCHEMA}.{table.name} ADD COLUMN IF NOT EXISTS "{column}" {{text}}'
        for table, column in ADDED_COLUMNS
    ),
    f"""CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.{LOADED_OBJECTS} (
    source_object {{text}} PRIMARY KEY,
    fingerprint {{text}} NOT NULL,
    size_bytes BIGINT NOT NULL,
    rows_loaded BIGINT NOT NULL,
    parse_errors BIGINT NOT NULL,
    blank_lines BIGINT NOT NULL,
    object_error {{text}},
    load_id {{text}} NOT NULL,
    loaded_at {{ts}} NOT NULL
)""",
    f"""CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.{LOAD_RUNS} (
    load_id {{text}} PRIMARY KEY,
    interval_start {{ts}} NOT NULL,
    interval_end {{ts}} NOT NULL,
    started_at {{ts}} NOT NULL,
    finished_at {{ts}} NOT NULL,
    triggered_by {{text}} NOT NULL,
    objects_found BIGINT NOT NULL,
    objects_loaded BIGINT NOT NULL,
    objects_skipped BIGINT NOT NULL,
    rows_loaded BIGINT NOT NULL,
    parse_errors BIGINT NOT NULL
)""",
]

# Row stores need it for per-object replace; DuckDB's zone maps do better without an ART index.
SOURCE_OBJECT_INDEXES = [
    f"CREATE INDEX IF NOT EXISTS {table.name}_source_object_idx ON {RAW_SCHEMA}.{table.name} (source_object)"
    for table in RAW_TABLES
]


def raw_ddl(text: str, ts: str, *, index_source_object: bool = True) -> list[str]:
    statements = RAW_DDL + (SOURCE_OBJECT_INDEXES if index_source_object else [])
    return [stmt.replace("{text}", text).replace("{ts}", ts) for stmt in statements]


LEDGER_UPSERT = f"""
INSERT INTO {RAW_SCHEMA}.{LOADED_OBJECTS}
    (source_object, fingerprint, size_bytes, rows_loaded, parse_errors, blank_lines, object_error, load_id, loaded_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (source_object) DO UPDATE SET
    fingerprint = excluded.fingerprint, size_bytes = excluded.size_bytes, rows_loaded = excluded.rows_loaded,
    parse_errors = excluded.parse_errors, blank_lines = excluded.blank_lines, object_error = excluded.object_error,
    load_id = excluded.load_id, loaded_at = excluded.loaded_at
"""

LOAD_RUN_INSERT = f"""
INSERT INTO {RAW_SCHEMA}.{LOAD_RUNS}
    (load_id, interval_start, interval_end, started_at, finished_at, triggered_by,
     objects_found, objects_loaded, objects_skipped, rows_loaded, parse_errors)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def delete_object_rows(table: RawTable) -> str:
    return f"DELETE FROM {RAW_SCHEMA}.{table.name} WHERE source_object = ?"


# -- the erasure ledger and what erasure runs and loads keep beside it (trackway.privacy) -------------------
PRIVACY_SCHEMA = "privacy"
# {text} {ts} {int} {bool}: the backend's types. No keys: the writers insert only what is missing.
PRIVACY_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    # The ledger: one row per request, never updated (subjects as keyed hashes, JSON).
    "requests": (
        ("request_id", "{text}"),
        ("request_type", "{text}"),
        ("subjects", "{text}"),
        ("received_at", "{ts}"),
        ("due_at", "{ts}"),
        ("reason", "{text}"),
        ("key_id", "{text}"),
        ("source", "{text}"),
    ),
    # Everything that happened to a request, one row per state change, never updated.
    "request_events": (
        ("request_id", "{text}"),
        ("seq", "{int}"),
        ("event_at", "{ts}"),
        ("kind", "{text}"),
        ("store", "{text}"),
        ("status", "{text}"),
        ("detail", "{text}"),
    ),
    # Derived from the ledger at each change: what loads filter and the dbt test checks.
    "erased_subjects": (
        ("subject_hash", "{text}"),
        ("drop_from", "{ts}"),
        ("drop_until", "{ts}"),
        ("suppressed", "{bool}"),
    ),
    # Each retention run (not a dry run): the moment it applied retention as of. Loads expire lines as of the
    # latest one (or now, if later), so a run with --as-of ahead of the clock is not undone by the next load.
    "retention_runs": (("as_of", "{ts}"), ("applied_at", "{ts}"), ("detail", "{text}")),
    # Keyed hash of each id the marts may hold, computed in Python at load: the dbt test's only way to hash.
    "id_hashes": (("id", "{text}"), ("id_hash", "{text}")),
    # Raw objects a load filtered erased lines out of: an erasure run rewrites them.
    "load_filtered": (
        ("source_object", "{text}"),
        ("load_id", "{text}"),
        ("rows_filtered", "{int}"),
        ("filtered_at", "{ts}"),
    ),
}
# What `trackway health` reads of the ledger to judge how near each request is to its due date, and all the
# reader role may select there (trackway.warehouse.roles): no subject hash, no event detail.
REQUEST_HEALTH_COLUMNS = ("request_id", "request_type", "received_at", "due_at")
EVENT_HEALTH_COLUMNS = ("request_id", "seq", "kind", "store", "status", "event_at")


def privacy_ddl(table_name: str, *, text: str, ts: str, integer: str, boolean: str) -> str:
    columns = ",\n    ".join(
        f"{name} "
        + kind.replace("{text}", text).replace("{ts}", ts).replace("{int}", integer).replace("{bool}", boolean)
        for name, kind in PRIVACY_TABLES[table_name]
    )
    return f"CREATE TABLE IF NOT EXISTS {{table}} (\n    {columns}\n)"


def privacy_statements(text: str, ts: str, integer: str, boolean: str) -> list[str]:
    return [f"CREATE SCHEMA IF NOT EXISTS {PRIVACY_SCHEMA}"] + [
        privacy_ddl(name, text=text, ts=ts, integer=integer, boolean=boolean).replace(
            "{table}", f"{PRIVACY_SCHEMA}.{name}"
        )
        for name in PRIVACY_TABLES
    ]
