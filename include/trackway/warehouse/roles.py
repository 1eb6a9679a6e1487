"""One PostgreSQL role per job, made by ``trackway warehouse grant`` (docs/reference/warehouse-roles.md).

* the loader owns schema ``raw`` (landing tables and ledger) and the application schemas the
  app sync writes (``app`` and dlt's ``app_staging``; adr/0023), and nothing else;
* dbt (transform) reads ``raw.events_raw`` and ``app``, owns the schemas it builds and may create schemas;
* the reader selects from the analysts' schemas (``app`` among them), from raw's ledger and from the lineage
  columns of the landing tables (what ``trackway status`` counts), never a raw line, and from the erasure
  ledger each request's id, type and dates and its events' kinds (what ``trackway health`` judges), never
  a subject hash; its sessions start read-only.

None is a superuser. The statements are idempotent: run the command again after
adding a typed schema, or to change a password (each comes from its job's URL).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from trackway.config import ConfigError, WarehouseTarget
from trackway.rawdata.schema import EVENTS_RAW, LOAD_RUNS, LOADED_OBJECTS, RAW_SCHEMA, RAW_TABLES

# dbt's schemas (include/dbt/dbt_project.yml; staging also holds the PostgreSQL helper functions).
DBT_SCHEMAS = ("staging", "intermediate", "analytics", "audit", "analytics_x")  # audit: what each dbt run did
# The analysts' schemas among them (analytics_x: events joined with application rows, trackway.plan.xgen).
READ_SCHEMAS = ("analytics", "audit", "analytics_x")
# What trackway health's violation_spike reads of the tracking plan's violations (trackway.health.observe).
VIOLATIONS_TABLE = "plan_violation_rows"
VIOLATION_HEALTH_COLUMNS = ("event_name", "kind", "received_at")
# What trackway status reads of a landing table: where each line came from and whether it parsed.
LINEAGE_COLUMNS = ("source_object", "line_number", "load_id", "loaded_at", "parse_error", "received_at")
# What trackway health counts per hour (volume per source, stopped events, quarantine spikes): names, not lines.
HEALTH_COLUMNS = ("event", "name", "type", "source_id", "reason")
# The index dbt's incremental runs read raw by (include/dbt/macros/incremental.sql, create_raw_indexes):
# made here because only the table's owner, the loader, may create it.
RAW_LOADED_AT_INDEX = f"CREATE INDEX IF NOT EXISTS events_raw_loaded_at_idx ON {RAW_SCHEMA}.{EVENTS_RAW} (loaded_at)"
_RELATION_KINDS = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
_MASKED = sql.SQL("'***'")


@dataclass(frozen=True)
class JobRole:
    job: str  # load, transform or read
    env: str  # the variable whose URL names the role and its password
    target: WarehouseTarget

    @property
    def name(self) -> str:
        return self.target.user or ""


def job_roles(admin: WarehouseTarget, jobs: dict[str, tuple[str, WarehouseTarget]]) -> dict[str, JobRole]:
    """The three roles from their URLs, checked: set, distinct, with a password, none of them the admin."""
    if admin.kind != "postgres":
        raise ConfigError(f"trackway warehouse grant is for PostgreSQL; TRACKWAY_WAREHOUSE_URL is {admin.kind}")
    roles: dict[str, JobRole] = {}
    for job, (env, target) in jobs.items():
        if target is admin or target.user == admin.user:
            raise ConfigError(
                f"{env} is unset or names the role of TRACKWAY_WAREHOUSE_URL ({admin.user!r}): set it to the same "
                f"database with the job's own role, e.g. postgresql://trackway_{_ROLE_HINTS[job]}:PASSWORD@host:5432/db"
            )
        if not (target.password and target.password.get_secret_value()):
            raise ConfigError(f"{env} names no password for role {target.user!r}: the role is created with it")
        roles[job] = JobRole(job, env, target)
    names = [r.name for r in roles.values()]
    if len(set(names)) != len(names):
        raise ConfigError(f"the job URLs share a role ({', '.join(names)}): give each job its own")
    return roles


_ROLE_HINTS = {"load": "loader", "transform": "transform", "read": "reader"}


def _ids(*names: str) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def _table(schema: str, name: str) -> sql.Composable:
    return sql.Identifier(schema, name)


def grant_statements(
    database: str,
    roles: dict[str, JobRole],
    typed_schema: str,
    *,
    existing: dict[str, list[tuple[str, str]]] | None = None,
    masked: bool = False,
    app_schemas: tuple[str, ...] = ("app",),
) -> Iterator[sql.Composable]:
    """Every statement, in order. ``existing``: relations and functions already in raw and dbt's schemas, to own.

    ``app_schemas``: where app_sync writes the product's tables (``schema:`` of the sources file's databases).
    """
    loader, transform, reader = (roles[j].name for j in ("load", "transform", "read"))
    db = sql.Identifier(database)
    for role in roles.values():
        password = (
            _MASKED if masked else sql.Literal(role.target.password.get_secret_value() if role.target.password else "")
        )
        yield sql.SQL(
            "ALTER ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {}"
        ).format(sql.Identifier(role.name), password)
    # Any session of the reader (BI tools too) starts read-only; its grants are what really hold.
    yield sql.SQL("ALTER ROLE {} IN DATABASE {} SET default_transaction_read_only = on").format(
        sql.Identifier(reader), db
    )
    yield sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, _ids(loader, transform, reader))
    yield sql.SQL("REVOKE CREATE ON DATABASE {} FROM {}").format(db, _ids(loader, reader))
    # dbt creates its schemas (CREATE SCHEMA IF NOT EXISTS needs this even when they exist).
    yield sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(db, sql.Identifier(transform))
    # PostgreSQL 15's default; older servers let every role create tables in public.
    yield sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC")

    # raw: the loader's. The tables are made here (as the loader would) so they can be handed over and granted.
    from trackway.warehouse.ddl import raw_ddl

    yield sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
        sql.Identifier(RAW_SCHEMA), sql.Identifier(loader)
    )
    yield sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(RAW_SCHEMA), sql.Identifier(loader))
    for stmt in raw_ddl("TEXT", "TIMESTAMPTZ"):
        if not stmt.startswith("CREATE SCHEMA"):
            yield sql.SQL(stmt)  # Trackway's own DDL text, no input in it
    yield sql.SQL(RAW_LOADED_AT_INDEX)
    raw_tables = (*(t.name for t in RAW_TABLES), LOADED_OBJECTS, LOAD_RUNS)
    for name in raw_tables:
        yield sql.SQL("ALTER TABLE {} OWNER TO {}").format(_table(RAW_SCHEMA, name), sql.Identifier(loader))
    yield from _own(existing, RAW_SCHEMA, loader, skip=raw_tables)
    yield sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(RAW_SCHEMA), _ids(transform, reader))
    yield sql.SQL("GRANT SELECT ON {} TO {}").format(_table(RAW_SCHEMA, EVENTS_RAW), sql.Identifier(transform))
    for table in RAW_TABLES:
        readable = LINEAGE_COLUMNS + tuple(c for c in HEALTH_COLUMNS if c in table.columns)
        yield sql.SQL("GRANT SELECT ({}) ON {} TO {}").format(
            _ids(*readable), _table(RAW_SCHEMA, table.name), sql.Identifier(reader)
        )
    yield sql.SQL("GRANT SELECT ON {}, {} TO {}").format(
        _table(RAW_SCHEMA, LOADED_OBJECTS), _table(RAW_SCHEMA, LOAD_RUNS), sql.Identifier(reader)
    )

    # privacy: the erasure ledger's tables (docs/privacy.md), the loader's: every load reads the erased
    # subjects and notes the objects it filtered; dbt's test that no erased subject is in a mart reads two.
    from trackway.warehouse.ddl import (
        EVENT_HEALTH_COLUMNS,
        PRIVACY_SCHEMA,
        PRIVACY_TABLES,
        REQUEST_HEALTH_COLUMNS,
        privacy_statements,
    )

    yield sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
        sql.Identifier(PRIVACY_SCHEMA), sql.Identifier(loader)
    )
    yield sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(PRIVACY_SCHEMA), sql.Identifier(loader))
    for stmt in privacy_statements("TEXT", "TIMESTAMPTZ", "BIGINT", "BOOLEAN"):
        if not stmt.startswith("CREATE SCHEMA"):
            yield sql.SQL(stmt)  # Trackway's own DDL text, no input in it
    for name in PRIVACY_TABLES:
        yield sql.SQL("ALTER TABLE {} OWNER TO {}").format(_table(PRIVACY_SCHEMA, name), sql.Identifier(loader))
    yield sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(PRIVACY_SCHEMA), sql.Identifier(transform))
    yield sql.SQL("GRANT SELECT ON {}, {} TO {}").format(
        _table(PRIVACY_SCHEMA, "erased_subjects"), _table(PRIVACY_SCHEMA, "id_hashes"), sql.Identifier(transform)
    )
    # trackway health's erasure_request_due: each request's deadline and its events' kinds, never a subject hash.
    yield sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(PRIVACY_SCHEMA), sql.Identifier(reader))
    for name, columns in (("requests", REQUEST_HEALTH_COLUMNS), ("request_events", EVENT_HEALTH_COLUMNS)):
        yield sql.SQL("GRANT SELECT ({}) ON {} TO {}").format(
            _ids(*columns), _table(PRIVACY_SCHEMA, name), sql.Identifier(reader)
        )

    # The product's tables (app_sync, as the loader) and dlt's merge staging: the loader's; dbt and the reader read them.
    for schema in app_schemas:
        for owned in (schema, f"{schema}_staging"):
            yield sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
                sql.Identifier(owned), sql.Identifier(loader)
            )
            yield sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(owned), sql.Identifier(loader))
            yield from _own(existing, owned, loader)
        yield from _readable(schema, loader, transform, reader)

    # dbt's schemas: the transform's. The reader sees the analysts' ones, now and as dbt rebuilds them.
    for schema in (*DBT_SCHEMAS, typed_schema):
        yield sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
            sql.Identifier(schema), sql.Identifier(transform)
        )
        yield sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(schema), sql.Identifier(transform))
        yield from _own(existing, schema, transform)
    for schema in (*READ_SCHEMAS, typed_schema):
        yield from _readable(schema, transform, reader)
    # trackway health's violation_spike counts plan violations per event, kind and hour: those columns only
    # (intermediate's other relations carry raw lines). Once dbt has built the table: a full refresh re-creates
    # it without the grant, and health then says to run this again.
    if any(name == VIOLATIONS_TABLE for _, name in (existing or {}).get("intermediate", [])):
        yield sql.SQL("GRANT USAGE ON SCHEMA intermediate TO {}").format(sql.Identifier(reader))
        yield sql.SQL("GRANT SELECT ({}) ON {} TO {}").format(
            _ids(*VIOLATION_HEALTH_COLUMNS), _table("intermediate", VIOLATIONS_TABLE), sql.Identifier(reader)
        )


def _readable(schema: str, owner: str, *readers: str) -> Iterator[sql.Composable]:
    """``readers`` may select from every table of ``schema``, now and as ``owner`` makes new ones."""
    yield sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), _ids(*readers))
    yield sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(sql.Identifier(schema), _ids(*readers))
    yield sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
        sql.Identifier(owner), sql.Identifier(schema), _ids(*readers)
    )


def _own(
    existing: dict[str, list[tuple[str, str]]] | None, schema: str, owner: str, skip: tuple[str, ...] = ()
) -> Iterator[sql.Composable]:
    """Hand what an earlier, single-role setup made in ``schema`` to its job's role."""
    for kind, name in (existing or {}).get(schema, []):
        if name in skip:
            continue
        target = sql.SQL(name) if kind == "FUNCTION" else _table(schema, name)  # a function as regprocedure text
        yield sql.SQL("ALTER {} {} OWNER TO {}").format(sql.SQL(kind), target, sql.Identifier(owner))


def existing_objects(cur: Any, schemas: tuple[str, ...]) -> dict[str, list[tuple[str, str]]]:
    """Relations (by kind) and functions (as ``regprocedure`` text) already in ``schemas``."""
    found: dict[str, list[tuple[str, str]]] = {}
    cur.execute(
        "SELECT n.nspname, c.relkind, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = ANY(%s) AND c.relkind = ANY(%s) ORDER BY 1, 3",
        [list(schemas), list(_RELATION_KINDS)],
    )
    for schema, kind, name in cur.fetchall():
        found.setdefault(schema, []).append((_RELATION_KINDS[kind], name))
    cur.execute(
        "SELECT n.nspname, p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = ANY(%s) ORDER BY 1, 2",
        [list(schemas)],
    )
    for schema, signature in cur.fetchall():
        found.setdefault(schema, []).append(("FUNCTION", signature))
    return found


class GrantError(RuntimeError):
    """The server refused a statement; the message names it and who may run the command."""


def grant(
    admin: WarehouseTarget, roles: dict[str, JobRole], typed_schema: str, app_schemas: tuple[str, ...] = ("app",)
) -> None:
    """Create or update the roles and their privileges in one transaction, as TRACKWAY_WAREHOUSE_URL's role."""
    import psycopg

    from trackway.warehouse.postgres_warehouse import PostgresWarehouse

    wh = PostgresWarehouse(admin)
    try:
        _grant(wh.con, roles, typed_schema, app_schemas)
    except psycopg.Error as exc:
        raise GrantError(
            f"{admin.display_url} refused it ({str(exc).splitlines()[0]}): run `trackway warehouse grant` as "
            "a superuser that owns the database (the stack's POSTGRES_USER); nothing was changed"
        ) from exc
    finally:
        wh.close()


def _grant(con: Any, roles: dict[str, JobRole], typed_schema: str, app_schemas: tuple[str, ...]) -> None:
    schemas = (RAW_SCHEMA, *DBT_SCHEMAS, typed_schema, *app_schemas, *(f"{s}_staging" for s in app_schemas))
    with con.transaction(), con.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('trackway.raw.ddl'))")  # beside a first load's DDL
        cur.execute("SELECT current_database()")
        database = cur.fetchone()[0]
        for role in roles.values():
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role.name])
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role.name)))
        existing = existing_objects(cur, schemas)
        for statement in grant_statements(database, roles, typed_schema, existing=existing, app_schemas=app_schemas):
            cur.execute(statement)
