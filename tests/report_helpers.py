"""A small demo-shaped warehouse for the report and the analysts' notebook, built in a second.

The marts have the columns dbt gives them (tests/test_report.py checks these
against the models' yml), filled with three weeks of a marketplace like the
demo's, plus hostile names: an event called ``<script>``, a page path that
closes an attribute, a variant that closes an SVG. Building it through dbt
would cost a minute per warehouse; the marts themselves are tested in
test_dbt_metrics.py, and the demo test reads a report written from real marts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

HOSTILE_EVENT = '<script>alert("event")</script>'
HOSTILE_PAGE = '/x"><img src=http://evil.example/pixel.gif>'
HOSTILE_VARIANT = "</svg><script>alert(1)</script>"
LATEST = date(2026, 11, 21)

# (schema, table) -> [(column, type)]: what the report reads, as dbt builds it.
TABLES: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("analytics", "daily_active_users"): [
        ("activity_date", "DATE"),
        ("active_people", "BIGINT"),
        ("weekly_active_people", "BIGINT"),
        ("monthly_active_people", "BIGINT"),
    ],
    ("analytics", "stickiness"): [
        ("activity_date", "DATE"),
        ("dau", "BIGINT"),
        ("wau", "BIGINT"),
        ("mau", "BIGINT"),
        ("dau_over_mau", "DOUBLE PRECISION"),
        ("dau_over_wau", "DOUBLE PRECISION"),
        ("wau_over_mau", "DOUBLE PRECISION"),
    ],
    ("analytics", "events"): [
        ("event_id", "TEXT"),
        ("event_type", "TEXT"),
        ("event_name", "TEXT"),
        ("person_id", "TEXT"),
        ("event_date", "DATE"),
        ("page_path", "TEXT"),
    ],
    ("analytics", "sessions"): [
        ("session_id", "TEXT"),
        ("person_id", "TEXT"),
        ("session_date", "DATE"),
        ("duration_seconds", "DOUBLE PRECISION"),
        ("events", "BIGINT"),
    ],
    ("analytics", "page_paths"): [
        ("session_date", "DATE"),
        ("transition_type", "TEXT"),
        ("from_page_path", "TEXT"),
        ("to_page_path", "TEXT"),
        ("transitions", "BIGINT"),
        ("sessions", "BIGINT"),
    ],
    ("analytics", "funnels"): [
        ("funnel_name", "TEXT"),
        ("entry_date", "DATE"),
        ("first_touch_utm_source", "TEXT"),
        ("step_number", "INTEGER"),
        ("step_name", "TEXT"),
        ("step_event", "TEXT"),
        ("entered_people", "BIGINT"),
        ("reached_people", "BIGINT"),
    ],
    ("analytics", "retention_cohorts"): [
        ("cohort_week", "DATE"),
        ("week_number", "INTEGER"),
        ("cohort_people", "BIGINT"),
        ("active_people", "BIGINT"),
        ("retention_rate", "DOUBLE PRECISION"),
        ("is_complete_week", "BOOLEAN"),
    ],
    ("analytics", "experiment_results"): [
        ("experiment_id", "TEXT"),
        ("variant", "TEXT"),
        ("is_control", "BOOLEAN"),
        ("goal_event", "TEXT"),
        ("exposed_people", "BIGINT"),
        ("converted_people", "BIGINT"),
        ("conversion_rate", "DOUBLE PRECISION"),
        ("conversion_rate_ci_low", "DOUBLE PRECISION"),
        ("conversion_rate_ci_high", "DOUBLE PRECISION"),
        ("absolute_lift", "DOUBLE PRECISION"),
        ("absolute_lift_ci_low", "DOUBLE PRECISION"),
        ("absolute_lift_ci_high", "DOUBLE PRECISION"),
        ("relative_lift", "DOUBLE PRECISION"),
        ("p_value", "DOUBLE PRECISION"),
        ("is_significant", "BOOLEAN"),
    ],
    ("analytics", "tracking_plan_violations"): [
        ("event_name", "TEXT"),
        ("source_id", "TEXT"),
        ("kind", "TEXT"),
        ("property", "TEXT"),
        ("violation_count", "BIGINT"),
    ],
    ("analytics", "events_rejected"): [("reject_reason", "TEXT")],
    ("raw", "events_quarantine"): [("event", "TEXT"), ("reason", "TEXT"), ("received_at", "TEXT")],
    ("analytics_x", "listing_viewed"): [
        ("event_id", "TEXT"),
        ("event_date", "DATE"),
        ("listing_id", "TEXT"),
        ("listing__city", "TEXT"),
        ("listing__neighbourhood", "TEXT"),
        ("listing__latitude", "DOUBLE PRECISION"),
        ("listing__longitude", "DOUBLE PRECISION"),
    ],
    ("analytics_x", "showing_requested"): [
        ("event_id", "TEXT"),
        ("event_date", "DATE"),
        ("listing__city", "TEXT"),
        ("listing__neighbourhood", "TEXT"),
    ],
    ("app", "listings"): [("id", "TEXT"), ("city", "TEXT"), ("neighbourhood", "TEXT")],
    ("app", "bookings"): [
        ("id", "TEXT"),
        ("listing_id", "TEXT"),
        ("created_at", "TIMESTAMP"),
        ("_trackway_deleted_at", "TIMESTAMP"),
    ],
}

PAGES = ["/", "/search", "/listings/lst_00042", "/signup", HOSTILE_PAGE]
EVENTS = ["Listings Searched", "Listing Viewed", "Showing Requested", "Signed Up", HOSTILE_EVENT]
NEIGHBOURHOODS = [
    ("Lisbon", "Alfama", 38.7118, -9.1300),
    ("Lisbon", "Baixa", 38.7110, -9.1370),
    ("Lisbon", "Belém", 38.6970, -9.2060),
    ("Berlin", "Kreuzberg", 52.4990, 13.4030),
    ("Berlin", "Mitte", 52.5200, 13.4050),
]


def rows() -> dict[tuple[str, str], list[tuple[Any, ...]]]:
    """Three weeks ending LATEST, deterministic."""
    days = [LATEST - timedelta(days=n) for n in range(20, -1, -1)]
    out: dict[tuple[str, str], list[tuple[Any, ...]]] = {key: [] for key in TABLES}
    for i, day in enumerate(days):
        dau = 40 + (i * 7) % 23
        wau, mau = min(60 + 3 * i, 200), 80 + 6 * i
        out["analytics", "daily_active_users"].append((day, dau, wau, mau))
        out["analytics", "stickiness"].append((day, dau, wau, mau, dau / mau, dau / wau, wau / mau))
        for n, name in enumerate(EVENTS):
            for k in range(len(EVENTS) - n):
                out["analytics", "events"].append((f"e-{i}-{n}-{k}", "track", name, f"p-{(i + k) % 30}", day, None))
        for k in range(6):
            out["analytics", "sessions"].append((f"s-{i}-{k}", f"p-{k}", day, 30.0 + 400 * k, 3 + k))
        out["analytics", "page_paths"] += [
            (day, "entry", None, "/", 5, 5),
            (day, "entry", None, HOSTILE_PAGE, 1, 1),
            (day, "next", "/", "/search", 4, 4),
            (day, "next", "/search", "/listings/lst_00042", 3, 2),
            (day, "next", HOSTILE_PAGE, "/", 1, 1),
            (day, "exit", "/listings/lst_00042", None, 4, 4),
            (day, "exit", "/signup", None, 2, 2),
        ]
        for source, entered in (("google", 12), ("(none)", 7), (HOSTILE_EVENT, 1)):
            reached = entered
            for step, event in enumerate(["Listings Searched", "Listing Viewed", "Signed Up"], start=1):
                out["analytics", "funnels"].append(
                    ("renter_activation", day, source, step, event, event, entered, reached)
                )
                reached = reached * 2 // 3
        out["analytics_x", "listing_viewed"] += [
            (f"v-{i}-{k}", day, f"lst_{k:05d}", city, hood, lat + k * 1e-3, lon)
            for k, (city, hood, lat, lon) in enumerate(NEIGHBOURHOODS * 2)
        ]
        out["analytics_x", "showing_requested"] += [
            (f"r-{i}-{k}", day, city, hood) for k, (city, hood, _, _) in enumerate(NEIGHBOURHOODS[: i % 5 + 1])
        ]
        out["raw", "events_quarantine"].append((HOSTILE_EVENT, "property too large", f"{day.isoformat()}T10:00:00Z"))
    monday = LATEST - timedelta(days=LATEST.weekday())
    for c in range(3):
        cohort = monday - timedelta(weeks=2 - c)
        for week in range(3 - c):
            active = 30 if week == 0 else 30 // (week + 2)
            out["analytics", "retention_cohorts"].append((cohort, week, 30, active, active / 30, week < 2 - c))
    out["analytics", "experiment_results"] += [
        ("checkout", "control", True, "Signed Up", 400, 80, 0.20, 0.163, 0.242, None, None, None, None, None, None),
        ("checkout", "treatment", False, "Signed Up", 400, 112, 0.28, 0.238, 0.326, 0.08, 0.02, 0.14, 0.4, 0.008, True),
        (
            "checkout",
            HOSTILE_VARIANT,
            False,
            "Signed Up",
            40,
            9,
            0.225,
            0.12,
            0.38,
            0.025,
            -0.1,
            0.16,
            0.12,
            0.71,
            False,
        ),
    ]
    out["analytics", "tracking_plan_violations"] += [
        ("Listing Viewed", "demo", "wrong_type", "price_per_night", 3),
        (HOSTILE_EVENT, "demo", "unplanned_event", None, 2),
    ]
    out["analytics", "events_rejected"].append(("unparseable timestamp",))
    out["app", "listings"] += [(f"lst_{k:05d}", c, h) for k, (c, h, _, _) in enumerate(NEIGHBOURHOODS)]
    # Nine bookings in the window, one the product deleted, one made long before it.
    booked = datetime(2026, 11, 20, 12)
    out["app", "bookings"] += [(f"b-{k}", f"lst_{k % 5:05d}", booked, None) for k in range(9)]
    out["app", "bookings"] += [
        ("b-gone", "lst_00000", booked, booked),
        ("b-old", "lst_00000", datetime(2025, 1, 1), None),
    ]
    return out


def build(execute: Callable[[str, Sequence[Any]], Any], placeholder: str = "?") -> None:
    """Create the schemas and tables and fill them, through ``execute(sql, params)`` (any DB-API driver)."""
    data = rows()
    for schema in sorted({s for s, _ in TABLES}):
        execute(f"CREATE SCHEMA IF NOT EXISTS {schema}", [])
    for (schema, table), columns in TABLES.items():
        execute(f"CREATE TABLE {schema}.{table} ({', '.join(f'{c} {t}' for c, t in columns)})", [])
        marks = ", ".join([placeholder] * len(columns))
        for row in data[schema, table]:
            execute(f"INSERT INTO {schema}.{table} VALUES ({marks})", list(row))


def build_duckdb(path: str) -> None:
    import duckdb

    con = duckdb.connect(path)
    try:
        build(con.execute)
    finally:
        con.close()


def build_postgres(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        build(con.execute, placeholder="%s")
