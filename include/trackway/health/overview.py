"""What the Trackway page in Airflow shows: the stage funnel per hour, the health checks, violations, damaged objects.

Read the way ``trackway status`` and ``trackway health`` read (the warehouse as the
reader role, the load ledger, the object store's listing, the spool or the
collector's metrics), never Airflow's database. Each part that cannot be read is
reported as such, with the reason, and the rest is still shown: the page must be
most useful exactly when something is broken.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from trackway.config import Settings
from trackway.config.registry import HealthSection
from trackway.health.checks import last_complete_hour
from trackway.health.observe import (
    ACCEPTED_METRIC,
    QUARANTINED_METRIC,
    SET_ASIDE_METRIC,
    HealthReport,
    collector_metrics,
    run_checks,
)
from trackway.rawdata.partitions import hours_between, partition_of
from trackway.warehouse import open_warehouse
from trackway.warehouse.base import Warehouse

#: How many rows the lists (damaged objects, violations, set-aside segments) show at most.
LIST_LIMIT = 50


@dataclass
class HourStages:
    """One hour (by receivedAt, the hour the collector partitions by) through the stages."""

    hour: datetime
    objects: int | None = None  # raw objects stored for the hour; None: the store could not be listed
    objects_waiting: int | None = None  # stored, not loaded (yet): the next load or a backfill takes them
    objects_damaged: int = 0
    loaded: int = 0  # rows in raw.events_raw received in the hour (parseable lines)
    unparseable: int = 0  # lines of the hour's objects that are not JSON (rejected, with no receivedAt)
    quarantined: int = 0  # rows in raw.events_quarantine
    typed: int | None = None  # rows in analytics.events; None: not built yet
    rejected: int | None = None  # rows in analytics.events_rejected (parseable lines that are no valid event)
    waiting: int = 0  # loaded after the last transform's batch: not typed yet

    @property
    def duplicates(self) -> int | None:
        """Loaded rows that are extra copies of a message: neither typed, rejected, nor waiting for the transform."""
        if self.typed is None:
            return None
        return max(self.loaded - self.typed - (self.rejected or 0) - self.waiting, 0)

    @property
    def key(self) -> str:
        return f"{self.hour:%Y-%m-%dT%H}"


@dataclass
class Collector:
    """The collector's side, from its metrics: cumulative since it started, not per hour."""

    acknowledged: int | None = None  # events stored and acknowledged (HTTP 200)
    quarantined: int | None = None
    set_aside: int | None = None
    unknown_because: str | None = None  # why the figures above are unknown


@dataclass
class Overview:
    as_of: datetime
    hours: list[HourStages] = field(default_factory=list)
    collector: Collector = field(default_factory=Collector)
    health: HealthReport | None = None
    violations: list[tuple[str, str, str, int, str]] | None = None  # (event, kind, property, count, last seen)
    damaged: list[tuple[str, str, str, int]] = field(default_factory=list)  # (object, hour, error, rows loaded)
    set_aside: list[tuple[str, str]] = field(default_factory=list)  # (segment, reason) on this machine's spool
    beyond_sweep: list[tuple[str, str]] = field(default_factory=list)  # (object, hour)
    last_loaded_hour: datetime | None = None  # the newest hour a load run covered
    #: Parts that could not be read: (part, reason). Shown, never hidden.
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def last_complete_hour(self) -> datetime:
        return last_complete_hour(self.as_of)


def gather(settings: Settings, *, hours: int = 24, now: datetime | None = None) -> Overview:
    """Everything the page shows, for the last ``hours`` complete hours and the current one."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    overview = Overview(as_of=now)
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours + 1)
    overview.hours = [HourStages(h) for h in hours_between(start, end)]

    def part(name: str, read: Callable[[], Any]) -> None:
        try:
            read()
        except Exception as exc:  # one unreadable part must not hide the others
            overview.errors.append((name, f"{type(exc).__name__}: {exc}"))

    part("health checks", lambda: setattr(overview, "health", run_checks(settings, as_of=now)))
    part("collector", lambda: _collector(settings, overview))
    part("object store", lambda: _stored(settings, overview, start, end))
    part("warehouse", lambda: _warehouse(settings, overview, start, end))
    return overview


def _collector(settings: Settings, overview: Overview) -> None:
    url = settings.section(HealthSection).health_collector_metrics_url
    local = sorted(settings.spool_dir.glob("*/.set-aside/*.sealed"))
    overview.set_aside = [(f"{p.parent.parent.name}/{p.name}", _reason(p)) for p in local[:LIST_LIMIT]]
    if not url:
        overview.collector = Collector(
            set_aside=len(local), unknown_because="TRACKWAY_HEALTH_COLLECTOR_METRICS_URL is not set"
        )
        return
    try:
        metrics = collector_metrics(url)
    except Exception as exc:
        overview.collector = Collector(
            set_aside=len(local), unknown_because=f"the collector's metrics did not answer ({type(exc).__name__})"
        )
        return
    overview.collector = Collector(
        acknowledged=int(metrics.get(ACCEPTED_METRIC, 0)),
        quarantined=int(metrics.get(QUARANTINED_METRIC, 0)),
        set_aside=int(metrics.get(SET_ASIDE_METRIC, 0)),
    )


def _reason(segment) -> str:
    reason = segment.with_name(segment.name + ".reason")
    try:
        return reason.read_text(errors="replace")[:500]
    except OSError:
        return "(no .reason file)"


def _stored(settings: Settings, overview: Overview, start: datetime, end: datetime) -> None:
    from trackway.load.backfill import backfill_plan

    by_hour = {h.key: h for h in overview.hours}
    for plan in backfill_plan(settings, start, end):
        row = by_hour.get(plan.hour)
        if row is not None:
            row.objects, row.objects_waiting = plan.found, plan.will_load


def _warehouse(settings: Settings, overview: Overview, start: datetime, end: datetime) -> None:
    from trackway.load.late import objects_beyond_sweep

    with open_warehouse(settings.read_warehouse, read_only=True) as wh:
        if not wh.table_exists("raw", "events_raw"):
            return
        (last,) = wh.query("SELECT max(interval_start) FROM raw.load_runs")[0]
        overview.last_loaded_hour = _utc(last) if last is not None else None
        by_hour = {h.key: h for h in overview.hours}
        lo, hi = f"{start:%Y-%m-%dT%H}", f"{end:%Y-%m-%dT%H}"
        newest_typed = None
        if wh.table_exists("analytics", "events"):
            (newest_typed,) = wh.query("SELECT max(loaded_at) FROM analytics.events")[0]
        for hour, loaded, waiting in wh.query(
            "SELECT substr(received_at, 1, 13), count(*), "
            "sum(CASE WHEN loaded_at > ? THEN 1 ELSE 0 END) FROM raw.events_raw "
            "WHERE received_at >= ? AND received_at < ? GROUP BY 1",
            [newest_typed or datetime(1970, 1, 1, tzinfo=UTC), lo, hi],
        ):
            if hour in by_hour:
                by_hour[hour].loaded = int(loaded)
                by_hour[hour].waiting = int(waiting or 0) if newest_typed is not None else 0
        if wh.table_exists("raw", "events_quarantine"):
            for hour, n in _per_text_hour(wh, "raw.events_quarantine", lo, hi):
                if hour in by_hour:
                    by_hour[hour].quarantined = n
        if newest_typed is not None:
            _typed(wh, overview.hours)
        if wh.table_exists("analytics", "events_rejected"):
            for row in overview.hours:
                row.rejected = 0
            for hour, n in _per_text_hour(wh, "analytics.events_rejected", lo, hi):
                if hour in by_hour:
                    by_hour[hour].rejected = n
        # The ledger: per object, its lines that are not JSON and whether it is damaged, by its partition's hour.
        events_prefix = settings.events_url.split("://", 1)[-1].rstrip("/") + "/"
        for url, parse_errors, error in wh.query(
            "SELECT source_object, parse_errors, object_error FROM raw.loaded_objects WHERE loaded_at >= ?", [start]
        ):
            where = partition_of(str(url))
            if where is None or events_prefix not in str(url):
                continue
            stages = by_hour.get(f"{where[0]:%Y-%m-%dT%H}")
            if stages is not None:
                stages.unparseable += int(parse_errors or 0)
                stages.objects_damaged += 1 if error else 0
        for url, error, rows in wh.query(
            "SELECT source_object, object_error, rows_loaded FROM raw.loaded_objects WHERE object_error IS NOT NULL "
            f"ORDER BY loaded_at DESC LIMIT {LIST_LIMIT}"
        ):
            where = partition_of(str(url))
            overview.damaged.append((str(url), f"{where[0]:%Y-%m-%dT%H}" if where else "", str(error), int(rows or 0)))
        overview.beyond_sweep = objects_beyond_sweep(settings, wh.loaded_fingerprints, overview.as_of)
        if wh.table_exists("analytics", "tracking_plan_violations"):
            overview.violations = [
                (str(event), str(kind), str(prop or ""), int(n), str(last_seen or ""))
                for event, kind, prop, n, last_seen in wh.query(
                    "SELECT event_name, kind, property, sum(violation_count), max(last_seen) "
                    "FROM analytics.tracking_plan_violations GROUP BY event_name, kind, property "
                    f"ORDER BY 4 DESC, 1, 2, 3 LIMIT {LIST_LIMIT}"
                )
            ]


def _per_text_hour(wh: Warehouse, table: str, lo: str, hi: str) -> list[tuple[str, int]]:
    """Rows per hour of a table whose received_at is ISO 8601 text: its first 13 characters are the hour."""
    return [
        (str(hour), int(n))
        for hour, n in wh.query(
            f"SELECT substr(received_at, 1, 13), count(*) FROM {table} "
            "WHERE received_at >= ? AND received_at < ? GROUP BY 1",
            [lo, hi],
        )
    ]


def _typed(wh: Warehouse, hours: list[HourStages]) -> None:
    """analytics.events per hour: its received_at is a timestamp, so one bounded count per hour, bounds as
    parameters (no warehouse's own date functions)."""
    columns = ", ".join("sum(CASE WHEN received_at >= ? AND received_at < ? THEN 1 ELSE 0 END)" for _ in hours)
    bounds = [b for h in hours for b in (h.hour, h.hour + timedelta(hours=1))]
    counts = wh.query(f"SELECT {columns} FROM analytics.events WHERE received_at >= ?", [*bounds, hours[0].hour])[0]
    for row, n in zip(hours, counts, strict=True):
        row.typed = int(n or 0)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
