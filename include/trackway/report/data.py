"""What the report reads: Trackway's own SQL over the marts, each section on its own.

Every query is fixed text with ``?`` parameters (dates only), in SQL that DuckDB
and PostgreSQL both accept. A mart that is missing, empty or unreadable gives
the section a note instead of rows, so one absent model never stops the report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from trackway.warehouse import Warehouse

log = logging.getLogger(__name__)


@dataclass
class Table:
    """Rows as read, with the column names the report shows."""

    headers: list[str]
    rows: list[tuple[Any, ...]]

    def records(self, *names: str) -> list[dict[str, Any]]:
        """The rows as dicts keyed by ``names`` (one per column), JSON-ready for a chart's inline data."""
        return [{n: _plain(v) for n, v in zip(names, row, strict=True)} for row in self.rows]


@dataclass
class Section:
    """One part of the report: its tables by name and the notes that say what is missing or why."""

    key: str
    title: str
    sources: list[str]
    intro: str
    tables: dict[str, Table] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: The window as [first day, day after the last) for charts over days; None when there is none.
    days: tuple[date, date] | None = None

    @property
    def empty(self) -> bool:
        return not any(t.rows for t in self.tables.values())


def _plain(value: Any) -> Any:
    """Dates as ISO text, decimals as floats: what JSON (and so Vega-Lite) takes."""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


class Reader:
    """The read-only warehouse, with the table and column look-ups the sections need, cached."""

    def __init__(self, wh: Warehouse) -> None:
        self.wh = wh
        self._columns: dict[tuple[str, str], set[str]] = {}

    def columns(self, schema: str, table: str) -> set[str]:
        """The table's (or view's) columns; empty when it does not exist or cannot be seen."""
        key = (schema, table)
        if key not in self._columns:
            rows = self.wh.query(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
                [schema, table],
            )
            self._columns[key] = {str(r[0]) for r in rows}
        return self._columns[key]

    def has(self, schema: str, table: str, *columns: str) -> bool:
        found = self.columns(schema, table)
        return bool(found) and all(c in found for c in columns)

    def read(self, section: Section, name: str, sql: str, params: Sequence[Any], headers: list[str]) -> Table | None:
        """Run one query into ``section.tables[name]``; a failure becomes a note, and the section goes on."""
        try:
            rows = self.wh.query(sql, params)
        except Exception as exc:  # the database's message is what the reader needs, whatever the driver
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            section.notes.append(f"Could not read {name}: {type(exc).__name__}: {first}")
            return None
        table = Table(headers, [tuple(r) for r in rows])
        section.tables[name] = table
        return table


@dataclass(frozen=True)
class Window:
    """The days the report covers: ``days`` UTC days ending with the latest day that has events."""

    latest: date | None
    days: int

    @property
    def start(self) -> date | None:
        return None if self.latest is None else self.latest - timedelta(days=self.days - 1)

    @property
    def bounds(self) -> tuple[date, date] | None:
        return None if self.start is None or self.latest is None else (self.start, self.latest + timedelta(days=1))

    def describe(self) -> str:
        if self.latest is None:
            return "no events in the warehouse yet"
        return f"{self.start} to {self.latest} (UTC, {self.days} day{'s' if self.days != 1 else ''})"


def find_window(reader: Reader, days: int) -> Window:
    """The latest day with events, from daily_active_users (small), else events."""
    for table, column in (("daily_active_users", "activity_date"), ("events", "event_date")):
        if reader.has("analytics", table, column):
            try:
                rows = reader.wh.query(f"SELECT max({column}) FROM analytics.{table}")
            except Exception as exc:  # unreadable: the sections say so one by one
                log.info("no window from analytics.%s: %s", table, exc)
                rows = []
            if rows and rows[0][0] is not None:
                value = rows[0][0]
                return Window(value.date() if isinstance(value, datetime) else value, days)
    return Window(None, days)


def _missing(section: Section, schema: str, table: str, what: str) -> None:
    section.notes.append(
        f"{schema}.{table} is not in the warehouse (or this role cannot read it): {what}. "
        "It appears after a transform that builds it (`trackway transform`, or the events_transform DAG)."
    )


def stickiness(reader: Reader, window: Window) -> Section:
    section = Section(
        "stickiness",
        "Active people and stickiness",
        ["analytics.stickiness"],
        "Daily, weekly and monthly active people (stitched: a visitor who signs up counts once), and DAU/MAU: "
        "the share of the month's people who come on a given day.",
        days=window.bounds,
    )
    if not reader.has("analytics", "stickiness", "activity_date", "dau", "wau", "mau", "dau_over_mau"):
        _missing(section, "analytics", "stickiness", "no active people to show")
    elif window.start is not None:
        reader.read(
            section,
            "days",
            "SELECT activity_date, dau, wau, mau, dau_over_mau FROM analytics.stickiness "
            "WHERE activity_date >= ? ORDER BY activity_date",
            [window.start],
            ["day", "DAU", "WAU", "MAU", "DAU/MAU"],
        )
    return section


def top_events(reader: Reader, window: Window) -> Section:
    section = Section(
        "events",
        "Top events",
        ["analytics.events"],
        "Track, page and screen calls by name in the window, and the people (stitched) behind them.",
    )
    if not reader.has("analytics", "events", "event_name", "event_type", "person_id", "event_date"):
        _missing(section, "analytics", "events", "no events to count")
    elif window.start is not None:
        reader.read(
            section,
            "top",
            "SELECT coalesce(event_name, '(no name)') AS event_name, count(*) AS events, "
            "count(DISTINCT person_id) AS people FROM analytics.events "
            "WHERE event_date >= ? AND event_type IN ('track', 'page', 'screen') "
            "GROUP BY coalesce(event_name, '(no name)') ORDER BY events DESC, event_name LIMIT 15",
            [window.start],
            ["event", "events", "people"],
        )
    return section


# Session lengths in buckets, in the order the chart shows them.
LENGTH_BUCKETS = ("under 1 min", "1-5 min", "5-15 min", "15-30 min", "30-60 min", "over 1 h")


def sessions(reader: Reader, window: Window) -> Section:
    section = Section(
        "sessions",
        "Sessions and their length",
        ["analytics.sessions"],
        "Sessions started per day with their median length, and how long sessions last.",
        days=window.bounds,
    )
    if not reader.has("analytics", "sessions", "session_date", "duration_seconds", "events"):
        _missing(section, "analytics", "sessions", "no sessions to show")
        return section
    if window.start is None:
        return section
    reader.read(
        section,
        "days",
        "SELECT session_date, count(*) AS sessions, "
        "round(CAST(percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_seconds) AS NUMERIC) / 60, 1) "
        "AS median_minutes, round(CAST(avg(events) AS NUMERIC), 1) AS events_per_session "
        "FROM analytics.sessions WHERE session_date >= ? GROUP BY session_date ORDER BY session_date",
        [window.start],
        ["day", "sessions", "median length (min)", "events per session"],
    )
    bucket = (
        "CASE WHEN duration_seconds < 60 THEN 0 WHEN duration_seconds < 300 THEN 1 "
        "WHEN duration_seconds < 900 THEN 2 WHEN duration_seconds < 1800 THEN 3 "
        "WHEN duration_seconds < 3600 THEN 4 ELSE 5 END"
    )
    lengths = reader.read(
        section,
        "lengths",
        f"SELECT {bucket} AS bucket, count(*) AS sessions FROM analytics.sessions "
        f"WHERE session_date >= ? GROUP BY {bucket} ORDER BY 1",
        [window.start],
        ["length", "sessions"],
    )
    if lengths is not None:
        lengths.rows = [(LENGTH_BUCKETS[int(b)], n) for b, n in lengths.rows]
    return section


def page_paths(reader: Reader, window: Window) -> Section:
    section = Section(
        "paths",
        "Page paths",
        ["analytics.page_paths"],
        "Where sessions start and end, and the most common moves from one page to the next.",
    )
    if not reader.has("analytics", "page_paths", "session_date", "transition_type", "from_page_path", "sessions"):
        _missing(section, "analytics", "page_paths", "no page paths to show")
        return section
    if window.start is None:
        return section
    for name, kind, column in (("entry", "entry", "to_page_path"), ("exit", "exit", "from_page_path")):
        reader.read(
            section,
            name,
            f"SELECT {column}, sum(sessions) AS sessions FROM analytics.page_paths "
            "WHERE transition_type = ? AND session_date >= ? "
            f"GROUP BY {column} ORDER BY sessions DESC, {column} LIMIT 10",
            [kind, window.start],
            ["page", "sessions"],
        )
    reader.read(
        section,
        "next",
        "SELECT from_page_path, to_page_path, sum(transitions) AS transitions, sum(sessions) AS sessions "
        "FROM analytics.page_paths WHERE transition_type = 'next' AND session_date >= ? "
        "GROUP BY from_page_path, to_page_path ORDER BY transitions DESC, from_page_path, to_page_path LIMIT 20",
        [window.start],
        ["from", "to", "transitions", "sessions"],
    )
    return section


def funnels(reader: Reader, window: Window) -> Section:
    section = Section(
        "funnels",
        "Funnels",
        ["analytics.funnels"],
        "The funnels declared in metrics.yaml: people who entered (step 1) in the window and how many reached "
        "each step within the conversion window; then the last step's conversion by first-touch utm_source.",
    )
    if not reader.has("analytics", "funnels", "funnel_name", "step_number", "reached_people", "entered_people"):
        _missing(section, "analytics", "funnels", "no funnel is declared or built")
        return section
    if window.start is None:
        return section
    reader.read(
        section,
        "steps",
        "SELECT funnel_name, step_number, max(step_name) AS step_name, sum(reached_people) AS people, "
        "sum(entered_people) AS entered FROM analytics.funnels WHERE entry_date >= ? "
        "GROUP BY funnel_name, step_number ORDER BY funnel_name, step_number",
        [window.start],
        ["funnel", "step", "name", "people", "entered"],
    )
    reader.read(
        section,
        "sources",
        "SELECT f.funnel_name, f.first_touch_utm_source, sum(CASE WHEN f.step_number = 1 THEN f.reached_people "
        "ELSE 0 END) AS entered, sum(CASE WHEN f.step_number = last.steps THEN f.reached_people ELSE 0 END) "
        "AS converted FROM analytics.funnels AS f INNER JOIN (SELECT funnel_name, max(step_number) AS steps "
        "FROM analytics.funnels GROUP BY funnel_name) AS last ON f.funnel_name = last.funnel_name "
        "WHERE f.entry_date >= ? GROUP BY f.funnel_name, f.first_touch_utm_source "
        "ORDER BY f.funnel_name, entered DESC, f.first_touch_utm_source",
        [window.start],
        ["funnel", "first touch", "entered", "converted"],
    )
    return section


def retention(reader: Reader, window: Window) -> Section:
    section = Section(
        "retention",
        "Retention cohorts",
        ["analytics.retention_cohorts"],
        "People by the week (Monday, UTC) of their first active day, and the share of them active N weeks "
        "later. Faded cells are weeks still under way. The latest twelve cohorts, whatever the window.",
    )
    if not reader.has("analytics", "retention_cohorts", "cohort_week", "week_number", "retention_rate"):
        _missing(section, "analytics", "retention_cohorts", "no cohorts to show")
        return section
    reader.read(
        section,
        "cohorts",
        "SELECT cohort_week, week_number, cohort_people, active_people, retention_rate, is_complete_week "
        "FROM analytics.retention_cohorts WHERE cohort_week IN (SELECT DISTINCT cohort_week "
        "FROM analytics.retention_cohorts ORDER BY cohort_week DESC LIMIT 12) ORDER BY cohort_week, week_number",
        [],
        ["cohort week", "week", "people", "active", "retention", "complete week"],
    )
    return section


def experiments(reader: Reader, window: Window) -> Section:
    section = Section(
        "experiments",
        "Experiments",
        ["analytics.experiment_results"],
        "Per experiment and variant: people exposed, the conversion rate to the declared goal with its 95% "
        "(Wilson) interval, and the lift against the control with its 95% interval and two-sided p-value "
        "(pooled two-proportion z-test). All exposures so far, whatever the window.",
    )
    needed = ("experiment_id", "variant", "exposed_people", "conversion_rate", "conversion_rate_ci_low")
    if not reader.has("analytics", "experiment_results", *needed):
        _missing(section, "analytics", "experiment_results", "no experiment results to show")
        return section
    reader.read(
        section,
        "variants",
        "SELECT experiment_id, variant, is_control, goal_event, exposed_people, converted_people, conversion_rate, "
        "conversion_rate_ci_low, conversion_rate_ci_high, absolute_lift, absolute_lift_ci_low, "
        "absolute_lift_ci_high, relative_lift, p_value, is_significant FROM analytics.experiment_results "
        "ORDER BY experiment_id, is_control DESC, variant",
        [],
        [
            "experiment",
            "variant",
            "control",
            "goal",
            "exposed",
            "converted",
            "rate",
            "rate 95% low",
            "rate 95% high",
            "lift",
            "lift 95% low",
            "lift 95% high",
            "relative lift",
            "p-value",
            "significant",
        ],
    )
    return section


def plan_health(reader: Reader, window: Window) -> Section:
    section = Section(
        "health",
        "Tracking-plan health",
        ["analytics.tracking_plan_violations", "raw.events_quarantine", "analytics.events_rejected"],
        "Events that broke the tracking plan (flagged, all time), events the collector quarantined in the "
        "window, and rows the transform rejected, by event.",
    )
    if reader.has("analytics", "tracking_plan_violations", "event_name", "kind", "violation_count"):
        reader.read(
            section,
            "violations",
            "SELECT coalesce(event_name, '(no name)') AS event_name, kind, sum(violation_count) AS violations "
            "FROM analytics.tracking_plan_violations GROUP BY coalesce(event_name, '(no name)'), kind "
            "ORDER BY violations DESC, event_name, kind LIMIT 40",
            [],
            ["event", "kind", "violations"],
        )
    else:
        section.notes.append(
            "analytics.tracking_plan_violations is not in the warehouse: there is no tracking plan "
            "(TRACKWAY_PLAN_DIR), or no transform has run with one."
        )
    if reader.has("raw", "events_quarantine", "event", "reason", "received_at"):
        if window.start is not None:
            reader.read(
                section,
                "quarantine",
                "SELECT coalesce(event, '(no name)') AS event, coalesce(reason, '') AS reason, count(*) AS events "
                "FROM raw.events_quarantine WHERE received_at >= ? GROUP BY coalesce(event, '(no name)'), "
                "coalesce(reason, '') ORDER BY events DESC, event, reason LIMIT 40",
                [window.start.isoformat()],  # received_at is ISO 8601 text in raw
                ["event", "reason", "events"],
            )
    else:
        section.notes.append("raw.events_quarantine is not readable here: quarantine is not shown.")
    if reader.has("analytics", "events_rejected", "reject_reason"):
        reader.read(
            section,
            "rejected",
            "SELECT reject_reason, count(*) AS rows_rejected FROM analytics.events_rejected "
            "GROUP BY reject_reason ORDER BY rows_rejected DESC, reject_reason LIMIT 20",
            [],
            ["reason", "rows"],
        )
    return section


def marketplace(reader: Reader, window: Window) -> Section:
    section = Section(
        "marketplace",
        "Marketplace: neighbourhoods",
        ["analytics_x.listing_viewed", "analytics_x.showing_requested", "app.bookings", "app.listings"],
        "Listing views (events joined with the product's listings in analytics_x), showing requests and "
        "bookings by neighbourhood, placed at the mean position of the neighbourhood's listings; no map "
        "tiles, so nothing is fetched.",
    )
    needed = ("listing_id", "listing__city", "listing__neighbourhood", "listing__latitude", "listing__longitude")
    if not reader.has("analytics_x", "listing_viewed", *needed):
        section.notes.append(
            "analytics_x.listing_viewed (with listing__neighbourhood, latitude and longitude) is not in the "
            "warehouse: the product database is not synced (docs/app-data.md) or the plan declares no "
            "`references: app.listings.id`. This section is for the demo marketplace's shape."
        )
        return section
    if window.start is None:
        return section
    dated = reader.has("analytics_x", "listing_viewed", "event_date")
    reader.read(
        section,
        "views",
        "SELECT listing__city, listing__neighbourhood, count(*) AS views, count(DISTINCT listing_id) AS listings, "
        "avg(listing__latitude) AS latitude, avg(listing__longitude) AS longitude FROM analytics_x.listing_viewed "
        f"WHERE listing__neighbourhood IS NOT NULL{' AND event_date >= ?' if dated else ''} "
        "GROUP BY listing__city, listing__neighbourhood ORDER BY views DESC, listing__city, listing__neighbourhood",
        [window.start] if dated else [],
        ["city", "neighbourhood", "views", "listings", "latitude", "longitude"],
    )
    if reader.has("analytics_x", "showing_requested", "listing__city", "listing__neighbourhood", "event_date"):
        reader.read(
            section,
            "showings",
            "SELECT listing__city, listing__neighbourhood, count(*) AS showings FROM analytics_x.showing_requested "
            "WHERE listing__neighbourhood IS NOT NULL AND event_date >= ? "
            "GROUP BY listing__city, listing__neighbourhood",
            [window.start],
            ["city", "neighbourhood", "showings"],
        )
    if reader.has("app", "bookings", "listing_id") and reader.has("app", "listings", "id", "neighbourhood", "city"):
        # Bookings the product still has (app_sync marks the ones it deleted), made in the window when they say when.
        where, params = ["l.neighbourhood IS NOT NULL"], []
        if reader.has("app", "bookings", "_trackway_deleted_at"):
            where.append("b._trackway_deleted_at IS NULL")
        if reader.has("app", "bookings", "created_at"):
            where.append("b.created_at >= ?")
            params.append(window.start)
        reader.read(
            section,
            "bookings",
            "SELECT l.city, l.neighbourhood, count(*) AS bookings FROM app.bookings AS b "
            "INNER JOIN app.listings AS l ON CAST(b.listing_id AS VARCHAR) = CAST(l.id AS VARCHAR) "
            f"WHERE {' AND '.join(where)} GROUP BY l.city, l.neighbourhood",
            params,
            ["city", "neighbourhood", "bookings"],
        )
    return section


SECTIONS: tuple[Callable[[Reader, Window], Section], ...] = (
    stickiness,
    top_events,
    sessions,
    page_paths,
    funnels,
    retention,
    experiments,
    plan_health,
    marketplace,
)
