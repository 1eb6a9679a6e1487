"""The one place Trackway reads its configuration.

Every setting comes from an environment variable so the collector, the DAGs,
dbt and the CLI agree without sharing files. Defaults give the embedded
setup: everything under ``TRACKWAY_HOME`` on local disk.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload
from urllib.parse import unquote, urlparse


class ConfigError(ValueError):
    """A setting is malformed; the message says which variable and how to fix it."""


@overload
def _env(name: str) -> str | None: ...
@overload
def _env(name: str, default: str) -> str: ...
def _env(name: str, default: str | None = None) -> str | None:
    """An environment variable, where set and not empty; else ``default``."""
    value = os.environ.get(name)
    return value if value else default


def _int_env(name: str, default: int, *, minimum: int = 1) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number; set it to e.g. {default}") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}; set it to e.g. {default}")
    return value


def _float_env(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; set it to e.g. {default}") from None
    if not value >= minimum:  # also refuses NaN
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}; set it to e.g. {default}")
    return value


def parse_write_keys(spec: str, what: str = "TRACKWAY_WRITE_KEYS") -> dict[str, str]:
    """Parse ``source:key,source:key`` (commas or new lines; ``#`` comments) into ``{key: source}``.

    A source may have several keys, so a key can be rotated: add the new one,
    move the clients over, then remove the old one.
    """
    keys: dict[str, str] = {}
    lines = [line.split("#", 1)[0] for line in spec.splitlines()]
    for entry in ",".join(lines).split(","):
        item = entry.strip()
        if not item:
            continue
        source, sep, key = item.partition(":")
        source, key = source.strip(), key.strip()
        if not sep or not source or not key:
            raise ConfigError(
                f"{what} entry {item!r} is not 'source:key'; write e.g. web:abc123,backend:def456 (one per line in a file)"
            )
        if key in keys and keys[key] != source:
            raise ConfigError(f"{what} gives one key to two sources ({keys[key]}, {source})")
        keys[key] = source
    if not keys:
        raise ConfigError(f"{what} is empty; write e.g. web:abc123")
    return keys


def load_write_keys() -> tuple[dict[str, str], bool]:
    """The write keys from TRACKWAY_WRITE_KEYS and/or TRACKWAY_WRITE_KEYS_FILE, and whether they are the demo key.

    Read again on SIGHUP by the collector, so the file is the way to rotate keys without a restart.
    """
    spec, path = _env("TRACKWAY_WRITE_KEYS"), _env("TRACKWAY_WRITE_KEYS_FILE")
    keys: dict[str, str] = {}
    if spec is not None:
        keys.update(parse_write_keys(spec))
    if path is not None:
        try:
            text = Path(path).expanduser().read_text()
        except OSError as exc:
            raise ConfigError(
                f"TRACKWAY_WRITE_KEYS_FILE={path!r} cannot be read ({exc.strerror}); "
                "point it at a file of source:key lines"
            ) from None
        for key, source in parse_write_keys(text, f"TRACKWAY_WRITE_KEYS_FILE {path}").items():
            if keys.get(key, source) != source:
                raise ConfigError("TRACKWAY_WRITE_KEYS and TRACKWAY_WRITE_KEYS_FILE give one key to two sources")
            keys[key] = source
    if spec is None and path is None:
        return parse_write_keys(DEMO_WRITE_KEYS), True
    return keys, False


DEMO_WRITE_KEYS = "demo:trackway-demo-key"


@dataclass(frozen=True)
class WarehouseTarget:
    """Where the warehouse is, parsed from ``TRACKWAY_WAREHOUSE_URL``."""

    kind: str  # "duckdb", "postgres" or "bigquery"
    url: str
    duckdb_path: Path | None = None
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = None
    database: str | None = None
    # BigQuery: datasets are "<dataset_prefix>_raw", "<dataset_prefix>_analytics", ... (plain names without a prefix).
    project: str | None = None
    dataset_prefix: str = ""
    location: str = "US"
    # Airflow connection (google_cloud_platform) with the credentials; None: Application Default Credentials.
    conn_id: str | None = None
    # Only for emulators (bqemulator in the tests): the REST endpoint instead of bigquery.googleapis.com.
    api_endpoint: str | None = None

    @classmethod
    def parse(cls, url: str) -> WarehouseTarget:
        parsed = urlparse(url)
        if parsed.scheme == "duckdb":
            # duckdb:///abs/path.duckdb or duckdb://relative/path.duckdb
            path = unquote(parsed.netloc + parsed.path)
            if not path:
                raise ConfigError(
                    f"TRACKWAY_WAREHOUSE_URL={url!r} names no DuckDB file; write duckdb:///path/to/warehouse.duckdb"
                )
            return cls(kind="duckdb", url=url, duckdb_path=Path(path).expanduser().resolve())
        if parsed.scheme in ("postgres", "postgresql"):
            database = unquote(parsed.path.lstrip("/"))
            if not database:
                raise ConfigError(
                    f"TRACKWAY_WAREHOUSE_URL={url!r} names no database; write postgresql://user:pass@host:5432/dbname"
                )
            return cls(
                kind="postgres",
                url=url,
                host=parsed.hostname or "localhost",
                port=parsed.port or 5432,
                user=unquote(parsed.username) if parsed.username else os.environ.get("PGUSER", "postgres"),
                password=unquote(parsed.password) if parsed.password else os.environ.get("PGPASSWORD", ""),
                database=database,
            )
        if parsed.scheme == "bigquery":
            prefix = unquote(parsed.path.strip("/"))
            if not parsed.netloc or "/" in prefix or not re.fullmatch(r"[A-Za-z0-9_]*", prefix):
                raise ConfigError(
                    f"TRACKWAY_WAREHOUSE_URL={url!r}: write bigquery://<project>/<dataset-prefix>, e.g. "
                    "bigquery://my-project/trackway (datasets trackway_raw, trackway_analytics, ...)"
                )
            return cls(
                kind="bigquery",
                url=url,
                project=parsed.netloc,
                dataset_prefix=prefix,
                location=_env("TRACKWAY_BIGQUERY_LOCATION", "US"),
                conn_id=_env("TRACKWAY_WAREHOUSE_CONN_ID"),
                api_endpoint=_env("TRACKWAY_BIGQUERY_API_ENDPOINT"),
            )
        raise ConfigError(
            f"TRACKWAY_WAREHOUSE_URL={url!r} has unsupported scheme {parsed.scheme!r}; "
            "use duckdb:///path/warehouse.duckdb, postgresql://user:pass@host:5432/db or bigquery://project/prefix"
        )

    def dataset(self, schema: str) -> str:
        """The BigQuery dataset that plays Trackway's schema ``schema`` (raw, analytics, ...)."""
        return f"{self.dataset_prefix}_{schema}" if self.dataset_prefix else schema

    def dbt_env(self) -> dict[str, str]:
        """Environment for ``include/dbt/profiles.yml``, which reads only env vars."""
        if self.kind == "duckdb":
            return {"TRACKWAY_DBT_TARGET": "duckdb", "TRACKWAY_DUCKDB_PATH": str(self.duckdb_path)}
        if self.kind == "bigquery":
            env = {
                "TRACKWAY_DBT_TARGET": "bigquery_emulator" if self.api_endpoint else "bigquery",
                "TRACKWAY_BQ_PROJECT": self.project or "",
                "TRACKWAY_BQ_DATASET_PREFIX": self.dataset_prefix,
                "TRACKWAY_BQ_LOCATION": self.location,
            }
            if self.api_endpoint:
                env["TRACKWAY_BQ_API_ENDPOINT"] = self.api_endpoint
            return env
        return {
            "TRACKWAY_DBT_TARGET": "postgres",
            "TRACKWAY_PG_HOST": self.host or "localhost",
            "TRACKWAY_PG_PORT": str(self.port or 5432),
            "TRACKWAY_PG_USER": self.user or "postgres",
            "TRACKWAY_PG_PASSWORD": self.password or "",
            "TRACKWAY_PG_DATABASE": self.database or "",
        }


SOURCE_LAYOUTS = ("trackway", "firehose", "segment-s3")
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


def parse_sources(text: str, origin: str) -> list[Source]:
    """Parse and check a sources file; every mistake names the entry and what to write instead."""
    import yaml

    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin} is not valid YAML: {exc}") from None
    entries = doc.get("sources") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{origin} needs a top-level 'sources:' list; see the README section on raw sources")
    sources: list[Source] = []
    for n, entry in enumerate(entries, start=1):
        where = f"{origin}: source #{n}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} is not a mapping with name/url/layout")
        unknown = set(entry) - {"name", "url", "conn_id", "layout", "fields", "type"}
        if unknown:
            raise ConfigError(
                f"{where} has unknown keys {sorted(unknown)}; allowed: name, url, conn_id, layout, fields, type"
            )
        name, url, layout = entry.get("name"), entry.get("url"), entry.get("layout", "trackway")
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"{where} needs a name of letters, digits, '-' or '_', e.g. name: adgem")
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
        if any(s.name == name for s in sources):
            raise ConfigError(f"{where} is declared twice; names must be unique")
        sources.append(
            Source(
                name=name,
                url=url,
                layout=layout,
                conn_id=entry.get("conn_id"),
                fields=tuple(fields.items()),
                type=entry.get("type"),
            )
        )
    return sources


@dataclass(frozen=True)
class CollectorLimits:
    """The collector's server, limit and back-pressure settings (Segment's limits by default)."""

    workers: int = max(1, os.cpu_count() or 1)
    max_event_bytes: int = 32 * 1024
    max_batch_events: int = 2500
    rate_limit_events_per_second: float = 0.0  # per write key; 0 = off
    spool_max_pending_bytes: int = 1024**3  # bytes not yet uploaded, all workers together
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    keep_alive_seconds: float = 5.0
    max_connections: int = 10_000  # per worker
    upload_backoff_initial_seconds: float = 1.0
    upload_backoff_max_seconds: float = 30.0
    log_json: bool = False


@dataclass(frozen=True)
class Settings:
    home: Path
    raw_url: str
    raw_conn_id: str | None
    warehouse: WarehouseTarget
    write_keys: dict[str, str] = field(repr=False)
    write_keys_are_demo: bool
    spool_dir: Path
    spool_max_bytes: int
    spool_max_age_seconds: int
    max_body_bytes: int
    collector_host: str
    collector_port: int
    trust_forwarded_for: bool
    load_lookback_hours: int
    dbt_project_dir: Path
    # dbt's own environment (adr/0007); None: run dbt in this process (DuckDB/PostgreSQL only).
    dbt_executable: Path | None = None
    alert_webhook_url: str | None = None
    task_retries: int = 2
    collector: CollectorLimits = field(default_factory=CollectorLimits)
    sources_file: Path | None = None
    # Tracking plan (issue 8): folder of YAML, and per-source enforcement modes.
    plan_dir: Path | None = None
    plan_modes: dict[str, str] = field(default_factory=dict)
    plan_default_mode: str = "flag"
    typed_schema: str = "analytics_typed"

    def sources(self) -> list[Source]:
        """Extra raw sources from the sources file; none when there is no file."""
        if self.sources_file is None:
            return []
        try:
            text = self.sources_file.read_text()
        except OSError as exc:
            raise ConfigError(f"TRACKWAY_SOURCES_FILE={self.sources_file}: cannot read it ({exc})") from None
        return parse_sources(text, str(self.sources_file))

    @property
    def events_url(self) -> str:
        return self.raw_url.rstrip("/") + "/events"

    @property
    def quarantine_url(self) -> str:
        return self.raw_url.rstrip("/") + "/quarantine"


def _default_dbt_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "dbt"


def _default_dbt_executable(warehouse_kind: str) -> Path | None:
    """``TRACKWAY_DBT_EXECUTABLE``; else in-process on DuckDB and PostgreSQL, the Makefile's .dbt-venv on BigQuery.

    One setting for every caller: dbt_runner's subprocess and Cosmos's ``dbt_executable_path``.
    In-process is the default where it can be (adr/0007): events_transform took 92 s
    in-process against 345 s with a dbt process per task. Only dbt-bigquery needs the
    separate environment; without it, BigQuery fails with "run make dbt-venv".
    """
    explicit = _env("TRACKWAY_DBT_EXECUTABLE")  # a path, or "in-process"
    if explicit is not None:
        if explicit.lower() in ("in-process", "none"):
            return None
        return Path(explicit).expanduser().absolute()  # checked when dbt runs (dbt_runner)
    if warehouse_kind != "bigquery":
        return None
    candidate = Path(__file__).resolve().parents[2] / ".dbt-venv" / "bin" / "dbt"
    return candidate if candidate.is_file() else None


def parse_plan_modes(spec: str | None) -> tuple[dict[str, str], str]:
    """``web:block,backend:flag`` (``*:mode`` or a bare mode sets the default, which is flag)."""
    modes: dict[str, str] = {}
    default = "flag"
    for entry in (spec or "").split(","):
        item = entry.strip()
        if not item:
            continue
        source, sep, mode = item.rpartition(":")
        mode = mode.strip().lower()
        if mode not in ("allow", "flag", "block"):
            raise ConfigError(
                f"TRACKWAY_PLAN_MODES entry {item!r}: the mode must be allow, flag or block; "
                "write e.g. TRACKWAY_PLAN_MODES=web:block,backend:flag"
            )
        if not sep or source.strip() in ("", "*"):
            default = mode
        else:
            modes[source.strip()] = mode
    return modes, default


def load_settings() -> Settings:
    """Read the environment now (not at import) so tests and the CLI can change it."""
    home = Path(_env("TRACKWAY_HOME", ".trackway")).expanduser().resolve()
    raw_url = _env("TRACKWAY_RAW_URL", (home / "raw").as_uri())
    if urlparse(raw_url).scheme not in ("file", "s3", "gs"):
        raise ConfigError(f"TRACKWAY_RAW_URL={raw_url!r}: use file:///path, s3://bucket/prefix or gs://bucket/prefix")
    warehouse_url = _env("TRACKWAY_WAREHOUSE_URL", "duckdb://" + str(home / "warehouse.duckdb"))
    write_keys, write_keys_are_demo = load_write_keys()
    alert_webhook_url = _env("TRACKWAY_ALERT_WEBHOOK_URL")
    if alert_webhook_url and urlparse(alert_webhook_url).scheme not in ("http", "https"):
        raise ConfigError(
            f"TRACKWAY_ALERT_WEBHOOK_URL={alert_webhook_url!r} is not an http(s) URL; write e.g. https://hooks.example.com/trackway"
        )
    plan_dir_text = _env("TRACKWAY_PLAN_DIR")
    plan_dir = Path(plan_dir_text).expanduser().resolve() if plan_dir_text else None
    if plan_dir is not None and not plan_dir.is_dir():
        raise ConfigError(f"TRACKWAY_PLAN_DIR={plan_dir_text!r} is not a folder; point it at a tracking plan folder")
    plan_modes, plan_default_mode = parse_plan_modes(_env("TRACKWAY_PLAN_MODES"))
    typed_schema = _env("TRACKWAY_TYPED_SCHEMA", "analytics_typed")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", typed_schema):
        raise ConfigError(f"TRACKWAY_TYPED_SCHEMA={typed_schema!r}: use lower-case letters, digits and _")
    warehouse = WarehouseTarget.parse(warehouse_url)
    return Settings(
        home=home,
        raw_url=raw_url,
        raw_conn_id=_env("TRACKWAY_RAW_CONN_ID"),
        warehouse=warehouse,
        write_keys=write_keys,
        write_keys_are_demo=write_keys_are_demo,
        spool_dir=Path(_env("TRACKWAY_SPOOL_DIR", str(home / "spool"))).expanduser().resolve(),
        spool_max_bytes=_int_env("TRACKWAY_SPOOL_MAX_BYTES", 64 * 1024 * 1024),
        spool_max_age_seconds=_int_env("TRACKWAY_SPOOL_MAX_AGE_SECONDS", 60),
        max_body_bytes=_int_env("TRACKWAY_MAX_BODY_BYTES", 500 * 1024),
        collector_host=_env("TRACKWAY_COLLECTOR_HOST", "127.0.0.1"),
        collector_port=_int_env("TRACKWAY_COLLECTOR_PORT", 8080),
        trust_forwarded_for=(_env("TRACKWAY_TRUST_FORWARDED_FOR", "false").lower() in ("1", "true", "yes")),
        load_lookback_hours=_int_env("TRACKWAY_LOAD_LOOKBACK_HOURS", 1, minimum=0),
        dbt_project_dir=Path(_env("TRACKWAY_DBT_PROJECT_DIR", str(_default_dbt_dir()))).resolve(),
        dbt_executable=_default_dbt_executable(warehouse.kind),
        alert_webhook_url=alert_webhook_url,
        task_retries=_int_env("TRACKWAY_TASK_RETRIES", 2, minimum=0),
        collector=_collector_limits(),
        sources_file=_sources_file(home),
        plan_dir=plan_dir,
        plan_modes=plan_modes,
        plan_default_mode=plan_default_mode,
        typed_schema=typed_schema,
    )


def _collector_limits() -> CollectorLimits:
    d = CollectorLimits()
    return CollectorLimits(
        workers=_int_env("TRACKWAY_COLLECTOR_WORKERS", d.workers),
        max_event_bytes=_int_env("TRACKWAY_MAX_EVENT_BYTES", d.max_event_bytes),
        max_batch_events=_int_env("TRACKWAY_MAX_BATCH_EVENTS", d.max_batch_events),
        rate_limit_events_per_second=_float_env("TRACKWAY_RATE_LIMIT_EVENTS_PER_SECOND", 0.0),
        spool_max_pending_bytes=_int_env("TRACKWAY_SPOOL_MAX_PENDING_BYTES", d.spool_max_pending_bytes),
        header_timeout_seconds=_float_env("TRACKWAY_HEADER_TIMEOUT_SECONDS", d.header_timeout_seconds, minimum=0.1),
        body_timeout_seconds=_float_env("TRACKWAY_BODY_TIMEOUT_SECONDS", d.body_timeout_seconds, minimum=0.1),
        keep_alive_seconds=_float_env("TRACKWAY_KEEP_ALIVE_SECONDS", d.keep_alive_seconds, minimum=0.1),
        max_connections=_int_env("TRACKWAY_MAX_CONNECTIONS", d.max_connections),
        upload_backoff_initial_seconds=_float_env(
            "TRACKWAY_UPLOAD_BACKOFF_INITIAL_SECONDS", d.upload_backoff_initial_seconds, minimum=0.01
        ),
        upload_backoff_max_seconds=_float_env(
            "TRACKWAY_UPLOAD_BACKOFF_MAX_SECONDS", d.upload_backoff_max_seconds, minimum=0.01
        ),
        log_json=_env("TRACKWAY_LOG_FORMAT", "text").lower() == "json",
    )


def _sources_file(home: Path) -> Path | None:
    named = _env("TRACKWAY_SOURCES_FILE")
    if named:
        return Path(named).expanduser().resolve()
    default = home / "sources.yml"
    return default if default.exists() else None
