"""The one place Trackway reads its configuration.

Every setting comes from an environment variable so the collector, the DAGs,
dbt and the CLI agree without sharing files. Defaults give the embedded
setup: everything under ``TRACKWAY_HOME`` on local disk.
"""

from __future__ import annotations

import os
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


def parse_write_keys(spec: str) -> dict[str, str]:
    """Parse ``source:key,source:key`` into ``{key: source}``."""
    keys: dict[str, str] = {}
    for entry in spec.split(","):
        item = entry.strip()
        if not item:
            continue
        source, sep, key = item.partition(":")
        source, key = source.strip(), key.strip()
        if not sep or not source or not key:
            raise ConfigError(
                f"TRACKWAY_WRITE_KEYS entry {item!r} is not 'source:key'; "
                "write e.g. TRACKWAY_WRITE_KEYS=web:abc123,backend:def456"
            )
        if key in keys and keys[key] != source:
            raise ConfigError(f"TRACKWAY_WRITE_KEYS gives key {key!r} to two sources ({keys[key]}, {source})")
        keys[key] = source
    if not keys:
        raise ConfigError("TRACKWAY_WRITE_KEYS is empty; write e.g. TRACKWAY_WRITE_KEYS=web:abc123")
    return keys


DEMO_WRITE_KEYS = "demo:trackway-demo-key"


@dataclass(frozen=True)
class WarehouseTarget:
    """Where the warehouse is, parsed from ``TRACKWAY_WAREHOUSE_URL``."""

    kind: str  # "duckdb" or "postgres"
    url: str
    duckdb_path: Path | None = None
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = None
    database: str | None = None

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
        raise ConfigError(
            f"TRACKWAY_WAREHOUSE_URL={url!r} has unsupported scheme {parsed.scheme!r}; "
            "use duckdb:///path/warehouse.duckdb or postgresql://user:pass@host:5432/db"
        )

    def dbt_env(self) -> dict[str, str]:
        """Environment for ``include/dbt/profiles.yml``, which reads only env vars."""
        if self.kind == "duckdb":
            return {"TRACKWAY_DBT_TARGET": "duckdb", "TRACKWAY_DUCKDB_PATH": str(self.duckdb_path)}
        return {
            "TRACKWAY_DBT_TARGET": "postgres",
            "TRACKWAY_PG_HOST": self.host or "localhost",
            "TRACKWAY_PG_PORT": str(self.port or 5432),
            "TRACKWAY_PG_USER": self.user or "postgres",
            "TRACKWAY_PG_PASSWORD": self.password or "",
            "TRACKWAY_PG_DATABASE": self.database or "",
        }


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
    alert_webhook_url: str | None = None
    task_retries: int = 2

    @property
    def events_url(self) -> str:
        return self.raw_url.rstrip("/") + "/events"

    @property
    def quarantine_url(self) -> str:
        return self.raw_url.rstrip("/") + "/quarantine"


def _default_dbt_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "dbt"


def load_settings() -> Settings:
    """Read the environment now (not at import) so tests and the CLI can change it."""
    home = Path(_env("TRACKWAY_HOME", ".trackway")).expanduser().resolve()
    raw_url = _env("TRACKWAY_RAW_URL", (home / "raw").as_uri())
    if urlparse(raw_url).scheme not in ("file", "s3", "gs"):
        raise ConfigError(f"TRACKWAY_RAW_URL={raw_url!r}: use file:///path, s3://bucket/prefix or gs://bucket/prefix")
    warehouse_url = _env("TRACKWAY_WAREHOUSE_URL", "duckdb://" + str(home / "warehouse.duckdb"))
    keys_spec = _env("TRACKWAY_WRITE_KEYS")
    alert_webhook_url = _env("TRACKWAY_ALERT_WEBHOOK_URL")
    if alert_webhook_url and urlparse(alert_webhook_url).scheme not in ("http", "https"):
        raise ConfigError(
            f"TRACKWAY_ALERT_WEBHOOK_URL={alert_webhook_url!r} is not an http(s) URL; write e.g. https://hooks.example.com/trackway"
        )
    return Settings(
        home=home,
        raw_url=raw_url,
        raw_conn_id=_env("TRACKWAY_RAW_CONN_ID"),
        warehouse=WarehouseTarget.parse(warehouse_url),
        write_keys=parse_write_keys(keys_spec or DEMO_WRITE_KEYS),
        write_keys_are_demo=keys_spec is None,
        spool_dir=Path(_env("TRACKWAY_SPOOL_DIR", str(home / "spool"))).expanduser().resolve(),
        spool_max_bytes=_int_env("TRACKWAY_SPOOL_MAX_BYTES", 64 * 1024 * 1024),
        spool_max_age_seconds=_int_env("TRACKWAY_SPOOL_MAX_AGE_SECONDS", 60),
        max_body_bytes=_int_env("TRACKWAY_MAX_BODY_BYTES", 512 * 1024),
        collector_host=_env("TRACKWAY_COLLECTOR_HOST", "127.0.0.1"),
        collector_port=_int_env("TRACKWAY_COLLECTOR_PORT", 8080),
        trust_forwarded_for=(_env("TRACKWAY_TRUST_FORWARDED_FOR", "false").lower() in ("1", "true", "yes")),
        load_lookback_hours=_int_env("TRACKWAY_LOAD_LOOKBACK_HOURS", 1, minimum=0),
        dbt_project_dir=Path(_env("TRACKWAY_DBT_PROJECT_DIR", str(_default_dbt_dir()))).resolve(),
        alert_webhook_url=alert_webhook_url,
        task_retries=_int_env("TRACKWAY_TASK_RETRIES", 2, minimum=0),
    )
