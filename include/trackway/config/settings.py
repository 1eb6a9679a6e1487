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
    Section,
    TransformSection,
    build_section,
    parse_plan_modes,
)
from trackway.config.sources import Source, parse_sources
from trackway.config.warehouse import WarehouseTarget
from trackway.config.write_keys import load_write_keys

log = logging.getLogger("trackway.config")
S = TypeVar("S", bound=Section)
_warned: set[str] = set()


@dataclass(frozen=True)
class CollectorLimits:
    """The collector's server, limit and back-pressure settings (defaults: the registry, Segment's limits)."""

    workers: int
    max_event_bytes: int
    max_batch_events: int
    rate_limit_events_per_second: float  # per write key; 0 = off
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
            "all": lambda: self.warehouse,
            "collector": lambda: (self.write_keys, self.collector, self.trusted_proxies),
            "load": self.sources,
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
    def max_body_bytes(self) -> int:
        return self.section(CollectorSection).max_body_bytes

    @property
    def collector_host(self) -> str:
        return self.section(CollectorSection).collector_host

    @property
    def collector_port(self) -> int:
        return self.section(CollectorSection).collector_port

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

    def sources(self) -> list[Source]:
        """Extra raw sources from the sources file; none when there is no file."""
        path = self.sources_file
        if path is None:
            return []
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"TRACKWAY_SOURCES_FILE={path}: cannot read it ({exc})") from None
        return parse_sources(text, str(path))

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

    # -- DAGs -----------------------------------------------------------------

    @property
    def task_retries(self) -> int:
        return self.section(DagsSection).task_retries

    @property
    def alert_webhook_url(self) -> str | None:
        """The real URL, for the one POST that needs it; show ``redact_webhook(...)`` instead."""
        url = self.section(DagsSection).alert_webhook_url
        return url.get_secret_value() if url else None

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
