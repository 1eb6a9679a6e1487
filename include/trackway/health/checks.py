"""The health checks: each turns an observation of the pipeline into ok, warn or fail.

Pure functions over numbers the gatherer (``health/observe.py``) read from the
warehouse, the load ledger, the spool and the collector's metrics, never from
Airflow's database: a dead scheduler shows up as stale freshness, not as silence.
Every result names the runbook section that says what to do (docs/runbook.md).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from trackway.health.baseline import Baseline, baseline, baseline_hours
from trackway.subjects.ledger import RequestEvent, request_status

RUNBOOK = "docs/runbook.md"


class State(enum.IntEnum):
    """Nagios's convention, so a cron job or a probe can page on the exit status."""

    OK = 0
    WARN = 1
    FAIL = 2
    UNKNOWN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


#: Every check's name; each has its section in the runbook (tests/test_gameday.py checks that it exists).
CHECKS = (
    "upload_lag",
    "load_stale",
    "data_stale",
    "transform_stale",
    "source_volume",
    "event_stopped",
    "event_dropped",
    "quarantine_spike",
    "violation_spike",
    "set_aside_segments",
    "objects_beyond_sweep",
    "damaged_objects",
    "dbt_test_failed",
    "unresolved_references",
    "erasure_request_due",
    "unreadable",
)


@dataclass(frozen=True)
class CheckResult:
    family: str  # freshness, volume, events, quarantine, violations, objects, dbt_tests, privacy
    check: str  # e.g. "event_stopped"; also the runbook section's anchor (with - for _)
    state: State
    summary: str  # one line for people: what is wrong, by how much
    subject: str = ""  # what it is about: a source, an event, a dbt test; "" for the pipeline as a whole
    value: float | None = None  # the measured figure (seconds, count, ratio), for metrics and --json

    def __post_init__(self) -> None:
        if self.check not in CHECKS:
            raise ValueError(f"health check {self.check!r} is not in CHECKS; add it there and to {RUNBOOK}")

    @property
    def runbook(self) -> str:
        return f"{RUNBOOK}#{self.check.replace('_', '-')}"

    @property
    def key(self) -> str:
        """Stable identity for deduplicating alerts: the same check on the same subject."""
        return f"{self.family}.{self.check}" + (f":{self.subject}" if self.subject else "")


@dataclass(frozen=True)
class Thresholds:
    """The settings of ``HealthSection`` as numbers."""

    upload_lag: tuple[float, float]
    load_age: tuple[float, float]
    data_age: tuple[float, float]
    transform_age: tuple[float, float]
    baseline_weeks: int = 4
    trailing_days: int = 7
    volume_sigmas: float = 4.0
    volume_min_change: float = 0.5
    event_min_hourly: int = 10
    event_drop_fraction: float = 0.5
    event_hours: int = 2
    spike_factor: float = 3.0
    spike_min_count: int = 20
    damaged_hours: int = 24
    app_refs: tuple[float, float] = (0.01, 0.05)  # share of references that find no application row
    erasure_due_days: int = 7  # an unfinished erasure request this close to its due_at warns


def worst(results: Iterable[CheckResult]) -> State:
    return max((r.state for r in results), default=State.OK)


def age_check(
    family: str, check: str, what: str, age: float | None, limits: tuple[float, float], *, missing: str
) -> CheckResult:
    """Freshness: ``age`` seconds against (warn, fail); ``missing`` says why there is no age yet (a new install)."""
    if age is None:
        return CheckResult(family, check, State.OK, f"{what}: {missing}")
    warn, fail = limits
    state = State.FAIL if age >= fail else State.WARN if age >= warn else State.OK
    summary = f"{what}: {format_age(age)} ago"
    if state is not State.OK:
        summary += f" (warn at {format_age(warn)}, fail at {format_age(fail)})"
    return CheckResult(family, check, state, summary, value=round(age, 1))


def reference_checks(rows: Iterable[tuple[str, str, str, int, int]], limits: tuple[float, float]) -> list[CheckResult]:
    """(view, property, reference, values, unresolved) per analytics_x reference -> one result each."""
    warn, fail = limits
    out = []
    for view, prop, reference, refs, unresolved in rows:
        share = unresolved / refs if refs else 0.0
        state = State.FAIL if share > fail else State.WARN if share > warn else State.OK
        summary = f"{unresolved:,} of {refs:,} values ({share:.1%}) find no row of {reference}"
        if state is not State.OK:
            summary += f" (warn above {warn:.1%}, fail above {fail:.1%})"
        out.append(
            CheckResult("app_refs", "unresolved_references", state, summary, subject=f"{view}.{prop}", value=share)
        )
    return out


def erasure_checks(
    requests: Iterable[tuple[str, str, datetime, datetime]],
    events: Iterable[RequestEvent],
    now: datetime,
    due_days: int,
) -> list[CheckResult]:
    """(request_id, type, received_at, due_at) per ledger request and their events -> one result per unfinished one.

    Past its due_at fails; within ``due_days`` of it warns. The status is the ledger's own rule
    (``request_status``), so ids linked after a request finished make it pending, and due, again.
    """
    by_request: dict[str, dict[int, RequestEvent]] = {}
    for event in events:
        by_request.setdefault(event.request_id, {})[event.seq] = event
    results, finished = [], 0
    for request_id, request_type, _received_at, due_at in sorted(requests, key=lambda r: (r[3], r[0])):
        status = request_status(by_request.get(request_id, {}).values())
        if status == "finished":
            finished += 1
            continue
        seconds = (due_at - now).total_seconds()
        days = seconds / 86400
        state = State.FAIL if days <= 0 else State.WARN if days <= due_days else State.OK
        left = f"{format_age(-seconds)} overdue" if days <= 0 else f"{format_age(seconds)} left"
        results.append(
            CheckResult(
                "privacy",
                "erasure_request_due",
                state,
                f"{request_type}, {status}, due {due_at:%Y-%m-%d %H:%M} UTC: {left}"
                + (f" (warn within {due_days} days)" if state is State.WARN else ""),
                subject=request_id,
                value=round(days, 2),
            )
        )
    if not results:
        results.append(
            CheckResult(
                "privacy",
                "erasure_request_due",
                State.OK,
                f"{finished} erasure request{'s' if finished != 1 else ''}, all finished"
                if finished
                else "no erasure requests",
                value=0,
            )
        )
    return results


@dataclass
class HourlyCounts:
    """Counts per subject per hour (UTC, on the hour) from the history the gatherer read."""

    counts: dict[str, dict[datetime, int]] = field(default_factory=dict)

    def add(self, subject: str, hour: datetime, count: int) -> None:
        per_hour = self.counts.setdefault(subject, {})
        per_hour[hour] = per_hour.get(hour, 0) + count


def _baseline_for(
    counts: Mapping[datetime, int], hour: datetime, t: Thresholds, history_start: datetime
) -> Baseline | None:
    hours, basis = baseline_hours(
        hour,
        min_weeks=t.baseline_weeks,
        max_weeks=t.baseline_weeks,
        trailing_days=t.trailing_days,
        history_start=history_start,
    )
    return baseline(counts, hours, basis)


def volume_checks(volumes: HourlyCounts, hour: datetime, t: Thresholds, history_start: datetime) -> list[CheckResult]:
    """Each source's volume in ``hour`` against the same hour earlier: too low warns, zero fails, too high warns."""
    results = []
    for source, counts in sorted(volumes.counts.items()):
        now = counts.get(hour, 0)
        base = _baseline_for(counts, hour, t, history_start)
        if base is None or base.median < t.event_min_hourly:
            results.append(
                CheckResult(
                    "volume",
                    "source_volume",
                    State.OK,
                    f"{now:,} events in {hour:%H}:00 (baseline: "
                    + ("no history yet" if base is None else f"{base.describe()}, too small to judge")
                    + ")",
                    subject=source,
                    value=now,
                )
            )
            continue
        spread = max(t.volume_sigmas * base.sigma, t.volume_min_change * base.median)
        if now < base.median - spread:
            state = State.FAIL if now == 0 else State.WARN
            summary = f"{now:,} events in {hour:%H}:00, {base.describe()}: {_change(now, base.median)}"
        elif now > base.median + spread:
            state = State.WARN
            summary = f"{now:,} events in {hour:%H}:00, {base.describe()}: {_change(now, base.median)}"
        else:
            state = State.OK
            summary = f"{now:,} events in {hour:%H}:00 ({base.describe()})"
        results.append(CheckResult("volume", "source_volume", state, summary, subject=source, value=now))
    return results


def event_checks(
    events: HourlyCounts, hours: list[datetime], t: Thresholds, history_start: datetime
) -> list[CheckResult]:
    """The release-broke-tracking check: an event with steady volume that stopped, or fell under a share of it.

    Only events that were steady (baseline median at least ``event_min_hourly`` and
    present in at least three quarters of the baseline hours) in every one of
    ``hours`` are judged, so a rare event's quiet hour is not an incident.
    """
    results = []
    for name, counts in sorted(events.counts.items()):
        bases = [_baseline_for(counts, h, t, history_start) for h in hours]
        if not all(b is not None and b.median >= t.event_min_hourly and b.presence >= 0.75 for b in bases):
            continue
        seen = [counts.get(h, 0) for h in hours]
        medians = [b.median for b in bases if b is not None]
        window = f"the last {len(hours)} hour{'s' if len(hours) > 1 else ''} ({hours[0]:%H}:00-{hours[-1]:%H}:59)"
        if all(n == 0 for n in seen):
            results.append(
                CheckResult(
                    "events",
                    "event_stopped",
                    State.FAIL,
                    f"no events in {window}; baseline {min(medians):g}-{max(medians):g}/h",
                    subject=name,
                    value=0,
                )
            )
        elif all(n < t.event_drop_fraction * m for n, m in zip(seen, medians, strict=True)):
            share = sum(seen) / sum(medians)
            results.append(
                CheckResult(
                    "events",
                    "event_dropped",
                    State.WARN,
                    f"{sum(seen):,} events in {window}, {share:.0%} of its baseline "
                    f"(under {t.event_drop_fraction:.0%} every hour)",
                    subject=name,
                    value=round(share, 3),
                )
            )
    if not results:
        watched = sum(
            1
            for counts in events.counts.values()
            if all(
                (b := _baseline_for(counts, h, t, history_start)) is not None and b.median >= t.event_min_hourly
                for h in hours
            )
        )
        results.append(
            CheckResult(
                "events",
                "event_stopped",
                State.OK,
                f"{watched} steady event{'s' if watched != 1 else ''} watched, none stopped or dropped",
                value=watched,
            )
        )
    return results


def spike_checks(
    family: str, check: str, what: str, counts: HourlyCounts, hour: datetime, t: Thresholds, history_start: datetime
) -> list[CheckResult]:
    """Quarantined events or plan violations per event and kind in ``hour``, against their usual hour."""
    results = []
    for subject, per_hour in sorted(counts.counts.items()):
        now = per_hour.get(hour, 0)
        if now < t.spike_min_count:
            continue
        base = _baseline_for(per_hour, hour, t, history_start)
        usual = base.median if base else 0.0
        if now >= t.spike_factor * max(usual, 1.0):
            results.append(
                CheckResult(
                    family,
                    check,
                    State.WARN,
                    f"{now:,} {what} in {hour:%H}:00, usually {usual:g}",
                    subject=subject,
                    value=now,
                )
            )
    if not results:
        total = sum(per_hour.get(hour, 0) for per_hour in counts.counts.values())
        results.append(CheckResult(family, check, State.OK, f"{total:,} {what} in {hour:%H}:00, no spike", value=total))
    return results


def format_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _change(now: float, usual: float) -> str:
    return f"{(now - usual) / usual:+.0%}" if usual else "new"


def last_complete_hour(as_of: datetime) -> datetime:
    return as_of.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
