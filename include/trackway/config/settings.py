"""``load_settings()``: the registry's sections, each validated when a component first reads it.

The environment is read once, when the settings are loaded (not at import),
so tests and the CLI can change it; a section validated later still sees that
snapshot. A malformed setting raises ConfigError where it is read: a bad
collector limit stops the collector, not the DAG files that never read it.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TypeVar

from pydantic import SecretStr

from trackway.config.errors import ConfigError
from trackway.config.redact import redact_url
from trackway.config.registry import (
    BY_NAME,
    READS,
    SECTIONS,
    CollectorSection,
    CoreSection,
    DagsSection,
    ErasureSection,
    LoadSection,
    PlanSection,
    PrivacySection,
    Section,
    TransformSection,
    build_section,
    parse_plan_modes,
    parse_sample_spec,
    parse_source_list,
)
from trackway.config.retention import Retention, parse_default
from trackway.config.sources import AppDatabase, Source, parse_app_databases, parse_sources
from trackway.config.warehouse import WarehouseTarget
from trackway.config.write_keys import load_write_keys

log = logging.getLogger("trackway.config")
#: The collector's upload interval in micro-batch mode unless TRACKWAY_COLLECTOR_UPLOAD_SECONDS says otherwise.
MICRO_BATCH_UPLOAD_SECONDS = 15
S = TypeVar("S", bound=Section)
_warned: set[str] = set()


@dataclass(frozen=True)
class CollectorLimits:
    """The collector's server, limit and back-pressure settings (defaults: the registry, Segment's limits)."""

    workers: int
    max_event_bytes: int
    max_batch_events: int
    rate_limit_events_per_second: float  # per write key and client address, each worker; 0 = off
    rate_limit_auth_failures_per_minute: int  # per client address, each worker; 0 = off
    spool_max_pending_bytes: int  # bytes not yet uploaded, all workers together
    header_timeout_seconds: float
    body_timeout_seconds: float
    keep_alive_seconds: float
    max_connections: int  # per worker
    max_header_bytes: int
    max_url_bytes: int
    upload_backoff_initial_seconds: float
    upload_backoff_max_seconds: float
    log_json: bool


def snapshot_environ() -> dict[str, str]:
    """The ``TRACKWAY_*`` variables now."""
    return {k: v for k, v in os.environ.items() if k.startswith("TRACKWAY_")}


def unknown_variables(environ: dict[str, str]) -> list[tuple[str, str | None]]:
    """``TRACKWAY_*`` names no setting has, each with the closest known name (a typo) or None."""
    known = list(BY_NAME)
    return [
        (name, next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.8)), None))
        for name in sorted(environ)
        if name not in BY_NAME
    ]


def unknown_variable_message(name: str, suggestion: str | None) -> str:
    hint = f"did you mean {suggestion}?" if suggestion else "`trackway config check` lists the settings"
    return f"{name} is not a Trackway setting and is ignored; {hint}"


class Settings:
    """Every setting, by attribute; each section is validated on first access (ConfigError if malformed)."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.environ = environ  # the TRACKWAY_* snapshot
        self._sections: dict[type[Section], Section] = {}

    def section(self, cls: type[S]) -> S:
        if cls not in self._sections:
            self._sections[cls] = build_section(cls, self.environ)
        return self._sections[cls]  # type: ignore[return-value]

    def check(self, *components: str) -> Settings:
        """Validate now what ``components`` read (default: everything); ConfigError with every problem."""
        problems = self.problems(*components)
        if problems:
            raise ConfigError("; ".join(problems))
        return self

    def problems(self, *components: str) -> list[str]:
        """What is wrong in what ``components`` read (default: everything), one message per problem."""
        names = {c for component in components or ("all",) for c in READS[component]}
        problems: list[str] = []
        failed: set[str] = set()
        for cls in SECTIONS:
            if cls.component in names:
                try:
                    self.section(cls)
                except ConfigError as exc:
                    problems.extend(exc.problems)
                    failed.add(cls.component)
        derived = {  # checks beyond one variable's value: parsing, files
            "all": lambda: (self.warehouse, self.read_warehouse),
            "collector": lambda: (self.write_keys, self.collector, self.trusted_proxies),
            "load": lambda: (self.sources(), self.app_databases(), self.load_warehouse),
            "transform": lambda: self.transform_warehouse,
        }
        for name, read in derived.items():
            if name in names and not failed & {name, "all"}:
                try:
                    read()
                except ConfigError as exc:
                    problems.append(str(exc))
        return problems

    def __repr__(self) -> str:
        """No secret and no validation: only where the data is, the warehouse URL with its password masked."""
        url = self.environ.get("TRACKWAY_WAREHOUSE_URL")
        return f"Settings(home={str(self._home_path())!r}, warehouse={redact_url(url) if url else 'default'!r})"

    __str__ = __repr__

    # -- all components -------------------------------------------------------

    def _home_path(self) -> Path:
        return Path(self.environ.get("TRACKWAY_HOME") or ".trackway").expanduser().resolve()

    @property
    def home(self) -> Path:
        return self.section(CoreSection).home.expanduser().resolve()

    @property
    def raw_url(self) -> str:
        return self.section(CoreSection).raw_url or (self.home / "raw").as_uri()

    @property
    def raw_conn_id(self) -> str | None:
        return self.section(CoreSection).raw_conn_id

    @cached_property
    def warehouse(self) -> WarehouseTarget:
        core = self.section(CoreSection)
        url = core.warehouse_url or "duckdb://" + str(self.home / "warehouse.duckdb")
        return WarehouseTarget.parse(
            url,
            location=core.bigquery_location,
            conn_id=core.warehouse_conn_id,
            api_endpoint=core.bigquery_api_endpoint,
            duckdb_lock_wait_seconds=core.duckdb_lock_wait_seconds,
            duckdb_read_wait_seconds=core.duckdb_read_wait_seconds,
            duckdb_memory_limit=core.duckdb_memory_limit,
        )

    def _job_warehouse(self, env: str, url: SecretStr | None) -> WarehouseTarget:
        """One job's warehouse: its own URL (another role on the same PostgreSQL database), else the main one."""
        main = self.warehouse
        if url is None:
            return main
        target = WarehouseTarget.parse(url, env=env)
        if target.kind != "postgres" or main.kind != "postgres":
            raise ConfigError(
                f"{env} is for PostgreSQL (one role per job); with a {main.kind} TRACKWAY_WAREHOUSE_URL, unset it"
            )
        if (target.host, target.port, target.database) != (main.host, main.port, main.database):
            raise ConfigError(
                f"{env}={target.display_url!r} must name the database of TRACKWAY_WAREHOUSE_URL "
                f"({main.display_url!r}) with another role; see docs/reference/warehouse-roles.md"
            )
        return target

    @cached_property
    def read_warehouse(self) -> WarehouseTarget:
        """People's SQL and Trackway's reports (query, plan test and docs, status): the read-only role."""
        return self._job_warehouse("TRACKWAY_READ_WAREHOUSE_URL", self.section(CoreSection).read_warehouse_url)

    @cached_property
    def load_warehouse(self) -> WarehouseTarget:
        """The loader's role: writes schema raw (its tables and ledger)."""
        return self._job_warehouse("TRACKWAY_LOAD_WAREHOUSE_URL", self.section(LoadSection).load_warehouse_url)

    @cached_property
    def transform_warehouse(self) -> WarehouseTarget:
        """dbt's role: reads raw, owns the schemas it builds."""
        return self._job_warehouse(
            "TRACKWAY_TRANSFORM_WAREHOUSE_URL", self.section(TransformSection).transform_warehouse_url
        )

    @property
    def events_url(self) -> str:
        return self.raw_url.rstrip("/") + "/events"

    @property
    def quarantine_url(self) -> str:
        return self.raw_url.rstrip("/") + "/quarantine"

    # -- collector ------------------------------------------------------------

    @cached_property
    def _write_keys(self) -> tuple[dict[str, str], bool]:
        self.section(CollectorSection)
        return load_write_keys(self.environ)

    @property
    def write_keys(self) -> dict[str, str]:
        return self._write_keys[0]

    @property
    def write_keys_are_demo(self) -> bool:
        return self._write_keys[1]

    @property
    def spool_dir(self) -> Path:
        return (self.section(CollectorSection).spool_dir or self.home / "spool").expanduser().resolve()

    @property
    def spool_max_bytes(self) -> int:
        return self.section(CollectorSection).spool_max_bytes

    @property
    def spool_max_age_seconds(self) -> int:
        return self.section(CollectorSection).spool_max_age_seconds

    @property
    def pipeline_mode(self) -> str:
        """``hourly`` or ``micro_batch`` (adr/0033-micro-batch-freshness.md)."""
        return self.section(CoreSection).pipeline_mode

    @property
    def micro_batch(self) -> bool:
        return self.pipeline_mode == "micro_batch"

    @property
    def collector_upload_seconds(self) -> int:
        """Age at which the collector seals a segment for upload: the smaller of the two settings."""
        upload = self.section(CollectorSection).collector_upload_seconds
        if upload is None:
            upload = MICRO_BATCH_UPLOAD_SECONDS if self.micro_batch else self.spool_max_age_seconds
        return min(upload, self.spool_max_age_seconds)

    @property
    def max_body_bytes(self) -> int:
        return self.section(CollectorSection).max_body_bytes

    @property
    def collector_host(self) -> str:
        return self.section(CollectorSection).collector_host

    @property
    def collector_port(self) -> int:
        return self.section(CollectorSection).collector_port

    @property
    def collector_admin_host(self) -> str:
        return self.section(CollectorSection).collector_admin_host

    @property
    def collector_admin_host_is_explicit(self) -> bool:
        """Whether TRACKWAY_COLLECTOR_ADMIN_HOST was set (only then may the admin listener leave loopback)."""
        return "collector_admin_host" in self.section(CollectorSection).model_fields_set

    @property
    def collector_admin_port(self) -> int:
        return self.section(CollectorSection).collector_admin_port

    @property
    def trust_forwarded_for(self) -> bool:
        return self.section(CollectorSection).trust_forwarded_for

    @property
    def trusted_proxies(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """TRACKWAY_TRUSTED_PROXIES as networks; ConfigError names a malformed entry."""
        networks = []
        for item in self.section(CollectorSection).trusted_proxies.split(","):
            if item.strip():
                try:
                    networks.append(ipaddress.ip_network(item.strip(), strict=False))
                except ValueError:
                    raise ConfigError(
                        f"TRACKWAY_TRUSTED_PROXIES entry {item.strip()!r} is not an IP address or network; "
                        "write e.g. 10.0.0.0/8,127.0.0.1"
                    ) from None
        return tuple(networks)

    @cached_property
    def collector(self) -> CollectorLimits:
        c = self.section(CollectorSection)
        return CollectorLimits(
            workers=c.collector_workers or max(1, os.cpu_count() or 1),
            max_event_bytes=c.max_event_bytes,
            max_batch_events=c.max_batch_events,
            rate_limit_events_per_second=c.rate_limit_events_per_second,
            rate_limit_auth_failures_per_minute=c.rate_limit_auth_failures_per_minute,
            spool_max_pending_bytes=c.spool_max_pending_bytes,
            header_timeout_seconds=c.header_timeout_seconds,
            body_timeout_seconds=c.body_timeout_seconds,
            keep_alive_seconds=c.keep_alive_seconds,
            max_connections=c.max_connections,
            max_header_bytes=c.max_header_bytes,
            max_url_bytes=c.max_url_bytes,
            upload_backoff_initial_seconds=c.upload_backoff_initial_seconds,
            upload_backoff_max_seconds=c.upload_backoff_max_seconds,
            log_json=c.log_format == "json",
        )

    # -- load -----------------------------------------------------------------

    @property
    def load_lookback_hours(self) -> int:
        return self.section(LoadSection).load_lookback_hours

    @property
    def load_sweep_days(self) -> int:
        return self.section(LoadSection).load_sweep_days

    @property
    def late_url(self) -> str:
        """Where the collector leaves a pointer for each object it uploads late (rawdata.partitions.late_pointer_key)."""
        return self.raw_url.rstrip("/") + "/late"

    @property
    def sources_file(self) -> Path | None:
        named = self.section(LoadSection).sources_file
        if named is not None:
            return named.expanduser().resolve()
        default = self.home / "sources.yml"
        return default if default.exists() else None

    def _sources_text(self) -> tuple[str, str] | None:
        path = self.sources_file
        if path is None:
            return None
        try:
            return path.read_text(), str(path)
        except OSError as exc:
            raise ConfigError(f"TRACKWAY_SOURCES_FILE={path}: cannot read it ({exc})") from None

    def sources(self) -> list[Source]:
        """Extra raw sources from the sources file; none when there is no file."""
        found = self._sources_text()
        return parse_sources(*found) if found else []

    def app_databases(self) -> list[AppDatabase]:
        """Product databases the app_sync DAG copies into the warehouse (``kind: database``); none without a file."""
        found = self._sources_text()
        return parse_app_databases(*found) if found else []

    def app_database(self, name: str) -> AppDatabase:
        """One product database by name; ConfigError listing the declared ones."""
        databases = self.app_databases()
        for database in databases:
            if database.name == name:
                return database
        declared = ", ".join(d.name for d in databases) or "none"
        raise ConfigError(f"no database {name!r} in the sources file ({self.sources_file}); declared: {declared}")

    # -- transform ------------------------------------------------------------

    @property
    def dbt_project_dir(self) -> Path:
        named = self.section(TransformSection).dbt_project_dir
        return (named or Path(__file__).resolve().parents[2] / "dbt").resolve()

    @property
    def dbt_executable(self) -> Path | None:
        """``TRACKWAY_DBT_EXECUTABLE``; else in-process on DuckDB and PostgreSQL, the Makefile's .dbt-venv on BigQuery.

        One setting for every caller: dbt_runner's subprocess and Cosmos's ``dbt_executable_path``.
        In-process is the default where it can be (adr/0007): events_transform took 92 s
        in-process against 345 s with a dbt process per task. Only dbt-bigquery needs the
        separate environment; without it, BigQuery fails with "run make dbt-venv".
        """
        explicit = self.section(TransformSection).dbt_executable  # a path, or "in-process"
        if explicit is not None:
            if explicit.lower() in ("in-process", "none"):
                return None
            return Path(explicit).expanduser().absolute()  # checked when dbt runs (dbt_runner)
        if self.warehouse.kind != "bigquery":
            return None
        candidate = Path(__file__).resolve().parents[3] / ".dbt-venv" / "bin" / "dbt"
        return candidate if candidate.is_file() else None

    @property
    def dbt_execution(self) -> str:
        """``TRACKWAY_DBT_EXECUTION``; else ``watcher`` where each dbt start is a process, ``per_model`` in-process.

        Measured (adr/0040): BigQuery's end to end took 245 s with a .dbt-venv process per model task against
        100 s with one; in-process, one watched build was no faster (PostgreSQL 121 s against 126 s) or slower
        (the DuckDB demo's transform 90 s against 56 s: a callback per dbt event, a sensor task per model).
        """
        explicit = self.section(TransformSection).dbt_execution
        if explicit is not None:
            return explicit
        return "watcher" if self.dbt_executable is not None else "per_model"

    @property
    def report_path(self) -> Path | None:
        """Where events_transform writes the report after each run; None (the default) writes none."""
        named = self.section(TransformSection).report_path
        return named.expanduser().absolute() if named is not None else None

    @property
    def report_days(self) -> int:
        return self.section(TransformSection).report_days

    # -- tracking plan --------------------------------------------------------

    @property
    def plan_dir(self) -> Path | None:
        return self.section(PlanSection).plan_dir

    @cached_property
    def _plan_modes(self) -> tuple[dict[str, str], str]:
        return parse_plan_modes(self.section(PlanSection).plan_modes)

    @property
    def plan_modes(self) -> dict[str, str]:
        return self._plan_modes[0]

    @property
    def plan_default_mode(self) -> str:
        return self._plan_modes[1]

    @property
    def typed_schema(self) -> str:
        return self.section(PlanSection).typed_schema

    # -- privacy --------------------------------------------------------------

    @property
    def pseudonym_keys(self) -> str | None:
        """TRACKWAY_PSEUDONYM_KEYS as given (a path or the keyring itself): secret, never print it."""
        keys = self.section(PrivacySection).pseudonym_keys
        return keys.get_secret_value() if keys else None

    @property
    def ip_truncation(self) -> bool:
        return self.section(PrivacySection).ip_truncation

    @cached_property
    def hash_user_id_sources(self) -> frozenset[str]:
        return parse_source_list(self.section(PrivacySection).hash_user_id, "TRACKWAY_HASH_USER_ID")

    @cached_property
    def sample_by_source(self) -> dict[str, tuple[float, str]]:
        """{source: (rate, unit)} from TRACKWAY_SAMPLE; ``*`` for every other source."""
        return parse_sample_spec(self.section(PrivacySection).sample)

    # -- DAGs -----------------------------------------------------------------

    @property
    def task_retries(self) -> int:
        return self.section(DagsSection).task_retries

    @property
    def alert_webhook_url(self) -> str | None:
        """The real URL, for the one POST that needs it; show ``redact_webhook(...)`` instead."""
        url = self.section(DagsSection).alert_webhook_url
        return url.get_secret_value() if url else None

    @property
    def alert_slack_conn_id(self) -> str | None:
        """The Airflow connection alerts are posted to Slack through; its token stays in Airflow."""
        return self.section(DagsSection).alert_slack_conn_id

    @property
    def alert_email(self) -> list[str]:
        return [a.strip() for a in (self.section(DagsSection).alert_email or "").split(",") if a.strip()]

    @property
    def alert_repeat_hours(self) -> float:
        return self.section(DagsSection).alert_repeat_hours

    @property
    def runbook_url(self) -> str:
        return self.section(DagsSection).runbook_url

    # -- privacy (erasure requests) -------------------------------------------

    @property
    def embedded_default(self) -> bool:
        """True when neither the raw store nor the warehouse is configured: everything lives in TRACKWAY_HOME."""
        return not self.environ.get("TRACKWAY_RAW_URL") and not self.environ.get("TRACKWAY_WAREHOUSE_URL")

    @property
    def privacy_ledger_key(self) -> str | None:
        """The secret itself, for the HMAC only (trackway.subjects.keys); never print it."""
        key = self.section(ErasureSection).privacy_ledger_key
        return key.get_secret_value().strip() if key else None

    @property
    def privacy_due_days(self) -> int:
        return self.section(ErasureSection).privacy_due_days

    @property
    def retention_default(self) -> Retention:
        return parse_default(self.section(ErasureSection).retention_default)

    @property
    def privacy_poll_seconds(self) -> float:
        return self.section(ErasureSection).privacy_poll_seconds

    @property
    def privacy_api_token(self) -> str | None:
        token = self.section(ErasureSection).privacy_api_token
        return token.get_secret_value() if token else None


def load_settings(*components: str) -> Settings:
    """Read the environment now (not at import) so tests and the CLI can change it.

    Only the core settings (where the data is) are checked here; the rest when
    first read, so one component's bad setting does not break another. Name
    components (``load_settings("collector")``) to check what they read now.
    """
    environ = snapshot_environ()
    for name, suggestion in unknown_variables(environ):
        if name not in _warned:  # once per process: DAG files load settings on every parse
            _warned.add(name)
            log.warning(unknown_variable_message(name, suggestion))
    settings = Settings(environ)
    settings.section(CoreSection)
    settings.warehouse  # noqa: B018 (parsed now: every component needs it)
    if components:
        settings.check(*components)
    return settings
