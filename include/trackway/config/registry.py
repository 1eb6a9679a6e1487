"""Every ``TRACKWAY_*`` setting, declared once: name, type, default, secret or not, who reads it, what it does.

The sections below are pydantic-settings models, one per component, so a
section is validated only when its component asks for it: a malformed
collector setting breaks the collector, not the DAG files (see
adr/0015-settings-registry.md). ``SETTINGS`` lists them all for
``trackway config check`` and the generated docs/reference/configuration.md,
together with the variables Trackway sets for itself (``internal``).
"""

from __future__ import annotations

import builtins
import re
import types
import typing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from trackway.config.errors import ConfigError

# Who reads a setting. "all": every component (where the data is).
COMPONENTS = ("all", "collector", "load", "transform", "plan", "privacy", "dags", "health", "stack", "bi", "compose")
# What each component reads, for `trackway config check --component X`.
READS: dict[str, tuple[str, ...]] = {
    "collector": ("all", "collector", "plan", "privacy"),
    "load": ("all", "load", "privacy"),
    "transform": ("all", "transform", "plan"),
    "plan": ("all", "plan"),
    "privacy": ("all", "privacy"),
    "dags": ("all", "dags", "load", "transform", "plan", "privacy"),
    "health": ("all", "collector", "load", "health"),
    "demo": ("all", "collector", "load", "transform", "plan", "privacy", "dags"),
    # `trackway up` starts the collector and the Airflow processes that run the DAGs.
    "stack": ("all", "collector", "load", "transform", "plan", "privacy", "dags", "stack"),
    # `trackway bi metabase-setup`: Metabase's admin and where it listens (the warehouse is the reader's URL).
    "bi": ("all", "bi"),
    "all": ("all", "collector", "load", "transform", "plan", "privacy", "dags", "health", "stack", "bi"),
}
REFERENCE_PATH = "docs/reference/configuration.md"


def setting(env: str, default: Any, description: str, *, default_doc: str | None = None, **constraints: Any) -> Any:
    """A field read from the environment variable ``env``; ``default_doc`` where the default is computed."""
    return Field(
        default,
        validation_alias=env,
        description=description,
        json_schema_extra={"default_doc": default_doc} if default_doc else None,
        **constraints,
    )


_ENVIRON: ContextVar[Mapping[str, str]] = ContextVar("trackway_environ")


class _SnapshotEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, over the snapshot ``load_settings()`` took.

    A section validated later (lazily) still sees the environment as it was
    when the settings were loaded, not as it is now.
    """

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._snapshot = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k: v for k, v in self._snapshot.items() if v != ""}  # empty means unset, as before


class Section(BaseSettings):
    """One component's settings; validated on first use (``build_section``)."""

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, extra="ignore", frozen=True)
    component: ClassVar[str]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (_SnapshotEnvSource(settings_cls, _ENVIRON.get()),)


class CoreSection(Section):
    """Where the data is: read by every component."""

    component = "all"

    home: Path = setting(
        "TRACKWAY_HOME",
        Path(".trackway"),
        "Working folder: the raw store, warehouse, spool, dbt target and Airflow home of the embedded default",
        default_doc="./.trackway",
    )
    raw_url: str | None = setting(
        "TRACKWAY_RAW_URL",
        None,
        "Object store for raw events: `file:///path`, `s3://bucket/prefix` (`AWS_ENDPOINT_URL` for MinIO) "
        "or `gs://bucket/prefix`",
        default_doc="file://$TRACKWAY_HOME/raw",
    )
    raw_conn_id: str | None = setting(
        "TRACKWAY_RAW_CONN_ID",
        None,
        "Airflow connection the loader uses to read `s3://` or `gs://` (e.g. `AIRFLOW_CONN_TRACKWAY_RAW`)",
    )
    warehouse_url: SecretStr | None = setting(
        "TRACKWAY_WAREHOUSE_URL",
        None,
        "`duckdb:///path.duckdb`, `postgresql://user:pass@host:5432/db` or `bigquery://project/dataset-prefix`; "
        "shown with its password masked. On PostgreSQL the default of the three job URLs below, and the role "
        "`trackway warehouse grant` runs as",
        default_doc="duckdb://$TRACKWAY_HOME/warehouse.duckdb",
    )
    read_warehouse_url: SecretStr | None = setting(
        "TRACKWAY_READ_WAREHOUSE_URL",
        None,
        "PostgreSQL only: the same database as a read-only role, for `trackway query`, `trackway plan test`, "
        "status and BI (one role per job: docs/reference/warehouse-roles.md)",
        default_doc="TRACKWAY_WAREHOUSE_URL",
    )
    warehouse_conn_id: str | None = setting(
        "TRACKWAY_WAREHOUSE_CONN_ID",
        None,
        "BigQuery only: an Airflow `google_cloud_platform` connection with the credentials",
        default_doc="Application Default Credentials",
    )
    duckdb_lock_wait_seconds: float = setting(
        "TRACKWAY_DUCKDB_LOCK_WAIT_SECONDS",
        120.0,
        "DuckDB only: how long a load waits while another process (a load, a transform, a reader) holds the "
        "warehouse file, before it stops with 'warehouse busy' (exit code 75; Airflow retries the task)",
        ge=0.0,
        allow_inf_nan=False,
    )
    duckdb_memory_limit: str | None = setting(
        "TRACKWAY_DUCKDB_MEMORY_LIMIT",
        None,
        "DuckDB only: the most memory dbt and the loader may use (e.g. `4GiB`, `512MB`); beyond it they spill "
        "to `<warehouse file>.tmp` (under `$TRACKWAY_HOME` by default), so a `--full-refresh` or a large "
        "backfill fits the machine",
        default_doc="half of the machine's memory (its cgroup limit if lower)",
    )
    duckdb_read_wait_seconds: float = setting(
        "TRACKWAY_DUCKDB_READ_WAIT_SECONDS",
        60.0,
        "DuckDB only: how long a reader (`trackway query`, `trackway health`, status) waits and retries while a "
        "load or transform holds the warehouse file, before it stops with 'warehouse busy'. Longer than one "
        "micro-batch transform, so readers answer while micro-batches run",
        ge=0.0,
        allow_inf_nan=False,
    )
    pipeline_mode: Literal["hourly", "micro_batch"] = setting(
        "TRACKWAY_PIPELINE_MODE",
        "hourly",
        "`hourly`: events_load on the hour, then the whole transform. `micro_batch`: the collector uploads every "
        "`TRACKWAY_COLLECTOR_UPLOAD_SECONDS`, events_microbatch loads each new object as it lands and the "
        "transform builds analytics.events and analytics.sessions after it; the hourly load (with its sweep) and "
        "the whole transform still run on the hour (docs/operations.md)",
        default_doc="hourly; micro_batch under `trackway up` (make up)",
    )
    bigquery_location: str = setting("TRACKWAY_BIGQUERY_LOCATION", "US", "BigQuery only: the datasets' location")
    bigquery_api_endpoint: str | None = setting(
        "TRACKWAY_BIGQUERY_API_ENDPOINT", None, "BigQuery only: an API endpoint instead of Google's (emulators)"
    )

    @field_validator("duckdb_memory_limit")
    @classmethod
    def _memory_size(cls, value: str | None) -> str | None:
        from trackway.config.warehouse import memory_size_mib

        if value is not None:
            memory_size_mib(value, "TRACKWAY_DUCKDB_MEMORY_LIMIT")  # raises with the accepted forms
        return value

    @field_validator("raw_url")
    @classmethod
    def _raw_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlparse(value).scheme not in ("file", "s3", "gs"):
            raise ValueError(f"TRACKWAY_RAW_URL={value!r}: use file:///path, s3://bucket/prefix or gs://bucket/prefix")
        return value


class CollectorSection(Section):
    """What ``trackway collect`` reads: write keys, the spool, Segment's limits, back-pressure."""

    component = "collector"

    write_keys: SecretStr | None = setting(
        "TRACKWAY_WRITE_KEYS",
        None,
        "Write keys as `source:key,source:key`; the source id is stored with each event. "
        "A source may have several keys (rotation)",
        default_doc="demo:trackway-demo-key (loopback only: the collector refuses any other address with it)",
    )
    write_keys_file: Path | None = setting(
        "TRACKWAY_WRITE_KEYS_FILE",
        None,
        "A file of `source:key` lines (`#` comments), added to `TRACKWAY_WRITE_KEYS`; re-read on SIGHUP. "
        "Its contents are secret",
    )
    spool_dir: Path | None = setting(
        "TRACKWAY_SPOOL_DIR", None, "Collector spool (keep it on durable disk)", default_doc="$TRACKWAY_HOME/spool"
    )
    spool_max_bytes: int = setting(
        "TRACKWAY_SPOOL_MAX_BYTES", 64 * 1024 * 1024, "Size at which a spool segment is sealed for upload", ge=1
    )
    spool_max_age_seconds: int = setting(
        "TRACKWAY_SPOOL_MAX_AGE_SECONDS", 60, "Age at which a spool segment is sealed for upload", ge=1
    )
    collector_upload_seconds: int | None = setting(
        "TRACKWAY_COLLECTOR_UPLOAD_SECONDS",
        None,
        "A segment holding events is uploaded at least this often (sealed when it is this old), whatever "
        "`TRACKWAY_SPOOL_MAX_AGE_SECONDS` says: how much of the freshness budget the collector takes",
        default_doc="15 when TRACKWAY_PIPELINE_MODE=micro_batch, else TRACKWAY_SPOOL_MAX_AGE_SECONDS",
        ge=1,
    )
    max_body_bytes: int = setting(
        "TRACKWAY_MAX_BODY_BYTES",
        500 * 1024,
        "Largest request body accepted, before and after gunzip (413 above it; Segment's 500 KB)",
        ge=1,
    )
    collector_host: str = setting("TRACKWAY_COLLECTOR_HOST", "127.0.0.1", "Where `trackway collect` listens")
    collector_port: int = setting("TRACKWAY_COLLECTOR_PORT", 8080, "Port `trackway collect` listens on", ge=1, le=65535)
    collector_admin_host: str = setting(
        "TRACKWAY_COLLECTOR_ADMIN_HOST",
        "127.0.0.1",
        "Where the collector's admin listener (`/metrics`, the detailed `/health`) listens. It has no "
        "authentication and never follows `--host`: any address but a loopback one must be named here, "
        "and is then served with a warning",
    )
    collector_admin_port: int = setting(
        "TRACKWAY_COLLECTOR_ADMIN_PORT",
        8082,
        "Port of the collector's admin listener (`--admin-port`); must differ from the public port. 8082, because "
        "8080 is the collector's public port and 8081 Airflow's UI (`TRACKWAY_AIRFLOW_PORT`): `trackway up` runs "
        "all three",
        ge=1,
        le=65535,
    )
    trust_forwarded_for: bool = setting(
        "TRACKWAY_TRUST_FORWARDED_FOR",
        False,
        "Behind one proxy of your own: take `context.ip` from the last `X-Forwarded-For` hop it added "
        "(use TRACKWAY_TRUSTED_PROXIES for more hops)",
    )
    trusted_proxies: str = setting(
        "TRACKWAY_TRUSTED_PROXIES",
        "",
        "Comma list of proxy addresses or networks (10.0.0.0/8, 127.0.0.1): when the peer is one, `context.ip` "
        "is the rightmost `X-Forwarded-For` address that is not; a client cannot forge it",
    )
    collector_workers: int | None = setting(
        "TRACKWAY_COLLECTOR_WORKERS",
        None,
        "Collector worker processes (`trackway collect --workers N`)",
        default_doc="the number of CPUs",
        ge=1,
    )
    max_event_bytes: int = setting(
        "TRACKWAY_MAX_EVENT_BYTES",
        32 * 1024,
        "Segment's per-event limit (413 naming the limit; an oversized event in a batch is quarantined)",
        ge=1,
    )
    max_batch_events: int = setting("TRACKWAY_MAX_BATCH_EVENTS", 2500, "Segment's per-batch limit, in events", ge=1)
    rate_limit_events_per_second: float = setting(
        "TRACKWAY_RATE_LIMIT_EVENTS_PER_SECOND",
        0.0,
        "Events/s per write key and client address, in each worker (a request counts at least 1). Over it, "
        "429 with `Retry-After`, decided from the headers before the body is read. 0: off",
        ge=0.0,
        allow_inf_nan=False,
    )
    rate_limit_auth_failures_per_minute: int = setting(
        "TRACKWAY_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE",
        30,
        "Requests with a missing, malformed or unknown write key per client address per minute, in each "
        "worker; past it every request from that address gets 429 without its key being checked. 0: off",
        ge=0,
    )
    spool_max_pending_bytes: int = setting(
        "TRACKWAY_SPOOL_MAX_PENDING_BYTES",
        1024**3,
        "Spool bytes not yet uploaded, all workers together; above it 503 with `Retry-After` until uploads catch up",
        ge=1,
    )
    header_timeout_seconds: float = setting(
        "TRACKWAY_HEADER_TIMEOUT_SECONDS",
        10.0,
        "A connection is closed if a request's headers take longer",
        ge=0.1,
        allow_inf_nan=False,
    )
    body_timeout_seconds: float = setting(
        "TRACKWAY_BODY_TIMEOUT_SECONDS",
        30.0,
        "A connection is closed if a request's body takes longer",
        ge=0.1,
        allow_inf_nan=False,
    )
    keep_alive_seconds: float = setting(
        "TRACKWAY_KEEP_ALIVE_SECONDS",
        5.0,
        "An idle keep-alive connection is closed after this",
        ge=0.1,
        allow_inf_nan=False,
    )
    max_connections: int = setting(
        "TRACKWAY_MAX_CONNECTIONS", 10_000, "Open connections per worker; more are closed at once", ge=1
    )
    max_header_bytes: int = setting(
        "TRACKWAY_MAX_HEADER_BYTES",
        16 * 1024,
        "Largest request line plus headers; past it the collector answers 431 and closes the connection",
        ge=1024,
    )
    max_url_bytes: int = setting(
        "TRACKWAY_MAX_URL_BYTES",
        8 * 1024,
        "Longest request URL; past it the collector answers 414 and closes the connection",
        ge=256,
    )
    upload_backoff_initial_seconds: float = setting(
        "TRACKWAY_UPLOAD_BACKOFF_INITIAL_SECONDS",
        1.0,
        "Upload retries: first backoff (exponential with jitter)",
        ge=0.01,
        allow_inf_nan=False,
    )
    upload_backoff_max_seconds: float = setting(
        "TRACKWAY_UPLOAD_BACKOFF_MAX_SECONDS", 30.0, "Upload retries: longest backoff", ge=0.01, allow_inf_nan=False
    )
    log_format: str = setting(
        "TRACKWAY_LOG_FORMAT",
        "text",
        "`text`, or `json` (also `trackway collect --log-json`): one JSON object per log line",
    )

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value.lower() not in ("text", "json"):
            raise ValueError(f"TRACKWAY_LOG_FORMAT={value!r}: set it to text or json")
        return value.lower()


class LoadSection(Section):
    """What the hourly load reads."""

    component = "load"

    load_lookback_hours: int = setting(
        "TRACKWAY_LOAD_LOOKBACK_HOURS",
        1,
        "The hourly load also picks up late objects of this many earlier hours, never twice",
        ge=0,
    )
    load_sweep_days: int = setting(
        "TRACKWAY_LOAD_SWEEP_DAYS",
        7,
        "Every load also sweeps this many days of partitions for objects the ledger lacks (uploads late after "
        "an outage); an object older than that is reported and needs `trackway load --hour` (a backfill)",
        ge=1,
        le=366,
    )
    load_warehouse_url: SecretStr | None = setting(
        "TRACKWAY_LOAD_WAREHOUSE_URL",
        None,
        "PostgreSQL only: the same database as the loader's role, which writes schema `raw` and nothing else",
        default_doc="TRACKWAY_WAREHOUSE_URL",
    )
    sources_file: Path | None = setting(
        "TRACKWAY_SOURCES_FILE",
        None,
        "Extra raw sources (Firehose, Segment S3, other Trackway buckets; docs/loading.md) and product databases "
        "the app_sync DAG copies into schema `app` (`kind: database`; docs/app-data.md)",
        default_doc="$TRACKWAY_HOME/sources.yml when it exists",
    )


class TransformSection(Section):
    """What the dbt runs read (the CLI's `transform` and the events_transform DAG)."""

    component = "transform"

    dbt_project_dir: Path | None = setting(
        "TRACKWAY_DBT_PROJECT_DIR", None, "The dbt project", default_doc="include/dbt of the installed package"
    )
    transform_warehouse_url: SecretStr | None = setting(
        "TRACKWAY_TRANSFORM_WAREHOUSE_URL",
        None,
        "PostgreSQL only: the same database as dbt's role, which reads `raw` and owns the schemas it builds",
        default_doc="TRACKWAY_WAREHOUSE_URL",
    )
    dbt_executable: str | None = setting(
        "TRACKWAY_DBT_EXECUTABLE",
        None,
        "The dbt that runs the transform: `in-process` (DuckDB/PostgreSQL only, no process per task) or a path "
        "to a dbt run as a subprocess (`make dbt-venv` builds `.dbt-venv`, the one with dbt-bigquery)",
        default_doc="in-process on DuckDB/PostgreSQL; .dbt-venv/bin/dbt on BigQuery",
    )
    dbt_execution: Literal["per_model", "watcher"] | None = setting(
        "TRACKWAY_DBT_EXECUTION",
        None,
        "How events_transform runs dbt, one Airflow task per model either way: `per_model` starts a dbt per "
        "model task (`dbt build --select <model>`); `watcher` runs one `dbt build` of the whole project (Cosmos's "
        "watcher mode) that the model tasks watch, and a retried model task builds its model alone (adr/0040)",
        default_doc="watcher when dbt runs as a subprocess (BigQuery's .dbt-venv); per_model in-process",
    )
    report_path: Path | None = setting(
        "TRACKWAY_REPORT_PATH",
        None,
        "Opt-in: after each run, events_transform writes the HTML report (`trackway report`, docs/report.md) to "
        "this file, replaced whole; also the default of `trackway report --out`",
        default_doc="unset: no report after runs; `trackway report` writes ./report.html",
    )
    report_days: int = setting(
        "TRACKWAY_REPORT_DAYS",
        30,
        "Days the report covers, ending with the latest day that has events (`trackway report --days`)",
        ge=1,
        le=3660,
    )


class PlanSection(Section):
    """The tracking plan: read by the collector (enforcement), the transform (typed views) and `trackway plan`."""

    component = "plan"

    plan_dir: Path | None = setting(
        "TRACKWAY_PLAN_DIR",
        None,
        "The tracking plan folder (one YAML file per event). The demo uses its own plan when this is unset",
        default_doc="none (no validation)",
    )
    plan_modes: str | None = setting(
        "TRACKWAY_PLAN_MODES",
        None,
        "Per source: `web:block,backend:flag,*:allow`. `allow`: no validation; `flag`: violations are listed "
        "and counted; `block`: violating events go to the quarantine",
        default_doc="flag",
    )
    typed_schema: str = setting("TRACKWAY_TYPED_SCHEMA", "analytics_typed", "Schema of the typed per-event views")

    @field_validator("plan_dir")
    @classmethod
    def _plan_dir(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        resolved = value.expanduser().resolve()
        if not resolved.is_dir():
            raise ValueError(f"TRACKWAY_PLAN_DIR={str(value)!r} is not a folder; point it at a tracking plan folder")
        return resolved

    @field_validator("plan_modes")
    @classmethod
    def _plan_modes(cls, value: str | None) -> str | None:
        parse_plan_modes(value)
        return value

    @field_validator("typed_schema")
    @classmethod
    def _typed_schema(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
            raise ValueError(f"TRACKWAY_TYPED_SCHEMA={value!r}: use lower-case letters, digits and _")
        return value


class PrivacySection(Section):
    """Personal data: the pseudonymisation keyring and what the collector does before storing (docs/privacy.md)."""

    component = "privacy"

    pseudonym_keys: SecretStr | None = setting(
        "TRACKWAY_PSEUDONYM_KEYS",
        None,
        "The keyring for `hash` (HMAC-SHA256 pseudonyms `h1:<key id>:...`): a path to a keyring file, or the "
        "keyring document itself; `trackway privacy keys new` makes keys. Re-read on SIGHUP. Without it, values "
        "classified `hash` are dropped, never stored in clear",
        default_doc="none (hash means drop)",
    )
    ip_truncation: bool = setting(
        "TRACKWAY_IP_TRUNCATION",
        True,
        "`on`: `context.ip` (the request address the collector writes, or the client's) is truncated to /24 "
        "(IPv4) or /48 (IPv6) before it is stored; `off` keeps it whole. A plan's own action on `context.ip` wins",
        default_doc="on",
    )
    hash_user_id: str = setting(
        "TRACKWAY_HASH_USER_ID",
        "",
        "Sources whose `userId` (and an alias's `previousId`) is stored as a pseudonym: `backend,partner`, or `*` "
        "for every source",
    )
    sample: str = setting(
        "TRACKWAY_SAMPLE",
        "",
        "Sampling per source, `source:rate[:unit]` with unit `anonymous_id` (default), `session_id` or "
        "`user_id`: `web:0.1,backend:0.5:user_id`, `*:rate` for every other source. Deterministic per unit; a "
        "plan event's own `sample:` wins",
        default_doc="none (every event kept)",
    )

    @field_validator("hash_user_id")
    @classmethod
    def _hash_user_id(cls, value: str) -> str:
        parse_source_list(value, "TRACKWAY_HASH_USER_ID")
        return value

    @field_validator("sample")
    @classmethod
    def _sample(cls, value: str) -> str:
        parse_sample_spec(value)
        return value


class DagsSection(Section):
    """What every DAG shares: retries and the failure alert."""

    component = "dags"

    task_retries: int = setting(
        "TRACKWAY_TASK_RETRIES",
        2,
        "Retries of each DAG task before it fails and alerts; only transport and lock errors are retried, content "
        "and schema errors fail at once (trackway.orchestration.retries)",
        ge=0,
    )
    task_retry_delay_seconds: float = setting(
        "TRACKWAY_TASK_RETRY_DELAY_SECONDS",
        60.0,
        "Wait before a task's first retry; each further retry waits twice as long (exponential backoff)",
        ge=0,
    )
    alert_webhook_url: SecretStr | None = setting(
        "TRACKWAY_ALERT_WEBHOOK_URL",
        None,
        "A task that fails its last retry is POSTed here as JSON. Alerts are always appended to "
        "`$TRACKWAY_HOME/alerts.ndjson`. Secret: webhook URLs embed their token",
    )
    alert_slack_conn_id: str | None = setting(
        "TRACKWAY_ALERT_SLACK_CONN_ID",
        None,
        "Airflow connection (type `slackwebhook`: a Slack incoming webhook, its token as the connection's "
        "password) alerts are also posted to, through Airflow's Slack provider; the token stays in Airflow "
        "(docs/operations.md#alerts-from-the-dags)",
        default_doc="none",
    )
    alert_email: str | None = setting(
        "TRACKWAY_ALERT_EMAIL",
        None,
        "Comma list of addresses alerts are also emailed to, through Airflow's SMTP provider "
        "(its `smtp_default` connection)",
        default_doc="none",
    )
    alert_repeat_hours: float = setting(
        "TRACKWAY_ALERT_REPEAT_HOURS",
        6.0,
        "An alert with the same key (DAG and task and hour, or health check and subject) is sent again only "
        "after this many hours while it lasts; a check that clears sends the next occurrence at once",
        ge=0,
    )
    runbook_url: str = setting(
        "TRACKWAY_RUNBOOK_URL",
        "docs/runbook.md",
        "Where alerts link to for what to do: the runbook page of your published docs site",
    )

    dag_deadline_minutes: int = setting(
        "TRACKWAY_DAG_DEADLINE_MINUTES",
        45,
        "A DAG run not finished this many minutes after it was queued alerts (Airflow Deadline Alerts, sent by "
        "the scheduler even when no task runs). 0: off, as `dags test` needs until apache/airflow#73428 is fixed",
        ge=0,
    )
    airflow_api_url: str | None = setting(
        "TRACKWAY_AIRFLOW_API_URL",
        None,
        "Airflow's API server (e.g. http://127.0.0.1:8080): `trackway backfill` creates an Airflow backfill there "
        "when its scheduler is healthy, and loads directly otherwise",
        default_doc="none (backfills load directly)",
    )
    airflow_username: str | None = setting(
        "TRACKWAY_AIRFLOW_USERNAME", None, "The Airflow user `trackway backfill` signs in as (POST /auth/token)"
    )
    airflow_password: SecretStr | None = setting(
        "TRACKWAY_AIRFLOW_PASSWORD", None, "That user's password (secret: never printed)"
    )

    @field_validator("alert_webhook_url")
    @classmethod
    def _webhook(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and urlparse(value.get_secret_value()).scheme not in ("http", "https"):
            raise ValueError(
                "TRACKWAY_ALERT_WEBHOOK_URL is not an http(s) URL; write e.g. https://hooks.example.com/trackway"
            )
        return value

    @field_validator("alert_slack_conn_id")
    @classmethod
    def _slack_conn_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w.-]{1,250}", value):
            raise ValueError(
                "TRACKWAY_ALERT_SLACK_CONN_ID is not an Airflow connection id (letters, digits, _ . -); "
                "write e.g. trackway_slack"
            )
        return value or None


class ErasureSection(Section):
    """Erasure requests (docs/privacy.md): the ledger's key, deadlines, the collector's suppression, the API."""

    component = "privacy"

    privacy_ledger_key: SecretStr | None = setting(
        "TRACKWAY_PRIVACY_LEDGER_KEY",
        None,
        "HMAC-SHA256 key of the erasure ledger: subjects are stored only as keyed hashes. At least 32 characters "
        "(`python -c 'import secrets; print(secrets.token_hex(32))'`); the collector, the loader and "
        "`trackway privacy` need the same key. Losing it makes the ledger unusable: keep it with your backups",
        default_doc="generated into $TRACKWAY_HOME/privacy/ledger.key on the embedded default; required elsewhere",
    )
    privacy_due_days: int = setting(
        "TRACKWAY_PRIVACY_DUE_DAYS", 30, "Days from an erasure request's receipt to its deadline (GDPR: a month)", ge=1
    )
    privacy_poll_seconds: float = setting(
        "TRACKWAY_PRIVACY_POLL_SECONDS",
        30.0,
        "How often the collector re-reads the published suppression set (`<raw store>/_privacy/subjects.json`)",
        ge=0.1,
        le=60.0,
        allow_inf_nan=False,
    )
    privacy_raw_conn_id: str | None = setting(
        "TRACKWAY_PRIVACY_RAW_CONN_ID",
        None,
        "Airflow connection the `privacy` DAG rewrites and deletes raw objects with (`s3://`: an `aws` connection, "
        "`gs://`: a `google_cloud_platform` one): an object-store user of its own that may write and delete only "
        "under the raw prefix, where the loader's may only read (ops/minio/)",
        default_doc="the task's own credentials (AWS_*, Application Default Credentials)",
    )
    retention_default: str = setting(
        "TRACKWAY_RETENTION_DEFAULT",
        "90:sanitize",
        "Retention of events no rule names (the plan's events, plan.yaml and the sources file name theirs): "
        "DAYS:sanitize, DAYS:delete or keep (docs/privacy.md#retention)",
    )
    privacy_api_token: SecretStr | None = setting(
        "TRACKWAY_PRIVACY_API_TOKEN",
        None,
        "Bearer token of the regulations API (`POST /v1/regulations`) on the admin listener; distinct from write "
        "keys. Unset: the API answers 503",
    )

    @field_validator("retention_default")
    @classmethod
    def _retention_default(cls, value: str) -> str:
        from trackway.config.retention import parse_default

        parse_default(value)  # a ValueError names the variable and the fix
        return value

    @field_validator("privacy_ledger_key")
    @classmethod
    def _ledger_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < 32:
            raise ValueError(
                "TRACKWAY_PRIVACY_LEDGER_KEY is shorter than 32 characters; generate one with "
                "python -c 'import secrets; print(secrets.token_hex(32))'"
            )
        return value


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_thresholds(name: str, value: str) -> tuple[float, float]:
    """``"15m,1h"`` -> (900.0, 3600.0): the warn and fail limits of a health check, warn first."""
    parts = [p.strip() for p in value.split(",")]
    matches = [_DURATION.fullmatch(p) for p in parts]
    if len(parts) != 2 or not all(matches):
        raise ValueError(f"{name}={value!r}: write WARN,FAIL durations such as 15m,1h (s, m, h or d)")
    warn, fail = (float(m[1]) * _SECONDS[m[2]] for m in matches if m is not None)
    if not 0 < warn <= fail:
        raise ValueError(f"{name}={value!r}: the warn limit must be above 0 and at most the fail limit")
    return warn, fail


def parse_shares(name: str, value: str) -> tuple[float, float]:
    """``"0.01,0.05"`` -> (0.01, 0.05): the warn and fail shares of a health check, warn first."""
    try:
        warn, fail = (float(p) for p in value.split(","))
    except ValueError:
        raise ValueError(f"{name}={value!r}: write WARN,FAIL shares between 0 and 1 such as 0.01,0.05") from None
    if not 0 <= warn <= fail <= 1:
        raise ValueError(f"{name}={value!r}: the shares must be between 0 and 1, the warn share at most the fail one")
    return warn, fail


class HealthSection(Section):
    """`trackway health` and the pipeline_health DAG: thresholds of the checks (docs/runbook.md)."""

    component = "health"

    health_upload_lag: str = setting(
        "TRACKWAY_HEALTH_UPLOAD_LAG",
        "15m,1h",
        "Warn,fail age of the oldest spool segment not yet in the object store (the collector's upload lag)",
    )
    health_load_age: str = setting(
        "TRACKWAY_HEALTH_LOAD_AGE",
        "2h,3h",
        "Warn,fail time since the last load run finished (hourly loads: a stopped scheduler shows here)",
    )
    health_data_age: str = setting(
        "TRACKWAY_HEALTH_DATA_AGE",
        "3h,6h",
        "Warn,fail age of the newest receivedAt loaded into raw.events_raw",
    )
    health_transform_age: str = setting(
        "TRACKWAY_HEALTH_TRANSFORM_AGE",
        "2h,3h",
        "Warn,fail time since dbt last built a model successfully (recorded in the warehouse by every dbt run)",
    )
    health_baseline_weeks: int = setting(
        "TRACKWAY_HEALTH_BASELINE_WEEKS",
        4,
        "Volume checks compare an hour with the same hour on this many earlier weeks (median and MAD); with "
        "less history, with the same hour on the trailing TRACKWAY_HEALTH_TRAILING_DAYS days",
        ge=2,
        le=26,
    )
    health_trailing_days: int = setting(
        "TRACKWAY_HEALTH_TRAILING_DAYS", 7, "Days of history a volume baseline uses before there are enough weeks", ge=2
    )
    health_volume_sigmas: float = setting(
        "TRACKWAY_HEALTH_VOLUME_SIGMAS",
        4.0,
        "A source's hourly volume is anomalous this many robust standard deviations (1.4826 x MAD) from its baseline",
        gt=0,
    )
    health_volume_min_change: float = setting(
        "TRACKWAY_HEALTH_VOLUME_MIN_CHANGE",
        0.5,
        "...and by at least this share of the baseline median (0.5: half), so a flat history does not alert on noise",
        gt=0,
    )
    health_event_min_hourly: int = setting(
        "TRACKWAY_HEALTH_EVENT_MIN_HOURLY",
        10,
        "An event is watched for stopping or dropping once its baseline median reaches this many per hour",
        ge=1,
    )
    health_event_drop_fraction: float = setting(
        "TRACKWAY_HEALTH_EVENT_DROP_FRACTION",
        0.5,
        "An event has dropped when it stays under this share of its baseline for TRACKWAY_HEALTH_EVENT_HOURS hours",
        gt=0,
        lt=1,
    )
    health_event_hours: int = setting(
        "TRACKWAY_HEALTH_EVENT_HOURS",
        2,
        "Complete hours an event must stay stopped or dropped before the check fires",
        ge=1,
        le=48,
    )
    health_spike_factor: float = setting(
        "TRACKWAY_HEALTH_SPIKE_FACTOR",
        3.0,
        "Quarantine or violations in the last hour spike at this multiple of their baseline median...",
        gt=1,
    )
    health_spike_min_count: int = setting(
        "TRACKWAY_HEALTH_SPIKE_MIN_COUNT", 20, "...and at least this many in the hour", ge=1
    )
    health_damaged_hours: int = setting(
        "TRACKWAY_HEALTH_DAMAGED_HOURS",
        24,
        "Damaged raw objects loaded within this many hours fail the objects check",
        ge=1,
    )
    health_erasure_due_days: int = setting(
        "TRACKWAY_HEALTH_ERASURE_DUE_DAYS",
        7,
        "An erasure request not finished this many days before its due_at warns (past it, it fails); the privacy "
        "DAG's alert_due_requests alerts from the same day",
        ge=0,
        le=365,
    )
    health_collector_metrics_url: str | None = setting(
        "TRACKWAY_HEALTH_COLLECTOR_METRICS_URL",
        None,
        "The collector's /metrics (its admin listener) when its spool is on another machine: upload lag and "
        "set-aside segments are read from there",
        default_doc="none (the local spool, TRACKWAY_SPOOL_DIR)",
    )

    @field_validator("health_collector_metrics_url")
    @classmethod
    def _metrics_url(cls, value: str | None) -> str | None:
        if value is not None and urlparse(value).scheme not in ("http", "https"):
            raise ValueError(
                "TRACKWAY_HEALTH_COLLECTOR_METRICS_URL is not an http(s) URL; write e.g. http://collector:8082/metrics"
            )
        return value

    health_app_refs: str = setting(
        "TRACKWAY_HEALTH_APP_REFS",
        "0.01,0.05",
        "Warn,fail share of an analytics_x reference's values (events of the last two UTC days) that find no "
        "application row in schema app: a renamed id, a sync that stopped (docs/app-data.md)",
    )

    @field_validator("health_app_refs")
    @classmethod
    def _shares(cls, value: str, info: Any) -> str:
        parse_shares(cls.model_fields[info.field_name].validation_alias, value)  # type: ignore[arg-type]
        return value

    @field_validator("health_upload_lag", "health_load_age", "health_data_age", "health_transform_age")
    @classmethod
    def _thresholds(cls, value: str, info: Any) -> str:
        parse_thresholds(cls.model_fields[info.field_name].validation_alias, value)  # type: ignore[arg-type]
        return value


class StackSection(Section):
    """`trackway up` (make up): the collector and Airflow's processes on one machine, under one supervisor."""

    component = "stack"

    airflow_port: int = setting(
        "TRACKWAY_AIRFLOW_PORT",
        8081,
        "Port of the Airflow API server and UI that `trackway up` starts (the collector has 8080, its admin listener "
        "8082); the tasks' "
        "execution API URL follows it. An `AIRFLOW__API__PORT` you set wins",
        ge=1,
        le=65535,
    )
    stack_stop_seconds: float = setting(
        "TRACKWAY_STACK_STOP_SECONDS",
        90.0,
        "How long `trackway up` waits, on Ctrl-C, SIGTERM or `trackway down`, for its processes to stop "
        "(the collector uploads its spool, the scheduler lets running tasks finish) before it kills them",
        gt=0,
        allow_inf_nan=False,
    )


class MetabaseSection(Section):
    """Metabase (docker-compose.yaml, --profile metabase): `trackway bi metabase-setup` completes its first-run
    setup with this admin, adds the warehouse as the read-only role and pushes the dbt models' docs."""

    component = "bi"

    metabase_url: str = setting(
        "TRACKWAY_METABASE_URL",
        "http://127.0.0.1:3000",
        "Metabase's address, as `trackway bi metabase-setup` reaches it (compose: http://metabase:3000)",
    )
    metabase_admin_email: str | None = setting(
        "TRACKWAY_METABASE_ADMIN_EMAIL",
        None,
        "The Metabase admin's email (its login), made by `trackway bi metabase-setup` when it completes Metabase's "
        "first-run setup; required by that command",
        default_doc="none (required by `trackway bi metabase-setup`)",
    )
    metabase_admin_password: SecretStr | None = setting(
        "TRACKWAY_METABASE_ADMIN_PASSWORD",
        None,
        "That admin's password (secret: never printed); required by `trackway bi metabase-setup`",
        default_doc="none (required by `trackway bi metabase-setup`)",
    )
    metabase_database: str = setting(
        "TRACKWAY_METABASE_DATABASE",
        "Trackway",
        "The name of the warehouse connection in Metabase, which `trackway bi metabase-setup` adds (as the "
        "read-only role) and pushes the dbt models' descriptions to",
        min_length=1,
    )

    @field_validator("metabase_url")
    @classmethod
    def _metabase_url(cls, value: str) -> str:
        if urlparse(value).scheme not in ("http", "https") or not urlparse(value).hostname:
            raise ValueError("TRACKWAY_METABASE_URL is not an http(s) URL; write e.g. http://metabase:3000")
        return value.rstrip("/")


SECTIONS: tuple[type[Section], ...] = (
    CoreSection,
    CollectorSection,
    LoadSection,
    TransformSection,
    PlanSection,
    PrivacySection,
    DagsSection,
    ErasureSection,
    HealthSection,
    StackSection,
    MetabaseSection,
)


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


SAMPLE_UNITS = ("anonymous_id", "session_id", "user_id")


def parse_source_list(spec: str | None, what: str) -> frozenset[str]:
    """``backend,partner`` (``*`` for every source) as a set of source names."""
    sources = frozenset(item.strip() for item in (spec or "").split(",") if item.strip())
    for name in sources:
        if name != "*" and not name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"{what} entry {name[:40]!r} is not a source name; write e.g. {what}=backend,partner")
    return sources


def parse_sample_spec(spec: str | None) -> dict[str, tuple[float, str]]:
    """``web:0.1,backend:0.5:user_id`` as {source: (rate, unit)}; ``*`` is every other source."""
    out: dict[str, tuple[float, str]] = {}
    for entry in (spec or "").split(","):
        item = entry.strip()
        if not item:
            continue
        source, _, rest = item.partition(":")
        rate_text, _, unit = rest.partition(":")
        unit = unit.strip() or "anonymous_id"
        try:
            rate = float(rate_text)
        except ValueError:
            rate = -1.0
        if not source.strip() or not 0 <= rate <= 1 or unit not in SAMPLE_UNITS:
            raise ConfigError(
                f"TRACKWAY_SAMPLE entry {item[:60]!r}: write source:rate[:unit] with a rate from 0 to 1 and unit "
                f"{', '.join(SAMPLE_UNITS)}; e.g. TRACKWAY_SAMPLE=web:0.1,backend:0.5:user_id"
            )
        out[source.strip()] = (rate, unit)
    return out


@dataclass(frozen=True)
class Setting:
    """One row of the registry, as `config check` and the docs show it."""

    name: str
    type: str
    default: str
    secret: bool
    component: str
    description: str
    internal: bool = False  # set by Trackway for its own processes (dbt's profile, collector workers): never by you
    section: builtins.type[Section] | None = None
    field: str | None = None


def _type_name(annotation: Any) -> tuple[str, bool]:
    """``("integer", False)`` from ``int``; ``("secret string", True)`` from ``SecretStr | None``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = args[0]
    names = {int: "integer", float: "number", bool: "boolean", Path: "path", str: "string", SecretStr: "secret"}
    return names.get(annotation, str(annotation)), annotation is SecretStr


def _default_text(info: FieldInfo) -> str:
    extra = info.json_schema_extra
    if isinstance(extra, dict) and extra.get("default_doc"):
        return str(extra["default_doc"])
    if info.default is None:
        return "none"
    if isinstance(info.default, bool):
        return str(info.default).lower()
    return str(info.default)


def _registered() -> Iterator[Setting]:
    for section in SECTIONS:
        for name, info in section.model_fields.items():
            type_name, secret = _type_name(info.annotation)
            yield Setting(
                name=str(info.validation_alias),
                type=type_name,
                default=_default_text(info),
                secret=secret,
                component=section.component,
                description=info.description or "",
                section=section,
                field=name,
            )


_DBT_PROFILE = (
    "Set by Trackway for dbt's profiles.yml, derived from TRACKWAY_TRANSFORM_WAREHOUSE_URL "
    "(default TRACKWAY_WAREHOUSE_URL); do not set it"
)
INTERNAL: tuple[Setting, ...] = (
    Setting(
        "TRACKWAY_DBT_TARGET", "string", "none", False, "transform", _DBT_PROFILE + " (the profile's target)", True
    ),
    Setting("TRACKWAY_DUCKDB_PATH", "path", "none", False, "transform", _DBT_PROFILE, True),
    Setting("TRACKWAY_DBT_DUCKDB_MEMORY_LIMIT", "string", "none", False, "transform", _DBT_PROFILE, True),
    Setting("TRACKWAY_PG_HOST", "string", "none", False, "transform", _DBT_PROFILE, True),
    Setting("TRACKWAY_PG_PORT", "integer", "none", False, "transform", _DBT_PROFILE, True),
    Setting("TRACKWAY_PG_USER", "string", "none", False, "transform", _DBT_PROFILE, True),
    Setting("TRACKWAY_PG_PASSWORD", "secret", "none", True, "transform", _DBT_PROFILE, True),
    Setting("TRACKWAY_PG_DATABASE", "string", "none", False, "transform", _DBT_PROFILE, True),
    Setting("TRACKWAY_BQ_PROJECT", "string", "none", False, "transform", _DBT_PROFILE, True),
    Setting("TRACKWAY_BQ_DATASET_PREFIX", "string", "none", False, "transform", _DBT_PROFILE, True),
    Setting("TRACKWAY_BQ_LOCATION", "string", "none", False, "transform", _DBT_PROFILE, True),
    Setting("TRACKWAY_BQ_API_ENDPOINT", "string", "none", False, "transform", _DBT_PROFILE, True),
    Setting(
        "TRACKWAY_DBT_METRICS",
        "string",
        "none",
        False,
        "transform",
        "Set by Trackway for dbt's var('metrics'): the plan folder's metrics.yaml (funnels, experiment goals) "
        "as JSON; do not set it",
        True,
    ),
    *(
        Setting(name, "secret", "none (required)", True, "compose", f"docker-compose.yaml only: {what}")
        for name, what in (
            ("TRACKWAY_DB_PASSWORD", "the PostgreSQL superuser `trackway`: warehouse-init's, no job's"),
            ("TRACKWAY_LOADER_DB_PASSWORD", "role `trackway_loader`, the loader's (writes `raw`)"),
            ("TRACKWAY_TRANSFORM_DB_PASSWORD", "role `trackway_transform`, dbt's (writes `analytics`)"),
            ("TRACKWAY_READER_DB_PASSWORD", "role `trackway_reader` (reads only: `trackway query`, BI tools)"),
        )
    ),
    Setting(
        "TRACKWAY_BIND",
        "string",
        "127.0.0.1",
        False,
        "compose",
        "docker-compose.yaml only: the host address Airflow, PostgreSQL, MinIO and Prometheus are published on",
    ),
    Setting(
        "TRACKWAY_PSEUDONYM_KEYS_FILE",
        "path",
        "none (required)",
        False,
        "compose",
        "docker-compose.yaml only: the keyring file on the host, mounted into the collector as a secret "
        "(`TRACKWAY_PSEUDONYM_KEYS=/run/secrets/trackway-pseudonym-keys` there)",
    ),
    Setting(
        "TRACKWAY_COLLECTOR_BIND",
        "string",
        "127.0.0.1",
        False,
        "compose",
        "docker-compose.yaml only: the host address of the collector's tracking port; open it (0.0.0.0) only for "
        "a TLS proxy on another host",
    ),
)

SETTINGS: tuple[Setting, ...] = (*_registered(), *INTERNAL)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def default(name: str) -> Any:
    """The registry's default of ``name`` (a static default; ``None`` where it is computed)."""
    entry = BY_NAME[name]
    assert entry.section is not None and entry.field is not None, f"{name} has no default of its own"
    return entry.section.model_fields[entry.field].default


S = TypeVar("S", bound=Section)


@contextmanager
def _environ(environ: Mapping[str, str]) -> Iterator[None]:
    token = _ENVIRON.set(environ)
    try:
        yield
    finally:
        _ENVIRON.reset(token)


def build_section(cls: type[S], environ: Mapping[str, str]) -> S:
    """Validate one section against ``environ``; a ConfigError that names each bad variable and what to set."""
    try:
        with _environ(environ):
            return cls()
    except ValidationError as exc:
        problems = describe_errors(cls, exc)
        raise ConfigError("; ".join(problems), problems) from None


def describe_errors(cls: type[Section], exc: ValidationError) -> list[str]:
    """pydantic's errors in Trackway's words: the variable, its value (never a secret's), what to set."""
    by_env = {str(info.validation_alias): info for info in cls.model_fields.values()}
    messages = []
    for error in exc.errors(include_url=False):
        env = str(error["loc"][0]) if error["loc"] else "?"
        info = by_env.get(env)
        secret = bool(info and _type_name(info.annotation)[1])
        shown = f"{env}=(hidden)" if secret else f"{env}={error.get('input')!r}"
        example = _default_text(info) if info else ""
        kind, ctx = error["type"], error.get("ctx") or {}
        if kind == "value_error":
            messages.append(str(ctx.get("error", error["msg"])))
        elif kind in ("int_parsing", "int_from_float", "int_type"):
            messages.append(f"{shown} is not a whole number; set it to e.g. {example}")
        elif kind in ("float_parsing", "float_type", "finite_number"):
            messages.append(f"{shown} is not a number; set it to e.g. {example}")
        elif kind in ("bool_parsing", "bool_type"):
            messages.append(f"{shown} is not true or false; set it to true or false (default {example})")
        elif kind in ("greater_than_equal", "greater_than"):
            messages.append(f"{shown} must be at least {ctx.get('ge', ctx.get('gt'))}; set it to e.g. {example}")
        elif kind in ("less_than_equal", "less_than"):
            messages.append(f"{shown} must be at most {ctx.get('le', ctx.get('lt'))}; set it to e.g. {example}")
        else:
            detail = "" if secret else f": {error['msg']}"
            messages.append(f"{shown} is not valid{detail}; see {REFERENCE_PATH}")
    return messages
