"""Where the warehouse is, parsed from ``TRACKWAY_WAREHOUSE_URL``; its password is a secret."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from pydantic import SecretStr

from trackway.config.errors import ConfigError
from trackway.config.redact import redact_url


@dataclass(frozen=True)
class WarehouseTarget:
    """Where the warehouse is. ``url`` and ``password`` are SecretStr: str() and repr() show ``**********``.

    Show ``display_url`` (the URL with its password masked); only the
    connection itself and dbt's environment (``dbt_env``) read the secret.
    """

    kind: str  # "duckdb", "postgres" or "bigquery"
    url: SecretStr
    duckdb_path: Path | None = None
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: SecretStr | None = None
    database: str | None = None
    # BigQuery: datasets are "<dataset_prefix>_raw", "<dataset_prefix>_analytics", ... (plain names without a prefix).
    project: str | None = None
    dataset_prefix: str = ""
    location: str = "US"
    # Airflow connection (google_cloud_platform) with the credentials; None: Application Default Credentials.
    conn_id: str | None = None
    # Only for emulators (bqemulator in the tests): the REST endpoint instead of bigquery.googleapis.com.
    api_endpoint: str | None = None
    # DuckDB: how long a writer waits for another process's hold on the file before "busy".
    duckdb_lock_wait_seconds: float = 120.0
    # DuckDB: how long a reader waits and retries while a load or transform holds the file.
    duckdb_read_wait_seconds: float = 60.0
    # DuckDB: TRACKWAY_DUCKDB_MEMORY_LIMIT as given (None: half the machine's memory, see duckdb_memory).
    duckdb_memory_limit: str | None = None

    @property
    def display_url(self) -> str:
        """The URL for people: logs, errors, `trackway status`, the data dictionary."""
        return redact_url(self.url.get_secret_value())

    @classmethod
    def parse(
        cls,
        url: str | SecretStr,
        *,
        location: str = "US",
        conn_id: str | None = None,
        api_endpoint: str | None = None,
        env: str = "TRACKWAY_WAREHOUSE_URL",
        duckdb_lock_wait_seconds: float = 120.0,
        duckdb_read_wait_seconds: float = 60.0,
        duckdb_memory_limit: str | None = None,
    ) -> WarehouseTarget:
        """``env``: the variable the URL came from, named in errors (the job URLs share this parser)."""
        secret = url if isinstance(url, SecretStr) else SecretStr(url)
        text = secret.get_secret_value()
        shown = redact_url(text)
        parsed = urlparse(text)
        if parsed.scheme == "duckdb":
            # duckdb:///abs/path.duckdb or duckdb://relative/path.duckdb
            path = unquote(parsed.netloc + parsed.path)
            if not path:
                raise ConfigError(f"{env}={shown!r} names no DuckDB file; write duckdb:///path/to/warehouse.duckdb")
            return cls(
                kind="duckdb",
                url=secret,
                duckdb_path=Path(path).expanduser().resolve(),
                duckdb_lock_wait_seconds=duckdb_lock_wait_seconds,
                duckdb_read_wait_seconds=duckdb_read_wait_seconds,
                duckdb_memory_limit=duckdb_memory_limit,
            )
        if parsed.scheme in ("postgres", "postgresql"):
            database = unquote(parsed.path.lstrip("/"))
            if not database:
                raise ConfigError(f"{env}={shown!r} names no database; write postgresql://user:pass@host:5432/dbname")
            try:
                port = parsed.port or 5432
            except ValueError:
                raise ConfigError(
                    f"{env}={shown!r} has no valid port; write postgresql://user:pass@host:5432/dbname"
                ) from None
            password = unquote(parsed.password) if parsed.password else os.environ.get("PGPASSWORD", "")
            return cls(
                kind="postgres",
                url=secret,
                host=parsed.hostname or "localhost",
                port=port,
                user=unquote(parsed.username) if parsed.username else os.environ.get("PGUSER", "postgres"),
                password=SecretStr(password),
                database=database,
            )
        if parsed.scheme == "bigquery":
            prefix = unquote(parsed.path.strip("/"))
            if not parsed.netloc or "/" in prefix or not re.fullmatch(r"[A-Za-z0-9_]*", prefix):
                raise ConfigError(
                    f"{env}={shown!r}: write bigquery://<project>/<dataset-prefix>, e.g. "
                    "bigquery://my-project/trackway (datasets trackway_raw, trackway_analytics, ...)"
                )
            return cls(
                kind="bigquery",
                url=secret,
                project=parsed.netloc,
                dataset_prefix=prefix,
                location=location,
                conn_id=conn_id,
                api_endpoint=api_endpoint,
            )
        raise ConfigError(
            f"{env}={shown!r} has unsupported scheme {parsed.scheme!r}; "
            "use duckdb:///path/warehouse.duckdb, postgresql://user:pass@host:5432/db or bigquery://project/prefix"
        )

    def duckdb_memory(self, at_most_mib: int | None = None) -> str:
        """DuckDB's memory_limit: TRACKWAY_DUCKDB_MEMORY_LIMIT, else half the machine's memory; capped at ``at_most_mib``."""
        if self.duckdb_memory_limit is not None:
            mib = memory_size_mib(self.duckdb_memory_limit, "TRACKWAY_DUCKDB_MEMORY_LIMIT")
        else:
            mib = machine_memory_bytes() // 2 // _MIB
        return f"{min(mib, at_most_mib) if at_most_mib else mib}MiB"

    def dataset(self, schema: str) -> str:
        """The BigQuery dataset that plays Trackway's schema ``schema`` (raw, analytics, ...)."""
        return f"{self.dataset_prefix}_{schema}" if self.dataset_prefix else schema

    def dbt_env(self) -> dict[str, str]:
        """Environment for ``include/dbt/profiles.yml``, which reads only env vars: the one place the password is read."""
        if self.kind == "duckdb":
            return {
                "TRACKWAY_DBT_TARGET": "duckdb",
                "TRACKWAY_DUCKDB_PATH": str(self.duckdb_path),
                "TRACKWAY_DBT_DUCKDB_MEMORY_LIMIT": self.duckdb_memory(),
            }
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
            "TRACKWAY_PG_PASSWORD": self.password.get_secret_value() if self.password else "",
            "TRACKWAY_PG_DATABASE": self.database or "",
        }


_MIB = 1024 * 1024
_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
_UNITS |= {"kib": 1024, "mib": _MIB, "gib": 1024**3, "tib": 1024**4}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)\s*", re.IGNORECASE)


def memory_size_mib(text: str, env: str) -> int:
    """A memory size as DuckDB writes them (``4GiB``, ``512MB``, ``1.5 GB``) in MiB; at least 64 MiB."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise ConfigError(f"{env}={text!r}: write a size such as 4GiB, 512MB or 2048MiB")
    mib = int(float(match[1]) * _UNITS[match[2].lower()] // _MIB)
    if mib < 64:
        raise ConfigError(f"{env}={text!r} is below 64 MiB, too little for DuckDB to run a query")
    return mib


def machine_memory_bytes() -> int:
    """The memory this process may use: physical memory, or the cgroup's (container's) limit when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            limit = Path(path).read_text().strip()
        except OSError:
            continue
        if limit.isdigit():
            total = min(total, int(limit))
    return total
