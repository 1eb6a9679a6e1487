"""The sources file: extra raw sources other systems write (adr/0010), and product databases to sync (adr/0023).

An entry is ``kind: objects`` (the default: a bucket of raw event files, read by the
loader) or ``kind: database`` (a product database whose tables the ``app_sync`` DAG
copies into the warehouse's ``app`` schema; docs/app-data.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlparse

from trackway.config.errors import ConfigError
from trackway.config.retention import Retention, parse_retention

SOURCE_KINDS = ("objects", "database")
SOURCE_LAYOUTS = ("trackway", "firehose", "segment-s3")
# What happens in the warehouse to a row deleted in the product database (docs/app-data.md#deleted-rows).
DELETE_MODES = ("soft", "remove", "ignore")
APP_SCHEMA = "app"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Segment's field names (the raw.events_raw text columns) that a source's `fields` may map.
MAPPABLE_FIELDS = (
    "message_id",
    "type",
    "event",
    "name",
    "user_id",
    "anonymous_id",
    "group_id",
    "previous_id",
    "source_id",
    "timestamp",
    "original_timestamp",
    "sent_at",
    "received_at",
)


@dataclass(frozen=True)
class Source:
    """An extra raw source from the sources file (see adr/0010-raw-source-layouts.md)."""

    name: str
    url: str
    layout: str
    conn_id: str | None = None
    fields: tuple[tuple[str, str], ...] = ()  # (column, JSONPath such as $.user.id)
    type: str | None = None
    retention: Retention | None = None  # {full_days, then}: its events' retention (docs/privacy.md#retention)


def _entries(text: str, origin: str) -> list[tuple[str, object]]:
    """(where, entry) for every entry of the file, with its kind checked; the names unique across kinds."""
    import yaml

    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin} is not valid YAML: {exc}") from None
    entries = doc.get("sources") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{origin} needs a top-level 'sources:' list; see docs/loading.md (raw sources)")
    out = []
    names: set[object] = set()
    for n, entry in enumerate(entries, start=1):
        where = f"{origin}: source #{n}"
        if isinstance(entry, dict):
            if entry.get("kind", "objects") not in SOURCE_KINDS:
                raise ConfigError(f"{where}: kind {entry.get('kind')!r} is not one of {', '.join(SOURCE_KINDS)}")
            name = entry.get("name")
            if isinstance(name, str) and name in names:
                raise ConfigError(f"{origin}: source {name!r} is declared twice; names must be unique")
            names.add(name)
        out.append((where, entry))
    return out


def parse_sources(text: str, origin: str) -> list[Source]:
    """The raw-object sources of a sources file (``kind: objects``); every mistake names the entry and the fix."""
    sources: list[Source] = []
    for position, entry in _entries(text, origin):
        if not isinstance(entry, dict):
            raise ConfigError(f"{position} is not a mapping with name/url/layout")
        if entry.get("kind", "objects") == "objects":
            sources.append(_object_source(entry, position, origin))
    return sources


def _object_source(entry: dict, position: str, origin: str) -> Source:
    unknown = set(entry) - {"name", "kind", "url", "conn_id", "layout", "fields", "type", "retention"}
    if unknown:
        raise ConfigError(
            f"{position} has unknown keys {sorted(unknown)}; "
            "allowed: name, kind, url, conn_id, layout, fields, type, retention"
        )
    name, url, layout = entry.get("name"), entry.get("url"), entry.get("layout", "trackway")
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"{position} needs a name of letters, digits, '-' or '_', e.g. name: adgem")
    where = f"{origin}: source {name!r}"
    if not isinstance(url, str) or urlparse(url).scheme not in ("file", "s3", "gs"):
        raise ConfigError(f"{where}: url must be file:///path/, s3://bucket/prefix/ or gs://bucket/prefix/")
    if layout not in SOURCE_LAYOUTS:
        raise ConfigError(f"{where}: layout {layout!r} is not one of {', '.join(SOURCE_LAYOUTS)}")
    fields = entry.get("fields") or {}
    if not isinstance(fields, dict):
        raise ConfigError(f"{where}: fields must map column names to JSONPaths, e.g. message_id: $.event_uuid")
    for column, path in fields.items():
        if column not in MAPPABLE_FIELDS:
            raise ConfigError(f"{where}: fields.{column} is not one of {', '.join(MAPPABLE_FIELDS)}")
        if not isinstance(path, str) or not path.startswith("$."):
            raise ConfigError(f"{where}: fields.{column} must be a JSONPath like $.user.id, not {path!r}")
    return Source(
        name=name,
        url=url,
        layout=layout,
        conn_id=entry.get("conn_id"),
        fields=tuple(fields.items()),
        type=entry.get("type"),
        retention=parse_retention(entry.get("retention"), where, "source"),
    )


@dataclass(frozen=True)
class AppTable:
    """One table of a product database, copied incrementally and merged on its primary key."""

    name: str
    cursor: str  # an updated_at-style column: rows whose value grew since the last sync are copied again
    primary_key: tuple[str, ...] = ()  # empty: the table's own primary key, read from the database
    deletes: str = "soft"  # soft | remove | ignore (DELETE_MODES)
    delete_column: str | None = None  # the product marks deleted rows here (e.g. deleted_at) instead of deleting
    references: tuple[tuple[str, str], ...] = ()  # (column, "table.column"): its foreign keys, for analytics_x


@dataclass(frozen=True)
class AppDatabase:
    """A product database (``kind: database``) synced into ``schema`` by the app_sync DAG (adr/0023).

    ``url`` is a SQLAlchemy URL without a password (an embedded SQLite file); a database
    with credentials is named by ``conn_id``, an Airflow connection, and its URL is only
    built when the sync runs.
    """

    name: str
    tables: tuple[AppTable, ...]
    conn_id: str | None = None
    url: str | None = None
    schema: str = APP_SCHEMA  # the warehouse schema (BigQuery: dataset "<prefix>_app")
    source_schema: str | None = None  # the schema inside the product database, when not its default

    def table(self, name: str) -> AppTable:
        return next(t for t in self.tables if t.name == name)


def _identifier(value: object, where: str, example: str) -> str:
    if not isinstance(value, str) or not _IDENT.fullmatch(value):
        raise ConfigError(f"{where} must be a column or table name (letters, digits, _), e.g. {example}")
    return value


def _app_table(entry: object, where: str) -> AppTable:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a mapping: {{name: listings, cursor: updated_at, primary_key: [id]}}")
    allowed = {"name", "cursor", "primary_key", "deletes", "delete_column", "references"}
    unknown = set(entry) - allowed
    if unknown:
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}; allowed: {', '.join(sorted(allowed))}")
    name = _identifier(entry.get("name"), f"{where}: name", "listings")
    where = f"{where} ({name})"
    if entry.get("cursor") is None:
        raise ConfigError(
            f"{where} has no cursor: name the column the product updates on every change, e.g. cursor: updated_at "
            "(each sync copies the rows whose cursor grew since the last one)"
        )
    cursor = _identifier(entry["cursor"], f"{where}: cursor", "updated_at")
    key = entry.get("primary_key") or []
    key = [key] if isinstance(key, str) else key
    if not isinstance(key, list):
        raise ConfigError(f"{where}: primary_key must be a column or a list of columns, e.g. [id]")
    primary_key = tuple(_identifier(k, f"{where}: primary_key", "[id]") for k in key)
    deletes = entry.get("deletes", "soft")
    if deletes not in DELETE_MODES:
        raise ConfigError(f"{where}: deletes {deletes!r} is not one of {', '.join(DELETE_MODES)}")
    delete_column = entry.get("delete_column")
    if delete_column is not None:
        delete_column = _identifier(delete_column, f"{where}: delete_column", "deleted_at")
    refs = entry.get("references") or {}
    if not isinstance(refs, dict):
        raise ConfigError(f"{where}: references must map a column to table.column, e.g. {{host_id: hosts.id}}")
    references = []
    for column, target in refs.items():
        _identifier(column, f"{where}: references", "host_id")
        parts = target.split(".") if isinstance(target, str) else []
        if len(parts) != 2 or not all(_IDENT.fullmatch(p) for p in parts):
            raise ConfigError(f"{where}: references.{column} must be table.column of this database, e.g. hosts.id")
        references.append((column, target))
    return AppTable(name, cursor, primary_key, deletes, delete_column, tuple(references))


def parse_app_databases(text: str, origin: str) -> list[AppDatabase]:
    """The product databases of a sources file (``kind: database``); every mistake names the entry and the fix."""
    databases: list[AppDatabase] = []
    for position, entry in _entries(text, origin):
        if isinstance(entry, dict) and entry.get("kind") == "database":
            databases.append(_app_database(entry, position, origin, databases))
    return databases


def _app_database(entry: dict, position: str, origin: str, earlier: list[AppDatabase]) -> AppDatabase:
    allowed = {"name", "kind", "conn_id", "url", "schema", "source_schema", "tables"}
    unknown = set(entry) - allowed
    if unknown:
        raise ConfigError(f"{position} has unknown keys {sorted(unknown)}; allowed: {', '.join(sorted(allowed))}")
    name = entry.get("name")
    if not isinstance(name, str) or not _SCHEMA.fullmatch(name):
        raise ConfigError(f"{position} needs a name of lower-case letters, digits and _, e.g. name: product_db")
    where = f"{origin}: database {name!r}"
    conn_id, url = entry.get("conn_id"), entry.get("url")
    if (conn_id is None) == (url is None):
        raise ConfigError(
            f"{where} needs conn_id (an Airflow connection to the database) or url (a SQLAlchemy URL "
            "without a password, e.g. sqlite:////data/app.db), not both"
        )
    if conn_id is not None and not isinstance(conn_id, str):
        raise ConfigError(f"{where}: conn_id must be an Airflow connection id, e.g. product_db")
    if url is not None:
        parsed = urlparse(url) if isinstance(url, str) else None
        if parsed is None or not parsed.scheme:
            raise ConfigError(f"{where}: url must be a SQLAlchemy URL, e.g. sqlite:////data/app.db")
        if parsed.password:
            # Never a secret in a file anyone may read: refused without showing it, and where it belongs.
            raise ConfigError(
                f"{where}: url holds a password; keep credentials in an Airflow connection and name it with conn_id"
            )
    schema = entry.get("schema", APP_SCHEMA)
    if not isinstance(schema, str) or not _SCHEMA.fullmatch(schema):
        raise ConfigError(f"{where}: schema must be lower-case letters, digits and _, e.g. schema: app")
    source_schema = entry.get("source_schema")
    if source_schema is not None:
        source_schema = _identifier(source_schema, f"{where}: source_schema", "public")
    entries = entry.get("tables")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where} needs a list of tables, e.g. tables: [{{name: listings, cursor: updated_at}}]")
    tables = [_app_table(t, f"{where}: table #{n}") for n, t in enumerate(entries, start=1)]
    names = [t.name for t in tables]
    twice = sorted(t for t in names if names.count(t) > 1)
    if twice:
        raise ConfigError(f"{where} lists table {twice[0]!r} twice")
    for table in tables:
        for _, target in table.references:
            if target.split(".")[0] not in names:
                raise ConfigError(
                    f"{where}: table {table.name!r} references {target}, a table this entry does not sync"
                )
    for other in earlier:
        shared = sorted(set(names) & {t.name for t in other.tables}) if other.schema == schema else []
        if shared:
            raise ConfigError(
                f"{where} and database {other.name!r} both write {schema}.{shared[0]}; give one of them another schema"
            )
    return AppDatabase(name, tuple(tables), conn_id, url, schema, source_schema)
