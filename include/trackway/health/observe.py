"""Reads what the health checks judge: the warehouse, the load ledger, the spool, the collector's metrics.

Nothing here asks Airflow. Each read is one small aggregate query over the hours the
checks compare (the same hour of day on earlier weeks), so a run costs about the
same on a day of data as on a year of it.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from trackway.config import Settings
from trackway.config.registry import HealthSection, parse_shares, parse_thresholds
from trackway.health.checks import (
    CheckResult,
    HourlyCounts,
    State,
    Thresholds,
    age_check,
    erasure_checks,
    event_checks,
    last_complete_hour,
    reference_checks,
    spike_checks,
    volume_checks,
)
from trackway.load.late import objects_beyond_sweep
from trackway.subjects.ledger import RequestEvent
from trackway.warehouse import open_warehouse
from trackway.warehouse.base import Warehouse
from trackway.warehouse.ddl import EVENT_HEALTH_COLUMNS, PRIVACY_SCHEMA, REQUEST_HEALTH_COLUMNS

#: The collector's metrics the spool checks read when its spool is not on this machine
#: (trackway.collector.metrics; sample names, so a counter's end in _total).
UPLOAD_LAG_METRIC = "trackway_collector_upload_lag_seconds"
SET_ASIDE_METRIC = "trackway_collector_segments_set_aside_total"
ACCEPTED_METRIC = "trackway_collector_events_accepted_total"
QUARANTINED_METRIC = "trackway_collector_events_quarantined_total"


def thresholds(settings: Settings) -> Thresholds:
    h = settings.section(HealthSection)
    return Thresholds(
        upload_lag=parse_thresholds("TRACKWAY_HEALTH_UPLOAD_LAG", h.health_upload_lag),
        load_age=parse_thresholds("TRACKWAY_HEALTH_LOAD_AGE", h.health_load_age),
        data_age=parse_thresholds("TRACKWAY_HEALTH_DATA_AGE", h.health_data_age),
        transform_age=parse_thresholds("TRACKWAY_HEALTH_TRANSFORM_AGE", h.health_transform_age),
        baseline_weeks=h.health_baseline_weeks,
        trailing_days=h.health_trailing_days,
        volume_sigmas=h.health_volume_sigmas,
        volume_min_change=h.health_volume_min_change,
        event_min_hourly=h.health_event_min_hourly,
        event_drop_fraction=h.health_event_drop_fraction,
        event_hours=h.health_event_hours,
        spike_factor=h.health_spike_factor,
        spike_min_count=h.health_spike_min_count,
        damaged_hours=h.health_damaged_hours,
        app_refs=parse_shares("TRACKWAY_HEALTH_APP_REFS", h.health_app_refs),
        erasure_due_days=h.health_erasure_due_days,
    )


@dataclass
class HealthReport:
    as_of: datetime
    results: list[CheckResult] = field(default_factory=list)

    @property
    def state(self) -> State:
        return max((r.state for r in self.results), default=State.OK)

    def family(self, name: str) -> list[CheckResult]:
        return [r for r in self.results if r.family == name]


FAMILIES = (
    "freshness",
    "volume",
    "events",
    "quarantine",
    "violations",
    "objects",
    "dbt_tests",
    "app_refs",
    "privacy",
)


def run_checks(
    settings: Settings, *, as_of: datetime | None = None, families: tuple[str, ...] = FAMILIES
) -> HealthReport:
    """Every check family asked for; a family that cannot be read reports UNKNOWN with the reason, the rest go on."""
    now = (as_of or datetime.now(UTC)).astimezone(UTC)
    t = thresholds(settings)
    report = HealthReport(as_of=now)
    with open_warehouse(settings.read_warehouse, read_only=True) as wh:
        reader = _Reader(settings, wh, now, t)
        for name in families:
            try:
                report.results += getattr(reader, name)()
            except Exception as exc:  # one unreadable family must not hide the others
                report.results.append(
                    CheckResult(name, "unreadable", State.UNKNOWN, f"could not read: {type(exc).__name__}: {exc}")
                )
    return report


class _Reader:
    def __init__(self, settings: Settings, wh: Warehouse, now: datetime, t: Thresholds) -> None:
        self.settings, self.wh, self.now, self.t = settings, wh, now, t
        self._has_raw = wh.table_exists("raw", "events_raw")
        # The newest hour every check may judge: complete, and covered by a load run (else freshness says why).
        self.hour = last_complete_hour(now)
        if self._has_raw:
            (last_interval,) = wh.query("SELECT max(interval_start) FROM raw.load_runs")[0]
            if last_interval is not None:
                self.hour = min(self.hour, _utc(last_interval))
        weeks_back = max(t.baseline_weeks * 7, t.trailing_days) + 1
        self.history_start = self._oldest_received(self.hour - timedelta(days=weeks_back))

    # -- freshness -------------------------------------------------------------------

    def freshness(self) -> list[CheckResult]:
        t, now = self.t, self.now
        results = [self._upload_lag()]
        last_run = newest = None
        if self._has_raw:
            (finished,) = self.wh.query("SELECT max(finished_at) FROM raw.load_runs")[0]
            last_run = (now - _utc(finished)).total_seconds() if finished else None
            (received,) = self.wh.query("SELECT max(received_at) FROM raw.events_raw WHERE parse_error IS NULL")[0]
            newest = (now - _parse_ts(received)).total_seconds() if received else None
        results.append(
            age_check(
                "freshness", "load_stale", "last load run finished", last_run, t.load_age, missing="no load has run yet"
            )
        )
        results.append(
            age_check(
                "freshness",
                "data_stale",
                "newest event loaded (receivedAt)",
                newest,
                t.data_age,
                missing="nothing loaded yet",
            )
        )
        built = None
        if self.wh.table_exists("audit", "dbt_results"):
            (finished,) = self.wh.query(
                "SELECT max(finished_at) FROM audit.dbt_results WHERE resource_type = 'model' AND status = 'success'"
            )[0]
            built = (now - _utc(finished)).total_seconds() if finished else None
        results.append(
            age_check(
                "freshness",
                "transform_stale",
                "dbt last built a model",
                built,
                t.transform_age,
                missing="no transform has run yet",
            )
        )
        return results

    def _upload_lag(self) -> CheckResult:
        url = self.settings.section(HealthSection).health_collector_metrics_url
        lag: float | None
        if url:
            lag = collector_metrics(url).get(UPLOAD_LAG_METRIC)
            where = "the collector's metrics"
        else:
            lag = _spool_lag(self.settings.spool_dir, self.now)
            where = "the local spool"
        return age_check(
            "freshness",
            "upload_lag",
            f"oldest spool segment not yet stored ({where})",
            lag,
            self.t.upload_lag,
            missing="nothing waiting",
        )

    # -- volume and events -----------------------------------------------------------

    def volume(self) -> list[CheckResult]:
        if not self._has_raw:
            return [CheckResult("volume", "source_volume", State.OK, "nothing loaded yet")]
        counts = self._hourly("raw.events_raw", "coalesce(source_id, '')", [self.hour])
        return volume_checks(counts, self.hour, self.t, self.history_start)

    def events(self) -> list[CheckResult]:
        if not self._has_raw:
            return [CheckResult("events", "event_stopped", State.OK, "nothing loaded yet")]
        hours = [self.hour - timedelta(hours=n) for n in reversed(range(self.t.event_hours))]
        counts = self._hourly("raw.events_raw", "coalesce(event, name, type, '')", hours)
        return event_checks(counts, hours, self.t, self.history_start)

    def quarantine(self) -> list[CheckResult]:
        if not self.wh.table_exists("raw", "events_quarantine"):
            return [CheckResult("quarantine", "quarantine_spike", State.OK, "nothing quarantined")]
        # The reason's first words are its kind ("schema: ...", "oversized event ..."): group by those.
        counts = self._hourly(
            "raw.events_quarantine", "coalesce(event, '') || ' / ' || coalesce(substr(reason, 1, 40), '')", [self.hour]
        )
        return spike_checks(
            "quarantine", "quarantine_spike", "events quarantined", counts, self.hour, self.t, self.history_start
        )

    def violations(self) -> list[CheckResult]:
        if not self._visible("intermediate", "plan_violation_rows"):
            return [CheckResult("violations", "violation_spike", State.OK, "no tracking plan in the warehouse")]
        # received_at is a timestamp here: one count per compared hour, bounds as parameters, so no warehouse's
        # own time-zone or date functions are involved.
        hours = sorted(h for h in self._comparison_hours([self.hour]) if h >= self.history_start)
        columns = ", ".join("sum(CASE WHEN received_at >= ? AND received_at < ? THEN 1 ELSE 0 END)" for _ in hours)
        bounds = [b for h in hours for b in (h, h + timedelta(hours=1))]
        rows = self.wh.query(
            f"SELECT event_name, kind, {columns} FROM intermediate.plan_violation_rows "
            "WHERE received_at >= ? GROUP BY event_name, kind",
            [*bounds, hours[0]],
        )
        counts = HourlyCounts()
        for event_name, kind, *per_hour in rows:
            for hour, n in zip(hours, per_hour, strict=True):
                counts.add(f"{event_name} / {kind}", hour, int(n or 0))
        return spike_checks(
            "violations", "violation_spike", "plan violations", counts, self.hour, self.t, self.history_start
        )

    # -- objects and dbt tests -------------------------------------------------------

    def objects(self) -> list[CheckResult]:
        results = []
        set_aside = _set_aside(self.settings)
        results.append(
            CheckResult(
                "objects",
                "set_aside_segments",
                State.FAIL if set_aside else State.OK,
                f"{set_aside} spool segment{'s' if set_aside != 1 else ''} set aside by the collector"
                + (" (acknowledged events not in the object store)" if set_aside else ""),
                value=set_aside,
            )
        )
        if not self._has_raw:
            return results
        beyond = objects_beyond_sweep(self.settings, self.wh.loaded_fingerprints, self.now)
        hours = sorted({hour for _, hour in beyond})
        results.append(
            CheckResult(
                "objects",
                "objects_beyond_sweep",
                State.FAIL if beyond else State.OK,
                f"{len(beyond)} late object{'s' if len(beyond) != 1 else ''} older than the load sweep"
                + (f", hours {', '.join(hours[:5])}{' ...' if len(hours) > 5 else ''}" if beyond else ""),
                value=len(beyond),
            )
        )
        since = self.now - timedelta(hours=self.t.damaged_hours)
        damaged = self.wh.query(
            "SELECT source_object, object_error FROM raw.loaded_objects WHERE object_error IS NOT NULL "
            "AND loaded_at >= ? ORDER BY loaded_at DESC",
            [since],
        )
        results.append(
            CheckResult(
                "objects",
                "damaged_objects",
                State.WARN if damaged else State.OK,
                f"{len(damaged)} damaged object{'s' if len(damaged) != 1 else ''} loaded in the last "
                f"{self.t.damaged_hours} h" + (f", newest {damaged[0][0]}: {damaged[0][1]}" if damaged else ""),
                value=len(damaged),
            )
        )
        return results

    def dbt_tests(self) -> list[CheckResult]:
        if not self.wh.table_exists("audit", "dbt_results"):
            return [CheckResult("dbt_tests", "dbt_test_failed", State.OK, "no dbt test has run yet")]
        rows = self.wh.query(
            "SELECT unique_id, status, failures, message, finished_at FROM audit.dbt_results "
            "WHERE resource_type IN ('test', 'unit_test') AND finished_at >= ? ORDER BY finished_at",
            [self.now - timedelta(days=7)],
        )
        latest: dict[str, tuple] = {}
        for unique_id, status, failures, message, _ in rows:
            latest[unique_id] = (status, failures, message)  # ordered by time: the last one wins
        results = []
        for unique_id, (status, failures, message) in sorted(latest.items()):
            if status in ("fail", "error", "warn"):
                state = State.WARN if status == "warn" else State.FAIL
                detail = f"{failures:,} failing rows" if failures else (message or status)
                results.append(
                    CheckResult(
                        "dbt_tests", "dbt_test_failed", state, f"{status}: {detail}", subject=unique_id, value=failures
                    )
                )
        if not results:
            results.append(
                CheckResult(
                    "dbt_tests",
                    "dbt_test_failed",
                    State.OK,
                    f"{len(latest)} dbt tests passed on their last run",
                    value=len(latest),
                )
            )
        return results

    # -- application references (analytics_x) ----------------------------------------

    def app_refs(self) -> list[CheckResult]:
        """Share of each plan reference's values, in events of the last two UTC days, that find no app row."""
        if not self.wh.table_exists("analytics_x", "x_reference_health"):
            return [CheckResult("app_refs", "unresolved_references", State.OK, "no analytics_x views (no references)")]
        since = (self.now - timedelta(days=1)).date()
        rows = self.wh.query(
            "SELECT view_name, property, reference, sum(refs), sum(unresolved) FROM analytics_x.x_reference_health "
            "WHERE event_date >= ? GROUP BY view_name, property, reference ORDER BY view_name, property",
            [since],
        )
        results = reference_checks(((v, p, r, int(n or 0), int(u or 0)) for v, p, r, n, u in rows), self.t.app_refs)
        return results or [CheckResult("app_refs", "unresolved_references", State.OK, "no referencing events lately")]

    # -- privacy: erasure requests near their due date -------------------------------

    def privacy(self) -> list[CheckResult]:
        """The erasure ledger's requests and their events, as the warehouse holds them (not the privacy DAG).

        Only the columns the status needs (``REQUEST_HEALTH_COLUMNS``, ``EVENT_HEALTH_COLUMNS``,
        which the reader role may select): no subject hash, no event detail, no ledger key.
        """
        if not self._visible(PRIVACY_SCHEMA, "requests"):
            return [CheckResult("privacy", "erasure_request_due", State.OK, "no erasure requests")]
        requests = [
            (str(rid), str(kind), _utc(received), _utc(due))
            for rid, kind, received, due in self.wh.query(
                f"SELECT {', '.join(REQUEST_HEALTH_COLUMNS)} FROM {PRIVACY_SCHEMA}.requests"
            )
        ]
        events = [
            RequestEvent(str(rid), int(seq), _utc(at), str(kind), store, status)
            for rid, seq, kind, store, status, at in self.wh.query(
                f"SELECT {', '.join(EVENT_HEALTH_COLUMNS)} FROM {PRIVACY_SCHEMA}.request_events"
            )
        ]
        return erasure_checks(requests, events, self.now, self.t.erasure_due_days)

    def _visible(self, schema: str, table: str) -> bool:
        """Whether ``schema.table`` is in the warehouse; one the role may not read is an error, not "none".

        PostgreSQL's information_schema hides a table the role has no privilege on; its catalog does not.
        Without this, a reader role without the grant saw "no erasure requests" and "no tracking plan".
        """
        target = self.settings.read_warehouse
        if target.kind != "postgres":
            return self.wh.table_exists(schema, table)
        (found,) = self.wh.query(
            "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = ? AND tablename = ?", [schema, table]
        )[0]
        if found and not self.wh.table_exists(schema, table):
            raise PermissionError(
                f"role {target.user!r} may not read {schema}.{table}: run `trackway warehouse grant` "
                "(docs/reference/warehouse-roles.md)"
            )
        return bool(found)

    # -- helpers -----------------------------------------------------------------------

    def _comparison_hours(self, hours: list[datetime]) -> set[datetime]:
        """The hours checked and every hour their baselines read (the same hour of day, earlier)."""
        span = max(self.t.baseline_weeks * 7, self.t.trailing_days)
        return {h - timedelta(days=d) for h in hours for d in range(span + 1)}

    def _hourly(self, table: str, subject_sql: str, hours: list[datetime]) -> HourlyCounts:
        """Counts per subject per hour over the hours ``hours`` are compared with, read in one query.

        receivedAt is ISO 8601 UTC text in the raw tables: its first 13 characters are the hour,
        and comparing text orders it, so the query needs no timestamp parsing on any warehouse.
        """
        wanted = self._comparison_hours(hours)
        of_day = sorted({f"{h:%H}" for h in hours})
        marks = ", ".join("?" for _ in of_day)
        rows = self.wh.query(
            f"SELECT {subject_sql}, substr(received_at, 1, 13), count(*) FROM {table} "
            f"WHERE received_at >= ? AND substr(received_at, 12, 2) IN ({marks}) GROUP BY 1, 2",
            [f"{min(wanted):%Y-%m-%dT%H}", *of_day],
        )
        counts = HourlyCounts()
        for subject, hour_text, n in rows:
            hour = _hour(hour_text)
            if hour in wanted:
                counts.add(subject or "(none)", hour, int(n))
        for subject in counts.counts:
            counts.counts[subject].setdefault(hours[-1], 0)
        return counts

    def _oldest_received(self, floor: datetime) -> datetime:
        """Where history starts: hours before the first data are not zeros, they are unknown."""
        if not self._has_raw:
            return floor
        (oldest,) = self.wh.query(
            "SELECT min(received_at) FROM raw.events_raw WHERE received_at >= ?", [f"{floor:%Y-%m-%dT%H}"]
        )[0]
        if not oldest:
            return self.hour
        return max(floor, _parse_ts(oldest).replace(minute=0, second=0, microsecond=0))


def _set_aside(settings: Settings) -> int:
    url = settings.section(HealthSection).health_collector_metrics_url
    if url:
        return int(collector_metrics(url).get(SET_ASIDE_METRIC, 0))
    return sum(1 for _ in settings.spool_dir.glob("*/.set-aside/*.sealed"))


def _spool_lag(spool_dir: Path, now: datetime) -> float | None:
    """Age of the oldest segment still in the spool (its last write: a lower bound of the wait)."""
    oldest = None
    for path in spool_dir.glob("*/*~*"):
        if path.name.endswith((".open", ".sealed")):
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:  # uploaded meanwhile
                continue
            oldest = mtime if oldest is None else min(oldest, mtime)
    return None if oldest is None else max(now.timestamp() - oldest, 0.0)


def collector_metrics(url: str, opener: Callable = urllib.request.urlopen) -> dict[str, float]:
    """The collector's metrics (TRACKWAY_HEALTH_COLLECTOR_METRICS_URL), summed over labels: {sample name: value}."""
    from prometheus_client.parser import text_string_to_metric_families

    with opener(url, timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + sample.value
    return values


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _parse_ts(text: str) -> datetime:
    return _utc(datetime.fromisoformat(str(text).replace("Z", "+00:00")))


def _hour(text: str) -> datetime:
    return datetime.strptime(str(text)[:13], "%Y-%m-%dT%H").replace(tzinfo=UTC)
