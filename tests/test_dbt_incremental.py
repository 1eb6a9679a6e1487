"""analytics.* built incrementally, batch by batch, equals a --full-refresh of the same raw data.

Three loads a day and a week apart, on DuckDB and on a real PostgreSQL: the
second holds duplicates of the first (one with an earlier receivedAt), late
events that merge and extend sessions, identifies and aliases; the third a
week-late duplicate and an alias loop. After each load one `dbt build`
(incremental), then `dbt build --full-refresh` over the same raw rows must
give the same tables.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dbt_helpers import INSERT_RAW, Warehouse, as_json, dbt_test_statuses, make_warehouse, raw_row

DAY = datetime(2026, 11, 20, tzinfo=UTC)
LOADS = [DAY + timedelta(hours=13), DAY + timedelta(days=1, hours=13), DAY + timedelta(days=8, hours=13)]
# Columns that record when a row was (re)computed, not what it says.
RUN_COLUMNS = {"transformed_at"}
MARTS = [
    "events",
    "events_rejected",
    "sessions",
    "identity_map",
    "users",
    "daily_active_users",
    "experiment_assignments",
    "tracking_plan_violations",
]
JSON_COLUMNS = {"properties", "traits", "context", "experiments", "latest_traits"}


def at(hhmm: str, day: int = 0) -> datetime:
    hours, minutes, *seconds = (int(part) for part in hhmm.split(":"))
    return DAY + timedelta(days=day, hours=hours, minutes=minutes, seconds=seconds[0] if seconds else 0)


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def ev(message_id: str, type_: str, when: datetime, received_delay: float = 3.0, **fields: Any) -> str:
    event = {
        "messageId": message_id,
        "type": type_,
        "timestamp": iso(when),
        "receivedAt": iso(when + timedelta(seconds=received_delay)),
        "sourceId": "web",
        **fields,
    }
    if type_ == "track":
        event.setdefault("event", "Clicked")
    return json.dumps(event)


CAMPAIGN = {"source": "google", "medium": "cpc", "name": "spring", "term": "boots", "content": "ad-1"}
EXPERIMENT_VIEWED = {
    "experiment_id": "exp-1",
    "experiment_name": "Checkout",
    "variation_id": "v-b",
    "variation_name": "B",
}


def verdict(*violations: tuple[str, str | None], version: str = "1") -> dict:
    """A tracking plan verdict as the collector records it (trackway.plan.verdict, adr/0029)."""
    return {"plan": "p1", "eventVersion": version, "violations": [{"kind": k, "property": p} for k, p in violations]}


BATCHES: list[list[str]] = [
    [
        ev("a1", "page", at("10:00"), anonymousId="anon-A", context={"campaign": CAMPAIGN, "page": {"path": "/home"}}),
        ev(
            "a2",
            "track",
            at("10:10"),
            anonymousId="anon-A",
            _trackwayPlan=verdict(("wrong_type", "price"), ("missing_required", "city")),
        ),
        ev("a3", "page", at("11:00"), anonymousId="anon-A", context={"page": {"path": "/listing"}}),
        ev("a4", "track", at("11:05"), anonymousId="anon-A"),
        ev("b1", "track", at("10:00"), anonymousId="anon-B"),
        ev("b2", "track", at("10:30"), anonymousId="anon-B"),  # exactly the cut-off: same session
        # 30 min 1 s: a new session; its verdict is damaged (violations not a list) and ignored
        ev("b3", "track", at("11:00:01"), anonymousId="anon-B", _trackwayPlan={"violations": {"kind": "x"}}),
        ev("c1", "page", at("10:00"), anonymousId="anon-C", context={"sessionId": "cs-1"}),
        ev("c2", "track", at("12:00"), anonymousId="anon-C", context={"sessionId": "cs-1"}, _trackwayPlan="damaged"),
        ev("c3", "track", at("10:05"), anonymousId="anon-C"),  # no client id: derived
        ev("u1", "track", at("10:00"), userId="u-9"),
        ev("e1", "page", at("09:00"), anonymousId="anon-E", context={"page": {"path": "/pricing"}}),
        ev("e2", "track", at("09:05"), anonymousId="anon-E", event="Experiment Viewed", properties=EXPERIMENT_VIEWED),
        ev("x1", "page", at("10:00"), anonymousId="anon-X", context={"experiments": {"hero": "red"}}),
        ev("i1", "identify", at("10:00"), anonymousId="anon-D", userId="u-1", traits={"plan": "free", "name": "Di"}),
        ev("d1", "track", at("10:01"), anonymousId="anon-D"),
        ev(
            "dup-1",
            "track",
            at("10:02"),
            5,
            anonymousId="anon-B",
            properties={"copy": "first"},
            _trackwayPlan=verdict(("unexpected_property", "copy")),
        ),
        "%% not json",
    ],
    [
        # A retry with an earlier receivedAt, loaded a day later: still loses to the copy already there.
        ev(
            "dup-1",
            "track",
            at("10:02"),
            1,
            anonymousId="anon-B",
            properties={"copy": "second"},
            _trackwayPlan=verdict(("not_in_enum", "copy")),  # a later copy's verdict never counts
        ),
        # late: 25 min after a2, 25 min before a3
        ev(
            "a5",
            "track",
            at("10:35"),
            anonymousId="anon-A",
            _trackwayPlan=verdict(("unknown_version", None), version="9"),
        ),
        ev("b0", "track", at("09:45"), anonymousId="anon-B"),  # late: before b1's session, within the gap
        ev("i2", "identify", at("09:00", 1), anonymousId="anon-E", userId="u-2", traits={"plan": "pro"}),
        ev("al1", "alias", at("09:10", 1), previousId="u-2", userId="u-3"),
        ev("i3", "identify", at("10:00", 1), anonymousId="anon-F", userId="u-1", traits={"plan": "pro"}),
        ev("f1", "track", at("10:01", 1), anonymousId="anon-F"),
        json.dumps({"type": "track", "event": "No Id", "userId": "u-1", "receivedAt": iso(at("10:00", 1))}),
    ],
    [
        ev("dup-1", "track", at("10:02"), 5, anonymousId="anon-B", properties={"copy": "a week late"}),
        ev("al2", "alias", at("09:00", 8), previousId="u-3", userId="u-2"),  # closes a loop u-2 -> u-3 -> u-2
        ev("i4", "identify", at("10:00", 8), anonymousId="anon-D", userId="u-7"),  # shared device: first link wins
    ],
]


def load_batch(wh: Warehouse, index: int) -> None:
    obj = f"file:///srv/trackway/raw/events/batch-{index}.ndjson.gz"
    wh.execute(
        INSERT_RAW,
        [raw_row(line, obj, n, f"load-{index}", LOADS[index]) for n, line in enumerate(BATCHES[index], 1)],
    )


def snapshot(wh: Warehouse, tables: list[str]) -> dict[str, list[str]]:
    """Each table as sorted canonical JSON rows, without the run-time columns."""
    out = {}
    for table in tables:
        rows = []
        for row in wh.query(f"select * from analytics.{table}"):
            canon = {}
            for key, raw_value in row.items():
                if key in RUN_COLUMNS:
                    continue
                value = as_json(raw_value) if key in JSON_COLUMNS else raw_value
                canon[key] = value if isinstance(value, (str, int, float, bool, dict, list, type(None))) else str(value)
            rows.append(json.dumps(canon, sort_keys=True, default=str))
        out[table] = sorted(rows)
    return out


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def built(request, tmp_path_factory):
    """Warehouse after three incremental builds; .runs holds each build's result and stg_events size."""
    wh = make_warehouse(request.param, tmp_path_factory.mktemp(f"inc-{request.param}"), request, "trackway_incremental")
    wh.runs = []
    for index in range(len(BATCHES)):
        load_batch(wh, index)
        result, seconds = wh.dbt("build")
        batch_rows = wh.query("select count(*) as n from staging.stg_events")[0]["n"]
        wh.runs.append((result, batch_rows))
        print(f"\nincremental build {index + 1} on {wh.kind}: {seconds:.1f}s, {batch_rows} raw rows read")
    wh.incremental = snapshot(wh, MARTS)
    result, seconds = wh.dbt("build", "--full-refresh")
    print(f"full refresh on {wh.kind}: {seconds:.1f}s")
    wh.full_refresh_result = result
    wh.full_refresh = snapshot(wh, MARTS)
    return wh


def test_every_incremental_build_passes_its_data_tests(built):
    for result, _rows in built.runs:
        failing = {name: s for name, s in dbt_test_statuses(result).items() if s != "pass"}
        assert result.success and not failing, failing
        assert "assert_every_raw_line_is_accounted_for" in dbt_test_statuses(result)
    assert built.full_refresh_result.success


def test_each_run_reads_only_the_new_raw_rows(built):
    """The batch is the new load plus the previous one, which is inside the 3-hour lookback; never older loads."""
    sizes = [len(batch) for batch in BATCHES]
    assert [rows for _result, rows in built.runs] == [sizes[0], sizes[0] + sizes[1], sizes[1] + sizes[2]]


def test_full_refresh_equals_the_incremental_runs(built):
    for table in MARTS:
        assert built.incremental[table] == built.full_refresh[table], table


def test_first_copy_received_wins_across_runs(built):
    rows = built.query("select properties, loaded_at from analytics.events where event_id = 'dup-1'")
    assert len(rows) == 1
    assert as_json(rows[0]["properties"]) == {"copy": "first"} and rows[0]["loaded_at"] == LOADS[0]


def test_every_raw_line_is_an_event_a_reject_or_a_duplicate(built):
    raw = built.query("select count(*) as n from raw.events_raw")[0]["n"]
    events = built.query("select count(*) as n from analytics.events")[0]["n"]
    rejected = built.query("select reject_reason from analytics.events_rejected order by loaded_at")
    assert [r["reject_reason"] for r in rejected] == ["parse_error", "missing_message_id"]
    assert raw == events + len(rejected) + 2  # two later copies of dup-1


def test_plan_violations_are_the_kept_copies_verdicts(built):
    """adr/0029: the verdicts recorded with the events, unnested once; a duplicate's never counts, a damaged one
    is ignored, and a rerun inside the lookback replaces its rows (the full refresh above equals them)."""
    rows = built.query(
        "select event_id, event_version, kind, property, violation_index from intermediate.plan_violation_rows"
    )
    assert sorted(
        (r["event_id"], r["event_version"], r["kind"], r["property"], r["violation_index"]) for r in rows
    ) == [
        ("a2", "1", "missing_required", "city", 0),
        ("a2", "1", "wrong_type", "price", 1),
        ("a5", "9", "unknown_version", None, 0),
        ("dup-1", "1", "unexpected_property", "copy", 0),
    ]
    summary = built.query("select kind, violation_count from analytics.tracking_plan_violations order by kind")
    assert [(r["kind"], r["violation_count"]) for r in summary] == [
        ("missing_required", 1),
        ("unexpected_property", 1),
        ("unknown_version", 1),
        ("wrong_type", 1),
    ]


def test_utm_and_experiment_columns(built):
    row = built.query(
        "select utm_source, utm_medium, utm_campaign, utm_term, utm_content from analytics.events where event_id = 'a1'"
    )[0]
    assert row == {
        "utm_source": "google",
        "utm_medium": "cpc",
        "utm_campaign": "spring",
        "utm_term": "boots",
        "utm_content": "ad-1",
    }
    experiments = built.query("select event_id, experiments from analytics.events where experiments is not null")
    assert [(r["event_id"], as_json(r["experiments"])) for r in experiments] == [("x1", {"hero": "red"})]


def _sessions(wh: Warehouse, anonymous_id: str) -> list[dict]:
    return wh.query(
        "select session_id, session_id_source, started_at, ended_at, duration_seconds, events, page_views, "
        "landing_page_path, exit_page_path, utm_source, user_id, person_id "
        f"from analytics.sessions where anonymous_id = '{anonymous_id}' order by started_at, session_id"
    )


def test_a_late_event_merges_two_sessions(built):
    (session,) = _sessions(built, "anon-A")  # 10:00-10:10 and 11:00-11:05, joined by a5 at 10:35
    assert (session["started_at"], session["ended_at"], session["events"]) == (at("10:00"), at("11:05"), 5)
    assert float(session["duration_seconds"]) == 65 * 60
    assert (session["page_views"], session["landing_page_path"], session["exit_page_path"]) == (2, "/home", "/listing")
    assert session["utm_source"] == "google"
    ids = {
        r["session_id"] for r in built.query("select session_id from analytics.events where anonymous_id = 'anon-A'")
    }
    assert ids == {session["session_id"]}


def test_gap_exactly_at_the_cut_off_and_a_late_event_that_extends(built):
    first, second = _sessions(built, "anon-B")
    # b0 (09:45, late) extends the session of b1 (10:00); b2 is exactly 30 min after b1; b3 30 min 1 s after b2.
    assert (first["started_at"], first["ended_at"], first["events"]) == (at("09:45"), at("10:30"), 4)
    assert (second["started_at"], second["events"]) == (at("11:00:01"), 1)


def test_client_session_ids_mix_with_derived_ones(built):
    sessions = _sessions(built, "anon-C")
    assert sorted((s["session_id_source"], s["events"]) for s in sessions) == [("client", 2), ("derived", 1)]
    client = next(s for s in sessions if s["session_id_source"] == "client")
    assert client["session_id"] == "cs-1" and client["ended_at"] == at("12:00")  # no gap rule inside a client session


def test_session_ids_are_deterministic(built):
    """The full refresh recomputed every derived id; equal tables mean equal ids (see the equality test)."""
    ids = built.query("select session_id from analytics.sessions where session_id_source = 'derived'")
    assert ids and all(len(r["session_id"]) == 32 for r in ids)


def test_identity_chains_loops_and_devices(built):
    people = {r["anonymous_id"]: r for r in built.query("select * from analytics.identity_map")}
    # anon-E -> u-2 -> u-3 -> u-2: a chain into a loop resolves to the loop's smallest id.
    assert (people["anon-E"]["user_id"], people["anon-E"]["person_id"]) == ("u-2", "u-2")
    assert people["u-2"]["person_id"] == people["u-3"]["person_id"] == "u-2"
    # A shared device: the first link wins over a later identify as someone else.
    assert (people["anon-D"]["user_id"], people["anon-D"]["link_event_id"]) == ("u-1", "i1")
    # Two devices of one user.
    assert people["anon-F"]["person_id"] == people["anon-D"]["person_id"] == "u-1"


def test_stitching_is_retroactive(built):
    person = {
        r["event_id"]: r["person_id"]
        for r in built.query(
            "select event_id, person_id from analytics.events where event_id in ('e1', 'e2', 'd1', 'i4', 'f1', 'x1')"
        )
    }
    # e1/e2 were anonymous on day 1; anon-E identified on day 2 and its user was aliased later.
    assert person == {"e1": "u-2", "e2": "u-2", "d1": "u-1", "i4": "u-7", "f1": "u-1", "x1": "anon-X"}
    (session,) = _sessions(built, "anon-E")[:1]
    assert (session["user_id"], session["person_id"]) == ("u-2", "u-2")


def test_users(built):
    users = {r["user_id"]: r for r in built.query("select * from analytics.users")}
    assert set(users) == {"u-1", "u-2", "u-3", "u-7", "u-9"}
    u1 = users["u-1"]
    assert as_json(u1["traits"]) == {"plan": "pro", "name": "Di"}  # merged; the later plan wins
    # Keys in sorted order, not in the order rows reached the aggregate: otherwise
    # an incremental run and a full refresh write different text for equal traits.
    assert list(as_json(u1["traits"])) == ["name", "plan"]
    assert u1["anonymous_ids"] == 2  # anon-D and anon-F
    assert (u1["first_seen_at"], u1["last_seen_at"]) == (at("10:00"), at("10:01", 1))
    u2 = users["u-2"]
    assert u2["first_seen_at"] == at("09:00")  # anon-E's visit before identifying
    assert users["u-3"]["person_id"] == "u-2"


def test_daily_active_users(built):
    rows = built.query(
        "select activity_date, active_people, active_users, new_people, events, weekly_active_people, "
        "monthly_active_people from analytics.daily_active_users order by activity_date"
    )
    days = [(r["activity_date"].day, *(int(r[k]) for k in list(r)[1:])) for r in rows]
    assert days == [(20, 7, 3, 7, 19, 7, 7), (21, 2, 2, 0, 4, 7, 7), (28, 2, 2, 1, 2, 2, 8)]


def test_experiment_assignments(built):
    rows = built.query(
        "select person_id, experiment_id, experiment_name, variant, exposure_source "
        "from analytics.experiment_assignments order by person_id"
    )
    assert [tuple(r.values()) for r in rows] == [
        ("anon-X", "hero", "hero", "red", "context"),
        ("u-2", "exp-1", "Checkout", "B", "experiment_viewed"),
    ]


def test_dbt_unit_tests(built):
    """The unit_tests: of the project (skew, dedup across runs, sessions, stitching, experiments)."""
    result, _ = built.dbt("test", "--select", "test_type:unit")
    statuses = {r.node.name: str(r.status) for r in result.result.results if r.node.resource_type == "unit_test"}
    assert len(statuses) >= 9, statuses
    assert result.success and set(statuses.values()) == {"pass"}, statuses


def test_json_objects_are_built_with_sorted_keys(built):
    """json_object_agg's text must not follow the order rows reach it (a full refresh would differ)."""
    # Keys in neither order; the SQL string literal sits inside a Jinja string, hence the escaped quotes.
    literal = json.dumps({"zeta": 1, "alpha": [2], "mid": {"x": None}}).replace('"', '\\"')
    sql = (
        "select {{ trackway.json_object_agg('pair.key', 'pair.value') }} as merged "
        f"from (select {{{{ trackway.try_json_object(\"'{literal}'\") }}}} as obj) as src, "
        "{{ trackway.json_each('src.obj') }} as pair"
    )
    result, _ = built.dbt("show", "--inline", sql)
    assert result.success, result.exception
    (row,) = result.result.results[0].agate_table.rows
    merged = row[0]
    # jsonb has a canonical key order of its own (shorter keys first); DuckDB's text is sorted by the macro.
    canonical = ["mid", "zeta", "alpha"] if built.kind == "postgres" else ["alpha", "mid", "zeta"]
    assert list(as_json(merged)) == canonical
    assert as_json(merged) == {"zeta": 1, "alpha": [2], "mid": {"x": None}}


def test_postgres_tables_are_analyzed_after_each_write(built):
    """The analyze_after_write post-hook: the planner has statistics for the batch and the marts at once,
    not after autovacuum (without them, plans over a fresh stg_events took minutes in the benchmark)."""
    if built.kind != "postgres":
        pytest.skip("PostgreSQL only: DuckDB keeps its statistics as it writes")
    rows = built.query(
        "select schemaname || '.' || relname as name from pg_stat_user_tables where last_analyze is not null"
    )
    analyzed = {row["name"] for row in rows}
    assert {"staging.stg_events", "intermediate.int_events_new", "analytics.events", "analytics.sessions"} <= analyzed


def test_hourly_tests_read_the_latest_write_and_the_audit_reads_all(built):
    """var test_scope=new_rows (the hourly transform): data tests read only the rows the latest run wrote,
    so a bad row of an older run is the daily audit's (test_scope=all) to find; a bad new row fails at once."""
    rows = built.query(
        "select event_id, event_name, session_id, transformed_at from analytics.events order by event_id"
    )
    old, new = rows[0], rows[-1]  # after the fixture's full refresh, both of the latest write
    hourly = ("--vars", "{test_scope: new_rows}")

    def failing(*extra: str) -> set[str]:
        result, _ = built.dbt("test", "--select", "events", *extra)
        return {name for name, status in dbt_test_statuses(result).items() if status != "pass"}

    def spoil(row: dict, older: bool) -> None:
        shift = " - interval '1 hour'" if older else ""
        built.execute(
            f"update analytics.events set event_name = null, transformed_at = transformed_at{shift} "
            f"where event_id = '{row['event_id']}'"
        )

    try:
        spoil(old, older=True)  # as if an earlier run had written it
        assert failing(*hourly) == set()
        assert failing() == {"not_null_events_event_name"}
        spoil(new, older=False)
        built.execute(
            f"update analytics.events set session_id = 'no-such-session' where event_id = '{new['event_id']}'"
        )
        assert failing(*hourly) == {"not_null_events_event_name", "assert_every_event_is_in_exactly_one_session"}
    finally:
        for row in (old, new):
            built.execute(
                f"update analytics.events set event_name = '{row['event_name']}', session_id = '{row['session_id']}', "
                f"transformed_at = cast('{row['transformed_at'].isoformat()}' as timestamptz) "
                f"where event_id = '{row['event_id']}'"
            )
