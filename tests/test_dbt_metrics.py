"""The product-metric marts (analytics.stickiness, funnels, retention_cohorts, experiment_results,
page_paths) on real warehouses, against numbers worked out by hand from a small known dataset.

Three loads, a day and two weeks apart, each followed by one incremental `dbt build`, on DuckDB
and on a real PostgreSQL; then a `--full-refresh` over the same raw rows must give the same
tables. The funnels and experiment goals reach dbt as Trackway hands them over,
JSON in TRACKWAY_DBT_METRICS; between the second and the third build a funnel is added and
another removed, as an analyst editing metrics.yaml would.

The data (2026-11-02 is a Monday, "day 0"):

* funnel `activation` (24 h): Listings Searched -> Listing Viewed -> Signed Up -> Showing Requested.
  anon-1 (first touch google) goes all the way; anon-5 searched at 08:00 without a campaign and
  two weeks later turns out to be u-1, anon-1's user: u-1 then entered at 08:00 with first touch
  '(none)'. anon-2's sign-up at 11:30 arrives a day late. anon-3 viewed before searching and
  signed up before viewing (order matters). anon-4 searched at 23:00 and viewed after midnight
  (inside the window, entry day 0), then searched again (entry day 1). anon-5 also viewed 25 h
  after its search (outside). anon-7 (facebook) becomes u-7, who searches from a server.
* funnel `lisbon` (1 h), added for the third build: Listings Searched {city: Lisbon} ->
  Listing Viewed {city: Lisbon}.
* experiments: `checkout` (Experiment Viewed; variants control 40 people, 8 converting, and
  treatment 40, 14 converting; a purchase before the exposure and a second purchase do not
  count), `hero` (context.experiments; declared control A; a 1 h window; goal filtered on
  currency USD), `banner` (exposures only, no goal declared).
"""

from __future__ import annotations

import json
import math
import shutil
from datetime import UTC, date, datetime, timedelta
from statistics import NormalDist
from typing import Any

import pytest

from dbt_helpers import INSERT_RAW, Warehouse, dbt_test_statuses, make_warehouse, raw_row
from test_dbt_incremental import ev, snapshot

DAY0 = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
LOADS = [DAY0 + timedelta(hours=13), DAY0 + timedelta(days=1, hours=13), DAY0 + timedelta(days=15, hours=13)]
METRIC_MARTS = ["stickiness", "funnels", "retention_cohorts", "experiment_results", "page_paths"]

ACTIVATION = {
    "name": "activation",
    "conversion_window_hours": 24,
    "steps": ["Listings Searched", "Listing Viewed", "Signed Up", "Showing Requested"],
}
LISBON = {
    "name": "lisbon",
    "conversion_window_hours": 1,
    "steps": [
        {"event": "Listings Searched", "properties": {"city": "Lisbon"}, "label": "Searched Lisbon"},
        {"event": "Listing Viewed", "properties": {"city": ["Lisbon"]}},
    ],
}
DROPPED = {"name": "dropped", "conversion_window_hours": 5, "steps": ["Listings Searched", "Clicked"]}
# Names are data, never SQL or Jinja: quotes, backslashes, braces and a newline reach the table as they are.
HOSTILE_EVENT = 'it\'s {{ 7 * 7 }} \\ "quoted"\nline'
HOSTILE = {
    "name": "hostile",
    "conversion_window_hours": 1,
    "steps": [
        {"event": "Listings Searched", "properties": {"city": ["Lisbon", "O'Porto {% raw %}"]}},
        {"event": HOSTILE_EVENT, "label": "'; drop table analytics.events; --"},
    ],
}
EXPERIMENTS = [
    {"experiment_id": "checkout", "goal": "Order Completed"},
    {
        "experiment_id": "hero",
        "goal": {"event": "Order Completed", "properties": {"currency": "USD"}},
        "control": "A",
        "conversion_window_hours": 1,
    },
]
# What each build sees: the third adds `lisbon` and drops `dropped`.
DECLARED = [
    {"funnels": [ACTIVATION, DROPPED], "experiments": EXPERIMENTS},
    {"funnels": [ACTIVATION, DROPPED], "experiments": EXPERIMENTS},
    {"funnels": [ACTIVATION, LISBON, HOSTILE], "experiments": EXPERIMENTS},
]
CHECKOUT = {"control": (40, 8), "treatment": (40, 14)}
HERO = {"A": (10, 3), "B": (10, 5)}


def at(hhmm: str, day: int = 0) -> datetime:
    hours, minutes = (int(part) for part in hhmm.split(":"))
    return DAY0 + timedelta(days=day, hours=hours, minutes=minutes)


def page(message_id: str, when: datetime, path: str, session: str, **fields: Any) -> str:
    context = {"sessionId": session, "page": {"path": path}, **fields.pop("context", {})}
    return ev(message_id, "page", when, context=context, **fields)


def track(message_id: str, event: str, when: datetime, session: str | None = None, **fields: Any) -> str:
    context = {"sessionId": session} if session else {}
    context.update(fields.pop("context", {}))
    return ev(message_id, "track", when, event=event, context=context, **fields)


GOOGLE = {"campaign": {"source": "google", "medium": "cpc", "name": "autumn"}}
FACEBOOK = {"campaign": {"source": "facebook", "medium": "social", "name": "autumn"}}
NEWSLETTER = {"campaign": {"source": "newsletter", "medium": "email", "name": "weekly"}}


def _experiments() -> list[str]:
    lines = []
    for variant, (people, converting) in CHECKOUT.items():
        for i in range(people):
            who = f"anon-{variant}-{i}"
            viewed = {"experiment_id": "checkout", "experiment_name": "Checkout", "variation_name": variant}
            lines.append(
                track(f"xv-{variant}-{i}", "Experiment Viewed", at("10:00"), anonymousId=who, properties=viewed)
            )
            if i < converting:
                lines.append(track(f"xo-{variant}-{i}", "Order Completed", at("10:30"), anonymousId=who))
        # Bought before seeing the experiment: not a conversion. Bought twice: counts once.
        lines.append(track(f"xb-{variant}", "Order Completed", at("09:00"), anonymousId=f"anon-{variant}-{people - 1}"))
        lines.append(track(f"xo2-{variant}", "Order Completed", at("11:00"), anonymousId=f"anon-{variant}-0"))
    for variant, (people, converting) in HERO.items():
        for i in range(people):
            who = f"anon-hero-{variant}-{i}"
            lines.append(
                track(
                    f"hv-{variant}-{i}",
                    "Clicked",
                    at("10:00"),
                    anonymousId=who,
                    context={"experiments": {"hero": variant}},
                )
            )
            if i < converting:
                usd = {"currency": "USD"}
                lines.append(
                    track(f"ho-{variant}-{i}", "Order Completed", at("10:30"), anonymousId=who, properties=usd)
                )
        # Outside the 1 h window, and in the wrong currency: neither converts.
        lines.append(
            track(
                f"hl-{variant}",
                "Order Completed",
                at("12:00"),
                anonymousId=f"anon-hero-{variant}-{people - 1}",
                properties={"currency": "USD"},
            )
        )
        lines.append(
            track(
                f"he-{variant}",
                "Order Completed",
                at("10:30"),
                anonymousId=f"anon-hero-{variant}-{people - 2}",
                properties={"currency": "EUR"},
            )
        )
    for i, variant in enumerate(["control", "x", "x"]):
        lines.append(
            track(
                f"bv-{i}",
                "Clicked",
                at("10:00"),
                anonymousId=f"anon-banner-{i}",
                context={"experiments": {"banner": variant}},
            )
        )
    return lines


LISBON_CITY = {"city": "Lisbon"}
BATCHES: list[list[str]] = [
    [
        # anon-1: home (google), search, listing, sign-up page; identifies as u-1, signs up, asks for a showing.
        page("p1-home", at("09:55"), "/", "s-1", anonymousId="anon-1", context=GOOGLE),
        page("p1-search", at("10:00"), "/search", "s-1", anonymousId="anon-1"),
        track("t1-search", "Listings Searched", at("10:00"), "s-1", anonymousId="anon-1", properties=LISBON_CITY),
        page("p1-listing", at("10:05"), "/listing", "s-1", anonymousId="anon-1"),
        track("t1-view", "Listing Viewed", at("10:05"), "s-1", anonymousId="anon-1", properties=LISBON_CITY),
        page("p1-signup", at("10:09"), "/signup", "s-1", anonymousId="anon-1"),
        ev("i1", "identify", at("10:10"), anonymousId="anon-1", userId="u-1", context={"sessionId": "s-1"}),
        track("t1-signup", "Signed Up", at("10:11"), "s-1", anonymousId="anon-1", userId="u-1"),
        track("t1-showing", "Showing Requested", at("10:20"), "s-1", anonymousId="anon-1", userId="u-1"),
        # anon-2: search and listing in Berlin (its sign-up arrives a day late).
        page("p2-search", at("10:59"), "/search", "s-2", anonymousId="anon-2"),
        track(
            "t2-search", "Listings Searched", at("11:00"), "s-2", anonymousId="anon-2", properties={"city": "Berlin"}
        ),
        track("t2-view", "Listing Viewed", at("11:01"), "s-2", anonymousId="anon-2", properties={"city": "Berlin"}),
        page("p2-listing", at("11:01"), "/listing", "s-2", anonymousId="anon-2"),
        page("p2-search-again", at("11:03"), "/search", "s-2", anonymousId="anon-2"),
        # anon-3 (google): a listing first, then a search, a sign-up, another listing.
        page("p3-listing", at("08:59"), "/listing", "s-3", anonymousId="anon-3", context=GOOGLE),
        track("t3-view-early", "Listing Viewed", at("09:00"), "s-3", anonymousId="anon-3", properties=LISBON_CITY),
        page("p3-search", at("09:29"), "/search", "s-3", anonymousId="anon-3"),
        track("t3-search", "Listings Searched", at("09:30"), "s-3", anonymousId="anon-3", properties=LISBON_CITY),
        track("t3-signup", "Signed Up", at("09:40"), "s-3", anonymousId="anon-3"),
        track("t3-view", "Listing Viewed", at("09:50"), "s-3", anonymousId="anon-3", properties=LISBON_CITY),
        # anon-5: an early search, no campaign.
        track("t5-search", "Listings Searched", at("08:00"), "s-5", anonymousId="anon-5", properties={"city": "Paris"}),
        # anon-7 (facebook) becomes u-7; u-7's search and view come from a server (no anonymousId).
        page("p7-home", at("07:00"), "/", "s-7", anonymousId="anon-7", context=FACEBOOK),
        ev("i7", "identify", at("12:00"), anonymousId="anon-7", userId="u-7"),
        track("t7-search", "Listings Searched", at("12:05"), "s-7b", userId="u-7", properties=LISBON_CITY),
        track("t7-view", "Listing Viewed", at("12:06"), "s-7b", userId="u-7", properties={"city": "Madrid"}),
        *_experiments(),
    ],
    [
        track("t2-signup", "Signed Up", at("11:30"), "s-2", anonymousId="anon-2"),  # a day late
        page("p3-pricing", at("09:35"), "/pricing", "s-3", anonymousId="anon-3"),  # a day late
        track(
            "t4-search",
            "Listings Searched",
            at("23:00"),
            "s-4",
            anonymousId="anon-4",
            properties=LISBON_CITY,
            context=NEWSLETTER,
        ),
        track("t4-view", "Listing Viewed", at("00:30", 1), "s-4", anonymousId="anon-4", properties=LISBON_CITY),
        track("t4-search-2", "Listings Searched", at("01:00", 1), "s-4", anonymousId="anon-4", properties=LISBON_CITY),
        track("t5-view", "Listing Viewed", at("09:00", 1), "s-5b", anonymousId="anon-5", properties=LISBON_CITY),
    ],
    [
        track("t1-w1", "Clicked", at("10:00", 8), userId="u-1"),
        track("t2-w1", "Clicked", at("10:00", 10), anonymousId="anon-2"),
        track("t8-first", "Clicked", at("10:00", 9), anonymousId="anon-8"),
        track("t8-w2", "Clicked", at("10:00", 14), anonymousId="anon-8"),
        track("t1-w2", "Clicked", at("10:00", 15), userId="u-1"),
        # Two weeks later anon-5 signs in as u-1: its day-0 search becomes u-1's.
        ev("i5", "identify", at("08:00", 15), anonymousId="anon-5", userId="u-1"),
    ],
]


def load_batch(wh: Warehouse, index: int) -> None:
    obj = f"file:///srv/trackway/raw/events/metrics-{index}.ndjson.gz"
    wh.execute(
        INSERT_RAW, [raw_row(line, obj, n, f"load-{index}", LOADS[index]) for n, line in enumerate(BATCHES[index], 1)]
    )


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def built(request, tmp_path_factory):
    """Three incremental builds (the declarations changing before the third), then a full refresh."""
    wh = make_warehouse(request.param, tmp_path_factory.mktemp(f"metrics-{request.param}"), request, "trackway_metrics")
    wh.runs = []
    for index in range(len(BATCHES)):
        load_batch(wh, index)
        wh.env["TRACKWAY_DBT_METRICS"] = json.dumps({**DECLARED[index], "source": "tests/test_dbt_metrics.py"})
        result, seconds = wh.dbt("build")
        wh.runs.append(result)
        print(f"\nincremental build {index + 1} on {wh.kind}: {seconds:.1f}s")
    wh.incremental = snapshot(wh, METRIC_MARTS)
    wh.full_refresh_result, seconds = wh.dbt("build", "--full-refresh")
    print(f"full refresh on {wh.kind}: {seconds:.1f}s")
    wh.full_refresh = snapshot(wh, METRIC_MARTS)
    return wh


def test_every_build_passes_its_data_tests(built):
    for result in [*built.runs, built.full_refresh_result]:
        failing = {name: s for name, s in dbt_test_statuses(result).items() if s != "pass"}
        assert result.success and not failing, failing or result.exception
    models = {r.node.name for r in built.runs[-1].result.results if r.node.resource_type == "model"}
    assert set(METRIC_MARTS) <= models


def test_full_refresh_equals_the_incremental_runs(built):
    for table in METRIC_MARTS:
        assert built.incremental[table] == built.full_refresh[table], table


def _funnels(wh: Warehouse, name: str) -> dict[tuple[int, str], list[int]]:
    rows = wh.query(
        "select entry_date, first_touch_utm_source, step_number, reached_people from analytics.funnels "
        f"where funnel_name = '{name}' order by entry_date, first_touch_utm_source, step_number"
    )
    out: dict[tuple[int, str], list[int]] = {}
    for row in rows:
        out.setdefault(((row["entry_date"] - DAY0.date()).days, row["first_touch_utm_source"]), []).append(
            int(row["reached_people"])
        )
    return out


def test_funnel_step_counts(built):
    assert _funnels(built, "activation") == {
        # u-1 (anon-5's 08:00 search, then anon-1's listing, sign-up and showing) and anon-2 (late sign-up).
        (0, "(none)"): [2, 2, 2, 1],
        (0, "google"): [1, 1, 0, 0],  # anon-3: signed up before viewing
        (0, "newsletter"): [1, 1, 0, 0],  # anon-4: viewed after midnight, inside the window
        (0, "facebook"): [1, 1, 0, 0],  # u-7, first touched as anon-7
        (1, "newsletter"): [1, 0, 0, 0],  # anon-4's second search: its view was before it
    }
    assert _funnels(built, "lisbon") == {
        (0, "(none)"): [1, 1],
        (0, "google"): [1, 1],
        (0, "newsletter"): [1, 0],  # anon-4 viewed 90 minutes after its search: outside the hour
        (0, "facebook"): [1, 0],  # viewed Madrid
        (1, "newsletter"): [1, 0],
    }
    assert not _funnels(built, "dropped")  # removed from the declarations: its rows went
    assert _funnels(built, "hostile") == {
        (0, "(none)"): [1, 0],
        (0, "google"): [1, 0],
        (0, "newsletter"): [1, 0],
        (0, "facebook"): [1, 0],
        (1, "newsletter"): [1, 0],
    }
    (step,) = built.query(
        "select step_name, step_event from analytics.funnels where funnel_name = 'hostile' and step_number = 2 limit 1"
    )
    assert (step["step_name"], step["step_event"]) == ("'; drop table analytics.events; --", HOSTILE_EVENT)


def test_funnel_columns_and_conversion(built):
    rows = built.query(
        "select * from analytics.funnels where funnel_name = 'activation' and entry_date = '2026-11-02' "
        "and first_touch_utm_source = '(none)' order by step_number"
    )
    assert [(r["step_name"], r["step_event"]) for r in rows] == [
        ("Listings Searched", "Listings Searched"),
        ("Listing Viewed", "Listing Viewed"),
        ("Signed Up", "Signed Up"),
        ("Showing Requested", "Showing Requested"),
    ]
    assert [int(r["entered_people"]) for r in rows] == [2, 2, 2, 2]
    assert [r["previous_step_people"] for r in rows] == [None, 2, 2, 2]
    assert [r["conversion_rate"] for r in rows] == [1.0, 1.0, 1.0, 0.5]
    assert [r["step_conversion_rate"] for r in rows] == [None, 1.0, 1.0, 0.5]
    assert {r["conversion_window_hours"] for r in rows} == {24}
    labels = built.query("select distinct step_number, step_name from analytics.funnels where funnel_name = 'lisbon'")
    assert sorted((r["step_number"], r["step_name"]) for r in labels) == [(1, "Searched Lisbon"), (2, "Listing Viewed")]


def _wilson(x: int, n: int, z: float) -> tuple[float, float]:
    p = x / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def _z_test(x: int, n: int, xc: int, nc: int) -> tuple[float, float]:
    pooled = (x + xc) / (n + nc)
    z = (x / n - xc / nc) / math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / nc))
    return z, 2 * NormalDist().cdf(-abs(z))


@pytest.mark.parametrize(("experiment", "counts", "control"), [("checkout", CHECKOUT, "control"), ("hero", HERO, "A")])
def test_experiment_results_match_a_two_proportion_z_test(built, experiment, counts, control):
    rows = {
        r["variant"]: r
        for r in built.query(f"select * from analytics.experiment_results where experiment_id = '{experiment}'")
    }
    assert set(rows) == set(counts)
    z95 = NormalDist().inv_cdf(0.975)
    n_c, x_c = counts[control]
    for variant, (n, x) in counts.items():
        row = rows[variant]
        assert (int(row["exposed_people"]), int(row["converted_people"])) == (n, x), variant
        assert row["control_variant"] == control and row["is_control"] is (variant == control)
        assert row["goal_event"] == "Order Completed"
        assert row["conversion_rate"] == pytest.approx(x / n, abs=1e-12)
        low, high = _wilson(x, n, z95)
        assert (row["conversion_rate_ci_low"], row["conversion_rate_ci_high"]) == (
            pytest.approx(low, abs=1e-9),
            pytest.approx(high, abs=1e-9),
        )
        if variant == control:
            assert row["z_score"] is None and row["p_value"] is None and row["absolute_lift"] is None
            continue
        z, p_value = _z_test(x, n, x_c, n_c)
        assert row["z_score"] == pytest.approx(z, abs=1e-9)
        assert row["p_value"] == pytest.approx(p_value, abs=2e-7)  # the normal tail's approximation
        assert row["absolute_lift"] == pytest.approx(x / n - x_c / n_c, abs=1e-12)
        assert row["relative_lift"] == pytest.approx((x / n - x_c / n_c) / (x_c / n_c), abs=1e-12)
        se = math.sqrt((x / n) * (1 - x / n) / n + (x_c / n_c) * (1 - x_c / n_c) / n_c)
        assert row["absolute_lift_ci_low"] == pytest.approx(x / n - x_c / n_c - z95 * se, abs=1e-9)
        assert row["absolute_lift_ci_high"] == pytest.approx(x / n - x_c / n_c + z95 * se, abs=1e-9)
        assert row["is_significant"] is (p_value < 0.05)


def test_an_experiment_without_a_goal_has_exposures_only(built):
    rows = built.query(
        "select variant, exposed_people, converted_people, conversion_rate, control_variant, is_control, z_score "
        "from analytics.experiment_results where experiment_id = 'banner' order by variant"
    )
    assert [(r["variant"], int(r["exposed_people"]), r["converted_people"], r["conversion_rate"]) for r in rows] == [
        ("control", 1, None, None),
        ("x", 2, None, None),
    ]
    assert [(r["control_variant"], r["is_control"], r["z_score"]) for r in rows] == [
        ("control", True, None),
        ("control", False, None),
    ]


def test_retention_cohorts(built):
    rows = built.query(
        "select cohort_week, week_number, week_start, cohort_people, active_people, retention_rate, is_complete_week "
        "from analytics.retention_cohorts order by cohort_week, week_number"
    )
    got = [
        (
            r["cohort_week"],
            r["week_number"],
            r["week_start"],
            r["cohort_people"],
            r["active_people"],
            r["retention_rate"],
            r["is_complete_week"],
        )
        for r in rows
    ]
    w0, w1, w2 = date(2026, 11, 2), date(2026, 11, 9), date(2026, 11, 16)
    cohort = 5 + 80 + 20 + 3  # u-1, anon-2, anon-3, anon-4, u-7 and the experiments' people
    assert got == [
        (w0, 0, w0, cohort, cohort, 1.0, True),
        (w0, 1, w1, cohort, 2, 2 / cohort, True),  # u-1, anon-2
        (w0, 2, w2, cohort, 1, 1 / cohort, False),  # u-1; the data ends on the week's Tuesday
        (w1, 0, w1, 1, 1, 1.0, True),  # anon-8
        (w1, 1, w2, 1, 1, 1.0, False),
    ]


def test_stickiness(built):
    rows = {r["activity_date"]: r for r in built.query("select * from analytics.stickiness")}
    everyone = 5 + 80 + 20 + 3 + 1
    last = rows[date(2026, 11, 17)]
    assert (last["dau"], last["wau"], last["mau"]) == (1, 3, everyone)  # u-1; + anon-8 and anon-2 that week
    assert last["dau_over_mau"] == pytest.approx(1 / everyone) and last["dau_over_wau"] == pytest.approx(1 / 3)
    assert last["wau_over_mau"] == pytest.approx(3 / everyone)
    first = rows[date(2026, 11, 2)]
    assert (first["dau"], first["wau"], first["mau"], first["dau_over_mau"]) == (108, 108, 108, 1.0)


def test_page_paths(built):
    rows = built.query(
        "select transition_type, from_page_path, to_page_path, transitions, sessions from analytics.page_paths "
        "order by transition_type, from_page_path nulls first, to_page_path nulls first"
    )
    got = [
        (r["transition_type"], r["from_page_path"], r["to_page_path"], r["transitions"], r["sessions"]) for r in rows
    ]
    assert got == [
        ("entry", None, "/", 2, 2),
        ("entry", None, "/listing", 1, 1),
        ("entry", None, "/search", 1, 1),
        ("exit", "/", None, 1, 1),
        ("exit", "/pricing", None, 1, 1),  # s-3's late page moved its exit
        ("exit", "/search", None, 1, 1),
        ("exit", "/signup", None, 1, 1),
        ("next", "/", "/search", 1, 1),
        ("next", "/listing", "/search", 2, 2),
        ("next", "/listing", "/signup", 1, 1),
        ("next", "/search", "/listing", 2, 2),
        ("next", "/search", "/pricing", 1, 1),
    ]
    assert {r["session_date"] for r in built.query("select distinct session_date from analytics.page_paths")} == {
        DAY0.date()
    }


def test_metric_unit_tests(built):
    result, _ = built.dbt("test", "--select", "test_type:unit,path:models/marts/metrics")
    statuses = {r.node.name: str(r.status) for r in result.result.results if r.node.resource_type == "unit_test"}
    assert len(statuses) >= 8, statuses
    assert result.success and set(statuses.values()) == {"pass"}, statuses


# ---------------------------------------------------------------- bad declarations fail before any model runs

BAD_DECLARATIONS = {
    "funnels": [
        {"name": "no_steps", "steps": [], "conversion_window_hours": 24},
        {"name": "backwards", "steps": ["A", "B"], "conversion_window_hours": -3},
        {"name": "Not-Snake", "steps": ["A", {"event": "B", "propeties": {"x": 1}}], "conversion_window_hours": 1.5},
        {"name": "filters", "steps": [{"event": ""}, {"event": "B", "properties": {"x y": 1, "z": [None]}}]},
    ],
    "experiments": [{"experiment_id": "checkout"}, {"experiment_id": "hero", "goal": "A", "control": ""}],
    "dashboards": [],
}
EXPECTED_PROBLEMS = [
    "unknown key 'dashboards' (expected funnels, experiments)",
    "funnels[0] 'no_steps': steps must be a list of at least two steps (events in order), got []",
    "funnels[1] 'backwards': conversion_window_hours must be a whole number of hours from 1 to 2160 (90 days), got -3",
    'funnels[2]: name must be lower_snake_case (a-z, 0-9, _; at most 63 characters), got "Not-Snake"',
    "funnels[2]: conversion_window_hours must be a whole number of hours from 1 to 2160 (90 days), got 1.5",
    "funnels[2] steps[1]: unknown key 'propeties' (expected event, properties, label)",
    "funnels[3] 'filters': conversion_window_hours must be a whole number of hours from 1 to 2160 (90 days), got null",
    "funnels[3] 'filters' steps[0]: event must be an event name (as in analytics.events.event_name), got \"\"",
    "funnels[3] 'filters' steps[1]: property 'x y' must be a name of letters, digits and _ (a.b for a nested key)",
    "funnels[3] 'filters' steps[1]: property 'z' must be a string, number or boolean (or a list of them), got null",
    "experiments[0] 'checkout': goal is required: the event (and optional properties) that counts as a conversion",
    "experiments[1] 'hero': control must be the name of a variant, got \"\"",
]


def test_bad_declarations_stop_dbt_when_it_parses(tmp_path):
    """Every problem is listed at once, with where it is, before dbt runs anything (`dbt parse`: no warehouse)."""
    wh = Warehouse(
        "duckdb", {"TRACKWAY_DBT_TARGET": "duckdb", "TRACKWAY_DUCKDB_PATH": str(tmp_path / "w.duckdb")}, tmp_path
    )
    wh.env["TRACKWAY_DBT_METRICS"] = json.dumps({**BAD_DECLARATIONS, "source": "/plan/metrics.yaml"})
    result, _ = wh.dbt("parse")
    assert not result.success
    message = str(result.exception)
    assert "Trackway metrics declared in /plan/metrics.yaml are invalid" in message, message
    listed = [line.strip()[2:] for line in message.splitlines() if line.strip().startswith("- ")]
    assert listed == EXPECTED_PROBLEMS, message


def _plan_with_metrics(tmp_path, text: str):
    from trackway.demo.runner import PLAN_DIR

    plan = tmp_path / "plan"
    shutil.copytree(PLAN_DIR, plan)
    (plan / "metrics.yaml").write_text(text)
    return plan


def test_events_the_tracking_plan_lacks_stop_the_compile(tmp_path, trackway_env, monkeypatch):
    """`trackway transform compile` checks metrics.yaml's events and properties against the plan, before dbt runs."""
    from trackway.config import load_settings
    from trackway.plan.metrics import MetricsError
    from trackway.transform.manifest import compile_manifest, manifest_path

    plan = _plan_with_metrics(
        tmp_path,
        "funnels:\n  - name: typo\n    conversion_window_hours: 24\n    steps:\n"
        "      - Listings Searched\n      - {event: Listing Veiwed}\n"
        "      - {event: Listing Viewed, properties: {colour: red, city: Lisbon}}\n"
        "experiments:\n  - {experiment_id: x, goal: Bought Something}\n",
    )
    monkeypatch.setenv("TRACKWAY_PLAN_DIR", str(plan))
    settings = load_settings()
    with pytest.raises(MetricsError) as caught:
        compile_manifest(settings)
    message = str(caught.value)
    assert message.startswith(f"{plan / 'metrics.yaml'}: names what the tracking plan {plan} does not define")
    assert (
        "funnel 'typo' step 2: event 'Listing Veiwed' is not in the tracking plan (did you mean 'Listing Viewed'?)"
        in message
    )
    assert "funnel 'typo' step 3: 'Listing Viewed' has no property 'colour' in the tracking plan (it has: " in message
    assert "experiment 'x' goal: event 'Bought Something' is not in the tracking plan" in message
    assert message.count("\n  - ") == 3  # Listings Searched and Listing Viewed's city are in the plan
    assert not manifest_path(settings).exists()


def test_a_bad_shape_in_metrics_yaml_stops_the_compile_with_dbts_message(tmp_path, trackway_env, monkeypatch):
    """The declarations reach dbt from the plan folder (TRACKWAY_DBT_METRICS); dbt names the file and the problem."""
    from trackway.config import load_settings
    from trackway.transform.dbt_runner import DbtBuildError
    from trackway.transform.manifest import compile_manifest

    plan = _plan_with_metrics(tmp_path, "funnels:\n  - {name: empty, conversion_window_hours: -1, steps: []}\n")
    monkeypatch.setenv("TRACKWAY_PLAN_DIR", str(plan))
    with pytest.raises(DbtBuildError) as caught:
        compile_manifest(load_settings())
    message = str(caught.value)
    assert f"Trackway metrics declared in {plan / 'metrics.yaml'} are invalid" in message, message
    assert "funnels[0] 'empty': steps must be a list of at least two steps" in message
    assert "funnels[0] 'empty': conversion_window_hours must be a whole number of hours from 1 to 2160" in message


def test_metrics_yaml_is_handed_to_dbt_as_json(tmp_path):
    from trackway.demo.runner import PLAN_DIR
    from trackway.plan.metrics import DBT_ENV, MetricsError, dbt_metrics_env

    handed = json.loads(dbt_metrics_env(PLAN_DIR)[DBT_ENV])
    assert handed["source"] == str(PLAN_DIR / "metrics.yaml")
    assert [f["name"] for f in handed["funnels"]] == ["renter_activation", "lisbon_search_to_listing"]
    assert handed["funnels"][0]["steps"] == ["Listings Searched", "Listing Viewed", "Signed Up", "Showing Requested"]
    assert dbt_metrics_env(None) == {}  # no plan: var('metrics') as dbt_project.yml (or the operator) sets it
    (tmp_path / "events").mkdir()
    assert dbt_metrics_env(tmp_path) == {DBT_ENV: ""}  # a plan without metrics.yaml declares nothing
    (tmp_path / "metrics.yaml").write_text("funnels: [unclosed\n")
    with pytest.raises(MetricsError, match=r"metrics\.yaml: not valid YAML"):
        dbt_metrics_env(tmp_path)
    (tmp_path / "metrics.yaml").write_text("- just a list\n")
    with pytest.raises(MetricsError, match="must be a mapping with 'funnels' and/or 'experiments'"):
        dbt_metrics_env(tmp_path)
