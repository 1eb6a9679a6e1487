"""The report's charts: Vega-Lite specs built with Altair, rendered to SVG by vl-convert (adr: report).

Data is inline in each spec (``alt.Data(values=...)``), never a URL, and no
chart uses an image mark, so the SVG refers to nothing outside itself. Names
from the warehouse (events, pages, variants) are data values: Vega writes them
as SVG text, escaped by its serializer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import altair as alt

from trackway.report.data import LENGTH_BUCKETS, Section

WIDTH = 560
HEIGHT = 220
ACCENT = "#3f51b5"


@dataclass
class Chart:
    """One chart of a section: its title and its Vega-Lite spec (a dict, JSON-ready)."""

    title: str
    spec: dict[str, Any]


def _data(values: list[dict[str, Any]]) -> alt.Data:
    return alt.Data(values=values)


def _spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """Altair validates the spec against Vega-Lite's schema here: a mistake fails, it does not draw nothing."""
    spec: dict[str, Any] = chart.to_dict()
    config = spec.setdefault("config", {})
    config["font"] = "sans-serif"
    config.setdefault("view", {"stroke": None})
    return spec


def _days(section: Section) -> alt.X:
    """The window's days in UTC (the report's days are UTC days, whatever the reader's zone), each a band."""
    domain: Any = alt.Undefined
    if section.days is not None:
        first, end = section.days
        domain = [alt.DateTime(year=d.year, month=d.month, date=d.day, utc=True) for d in (first, end)]
    return alt.X("utcyearmonthdate(day):T", title=None, scale=alt.Scale(type="utc", domain=domain))


def stickiness(section: Section) -> list[Chart]:
    days = section.tables.get("days")
    if not days or not days.rows:
        return []
    records = days.records("day", "DAU", "WAU", "MAU", "DAU/MAU")
    people = (
        alt.Chart(_data(records))
        .transform_fold(["DAU", "WAU", "MAU"], as_=["measure", "people"])
        .mark_line(point=True)
        .encode(
            x=_days(section),
            y=alt.Y("people:Q", title="people"),
            color=alt.Color("measure:N", sort=["DAU", "WAU", "MAU"], title=None),
        )
        .properties(width=WIDTH, height=HEIGHT)
    )
    ratio = (
        alt.Chart(_data(records))
        .mark_line(point=True, color=ACCENT)
        .encode(
            x=_days(section),
            y=alt.Y("DAU/MAU:Q", title="DAU/MAU", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
        )
        .properties(width=WIDTH, height=HEIGHT * 2 // 3)
    )
    return [Chart("Daily, weekly and monthly active people", _spec(people)), Chart("DAU/MAU", _spec(ratio))]


def _bars(records: list[dict[str, Any]], label: str, value: str, title: str, color: str = ACCENT) -> alt.Chart:
    return (
        alt.Chart(_data(records))
        .mark_bar(color=color)
        .encode(
            y=alt.Y(f"{label}:N", sort="-x", title=None, axis=alt.Axis(labelLimit=260)),
            x=alt.X(f"{value}:Q", title=title),
        )
        .properties(width=WIDTH - 160, height=alt.Step(18))
    )


def top_events(section: Section) -> list[Chart]:
    top = section.tables.get("top")
    if not top or not top.rows:
        return []
    return [
        Chart("Events by name", _spec(_bars(top.records("event", "events", "people"), "event", "events", "events")))
    ]


def sessions(section: Section) -> list[Chart]:
    charts = []
    days = section.tables.get("days")
    if days and days.rows:
        records = days.records("day", "sessions", "median", "per_session")
        # A time unit gives the bars a band each day, however few the days.
        base = alt.Chart(_data(records)).encode(x=_days(section))
        layered = alt.layer(
            base.mark_bar(color=ACCENT, opacity=0.7).encode(y=alt.Y("sessions:Q", title="sessions")),
            base.mark_line(point=True, color="#e65100").encode(y=alt.Y("median:Q", title="median length (min)")),
        ).resolve_scale(y="independent")
        charts.append(Chart("Sessions per day (bars) and median length (line)", _spec(layered.properties(width=WIDTH))))
    lengths = section.tables.get("lengths")
    if lengths and lengths.rows:
        chart = (
            alt.Chart(_data(lengths.records("length", "sessions")))
            .mark_bar(color=ACCENT)
            .encode(
                x=alt.X("length:N", sort=list(LENGTH_BUCKETS), title="session length", axis=alt.Axis(labelAngle=0)),
                y=alt.Y("sessions:Q", title="sessions"),
            )
            .properties(width=WIDTH, height=HEIGHT * 2 // 3)
        )
        charts.append(Chart("How long sessions last", _spec(chart)))
    return charts


def page_paths(section: Section) -> list[Chart]:
    charts = []
    for name, title in (("entry", "Top entry pages"), ("exit", "Top exit pages")):
        table = section.tables.get(name)
        if table and table.rows:
            charts.append(Chart(title, _spec(_bars(table.records("page", "sessions"), "page", "sessions", "sessions"))))
    moves = section.tables.get("next")
    if moves and moves.rows:
        chart = (
            alt.Chart(_data(moves.records("from", "to", "transitions", "sessions")))
            .mark_rect()
            .encode(
                x=alt.X("to:N", title="next page", axis=alt.Axis(labelAngle=-40, labelLimit=160)),
                y=alt.Y("from:N", title="page", axis=alt.Axis(labelLimit=200)),
                color=alt.Color("transitions:Q", scale=alt.Scale(scheme="blues"), title="moves"),
            )
            .properties(width=alt.Step(26), height=alt.Step(22))
        )
        charts.append(Chart("Next pages: the most common moves", _spec(chart)))
    return charts


def funnels(section: Section) -> list[Chart]:
    steps = section.tables.get("steps")
    if not steps or not steps.rows:
        return []
    charts = []
    records = steps.records("funnel", "step", "name", "people", "entered")
    for funnel in dict.fromkeys(r["funnel"] for r in records):
        rows = [r for r in records if r["funnel"] == funnel]
        entered = next((r["people"] for r in rows if r["step"] == 1), 0) or 0
        for r in rows:
            r["label"] = f"{r['step']}. {r['name']}"
            r["share"] = (r["people"] or 0) / entered if entered else 0.0
        base = alt.Chart(_data(rows)).encode(
            y=alt.Y("label:N", sort=alt.EncodingSortField("step"), title=None, axis=alt.Axis(labelLimit=260)),
            x=alt.X("people:Q", title="people"),
        )
        chart = alt.layer(
            base.mark_bar(color=ACCENT),
            base.mark_text(align="left", dx=4).encode(text=alt.Text("share:Q", format=".1%")),
        ).properties(width=WIDTH - 160, height=alt.Step(26))
        charts.append(Chart(f"Funnel {funnel}: people per step (share of entered)", _spec(chart)))
    return charts


def retention(section: Section) -> list[Chart]:
    cohorts = section.tables.get("cohorts")
    if not cohorts or not cohorts.rows:
        return []
    records = cohorts.records("cohort", "week", "people", "active", "retention", "complete")
    for r in records:
        r["cohort"] = f"{r['cohort']} ({r['people']})"
    base = alt.Chart(_data(records)).encode(
        x=alt.X("week:O", title="weeks after the first active week"),
        y=alt.Y("cohort:O", title="cohort week (people)", sort="ascending"),
    )
    chart = alt.layer(
        base.mark_rect().encode(
            color=alt.Color("retention:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]), title="active"),
            opacity=alt.condition("datum.complete", alt.value(1.0), alt.value(0.45)),
        ),
        base.mark_text(fontSize=10).encode(
            text=alt.Text("retention:Q", format=".0%"),
            color=alt.condition("datum.retention > 0.5", alt.value("white"), alt.value("black")),
        ),
    ).properties(width=alt.Step(40), height=alt.Step(24))
    return [Chart("Share of each cohort active N weeks later", _spec(chart))]


EXPERIMENT_FIELDS = (
    "experiment",
    "variant",
    "control",
    "goal",
    "exposed",
    "converted",
    "rate",
    "low",
    "high",
    "lift",
    "lift_low",
    "lift_high",
    "relative_lift",
    "p_value",
    "significant",
)


def experiments(section: Section) -> list[Chart]:
    variants = section.tables.get("variants")
    if not variants or not variants.rows:
        return []
    records = variants.records(*EXPERIMENT_FIELDS)
    charts = []
    for experiment in dict.fromkeys(r["experiment"] for r in records):
        rows = [r for r in records if r["experiment"] == experiment and r["rate"] is not None]
        if not rows:
            continue
        base = alt.Chart(_data(rows)).encode(y=alt.Y("variant:N", title=None, sort=None))
        chart = alt.layer(
            base.mark_rule(color="#555", strokeWidth=2).encode(
                x=alt.X("low:Q", title="conversion rate (95% interval)", axis=alt.Axis(format="%")), x2="high:Q"
            ),
            base.mark_point(filled=True, size=90).encode(
                x="rate:Q",
                color=alt.condition("datum.control", alt.value("#757575"), alt.value(ACCENT)),
            ),
        ).properties(width=WIDTH - 160, height=alt.Step(28))
        charts.append(Chart(f"Experiment {experiment}: conversion to {rows[0]['goal']}", _spec(chart)))
    return charts


def plan_health(section: Section) -> list[Chart]:
    charts = []
    violations = section.tables.get("violations")
    if violations and violations.rows:
        chart = (
            alt.Chart(_data(violations.records("event", "kind", "violations")))
            .mark_bar()
            .encode(
                y=alt.Y("event:N", sort="-x", title=None, axis=alt.Axis(labelLimit=260)),
                x=alt.X("sum(violations):Q", title="violations"),
                color=alt.Color("kind:N", title="kind"),
            )
            .properties(width=WIDTH - 200, height=alt.Step(18))
        )
        charts.append(Chart("Tracking-plan violations by event", _spec(chart)))
    quarantine = section.tables.get("quarantine")
    if quarantine and quarantine.rows:
        chart = (
            alt.Chart(_data(quarantine.records("event", "reason", "events")))
            .mark_bar()
            .encode(
                y=alt.Y("event:N", sort="-x", title=None, axis=alt.Axis(labelLimit=260)),
                x=alt.X("sum(events):Q", title="events quarantined"),
                color=alt.Color("reason:N", title="reason", legend=alt.Legend(labelLimit=260)),
            )
            .properties(width=WIDTH - 200, height=alt.Step(18))
        )
        charts.append(Chart("Quarantined by the collector, by event", _spec(chart)))
    return charts


def marketplace(section: Section) -> list[Chart]:
    views = section.tables.get("views")
    if not views or not views.rows:
        return []
    records = views.records("city", "neighbourhood", "views", "listings", "latitude", "longitude")
    extra = {"showings": section.tables.get("showings"), "bookings": section.tables.get("bookings")}
    for column, table in extra.items():
        counts = {(r[0], r[1]): r[2] for r in table.rows} if table else {}
        for r in records:
            r[column] = counts.get((r["city"], r["neighbourhood"]), 0) if table else None
    measure = "bookings" if extra["bookings"] else "showings" if extra["showings"] else None
    base = alt.Chart().encode(
        x=alt.X("longitude:Q", scale=alt.Scale(zero=False, padding=18), axis=None),
        y=alt.Y("latitude:Q", scale=alt.Scale(zero=False, padding=14), axis=None),
    )
    points = base.mark_circle(opacity=0.85, stroke="white").encode(
        size=alt.Size("views:Q", title="listing views", scale=alt.Scale(range=[60, 900])),
        color=(
            alt.Color(f"{measure}:Q", scale=alt.Scale(scheme="orangered"), title=measure)
            if measure
            else alt.value(ACCENT)
        ),
    )
    labels = base.mark_text(dy=-12, fontSize=9, color="#333").encode(text="neighbourhood:N")
    chart = (
        alt.layer(points, labels, data=_data(records))
        .properties(width=190, height=150)
        .facet(facet=alt.Facet("city:N", title=None), columns=3)
        .resolve_scale(x="independent", y="independent")
        .configure_view(stroke="#e0e0e0", fill="#f5f7fb")  # each city a panel: the map without its tiles
    )
    title = "Listing views by neighbourhood (size)" + (f", {measure} (colour)" if measure else "")
    return [Chart(title, _spec(chart))]


CHARTS: dict[str, Callable[[Section], list[Chart]]] = {
    "stickiness": stickiness,
    "events": top_events,
    "sessions": sessions,
    "paths": page_paths,
    "funnels": funnels,
    "retention": retention,
    "experiments": experiments,
    "health": plan_health,
    "marketplace": marketplace,
}


def _vl_version() -> str | None:
    """The Vega-Lite version Altair writes, if vl-convert has it (else vl-convert's default)."""
    import vl_convert

    match = re.match(r"v?(\d+\.\d+)", alt.SCHEMA_VERSION)
    wanted = match.group(1) if match else None
    return wanted if wanted in vl_convert.get_vegalite_versions() else None


def render_svg(chart: Chart, prefix: str) -> str:
    """The chart as SVG text for inlining; its ids (clip paths, gradients) get ``prefix`` so charts never clash."""
    import vl_convert

    svg: str = vl_convert.vegalite_to_svg(chart.spec, vl_version=_vl_version())
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", svg)
    return re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"', svg)
