"""dbt models against real warehouses: DuckDB and a throwaway PostgreSQL.

Each warehouse gets a raw.events_raw filled by plain SQL following the
loader's contract (all text, whole line in ``raw``), then a real
``dbt build``; the tests assert on analytics.events / events_rejected and on
dbt's own test results, and prove a data test can fail.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from dbt_helpers import INSERT_RAW, Warehouse, as_json, dbt_test_statuses, make_warehouse, raw_row

OBJ_A = "file:///srv/trackway/raw/events/dt=2026-11-22/hour=10/a.ndjson.gz"
OBJ_B = "file:///srv/trackway/raw/events/dt=2026-11-22/hour=11/b.ndjson.gz"
LOADED_A = datetime(2026, 11, 22, 11, 5, tzinfo=UTC)
LOADED_B = datetime(2026, 11, 22, 12, 5, tzinfo=UTC)

PROPERTIES = {
    "order": {"id": 42, "items": [{"sku": "é-ü", "price": 9.99, "qty": 2}]},
    "total": 1234567890123,
    "ratio": -0.0015,
    "flag": True,
    "nothing": None,
    "text": '🚀 ünïcödé 日本語 "quoted"\nnext line',
    "empty": {},
    "list": [],
}
CONTEXT = {
    "ip": "203.0.113.7",
    "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
    "locale": "de-DE",
    "library": {"name": "analytics.js", "version": "5.2.0"},
    "page": {
        "url": "https://shop.example/checkout?step=2",
        "path": "/checkout",
        "referrer": "https://search.example/",
        "title": "Checkout",
        "search": "?step=2",
    },
    "sessionId": 1700000000123,
    "campaign": {"source": "newsletter"},
}


def _event(
    message_id: str | None, type_: str | None, received_at: str | None = "2026-11-22T10:00:00.000Z", **fields: Any
) -> dict:
    event: dict[str, Any] = {}
    if message_id is not None:
        event["messageId"] = message_id
    if type_ is not None:
        event["type"] = type_
    if received_at is not None:
        event["receivedAt"] = received_at
    event.setdefault("sourceId", "web")
    event.update(fields)
    return event


def rejected_lines() -> list[tuple[str, dict[str, str | None]]]:
    """Lines that must not become events: (line, expected reject_reason per warehouse, None = an event)."""
    both = lambda reason: {"duckdb": reason, "postgres": reason}  # noqa: E731
    return [
        ("this is not json", both("parse_error")),
        ("[1, 2]", both("parse_error")),
        (json.dumps(_event(None, "track", event="No Id", userId="u1")), both("missing_message_id")),
        (json.dumps(_event("   ", "track", event="Blank Id", userId="u1")), both("missing_message_id")),
        (json.dumps(_event("m-noids", "track", event="Who")), both("missing_user_and_anonymous_id")),
        (
            json.dumps(_event("m-blankids", "track", event="Who", userId="", anonymousId=" ")),
            both("missing_user_and_anonymous_id"),
        ),
        (json.dumps(_event("m-unknown", "purchase", userId="u1")), both("unknown_type")),
        (json.dumps(_event("m-notype", None, userId="u1")), both("unknown_type")),
        (json.dumps(_event("m-noevent", "track", userId="u1")), both("missing_event_name")),
        (
            json.dumps(_event("m-badts-word", "track", event="E", userId="u1", timestamp="yesterday")),
            both("unparseable_timestamp"),
        ),
        # PostgreSQL's own cast would turn 'now' into the build time.
        (
            json.dumps(_event("m-badts-now", "track", event="E", userId="u1", timestamp="now")),
            both("unparseable_timestamp"),
        ),
        (
            json.dumps(
                _event(
                    "m-badts-date",
                    "track",
                    event="E",
                    userId="u1",
                    timestamp="2026-02-28T10:00:00Z",
                    sentAt="2026-02-30T10:00:00Z",
                )
            ),
            both("unparseable_timestamp"),
        ),
        (json.dumps(_event("m-norecv", "track", None, event="E", userId="u1")), both("missing_received_at")),
        (json.dumps(_event("m-badrecv", "track", "22/11/2026", event="E", userId="u1")), both("unparseable_timestamp")),
        # A bad copy of a good message: rejected, and its valid twin is still an event.
        (json.dumps(_event("m-dup", "bogus", "2026-11-22T10:00:00.000Z", anonymousId="anon-3")), both("unknown_type")),
        # Valid for Python's json (the loader) but not for every warehouse's JSON type.
        (
            '{"messageId": "m-surrogate", "type": "track", "event": "E", "userId": "u1", '
            '"receivedAt": "2026-11-22T10:00:00.000Z", "properties": {"s": "\\ud800"}}',
            both("invalid_json"),
        ),
        (
            '{"messageId": "m-nan", "type": "track", "event": "E", "userId": "u1", '
            '"receivedAt": "2026-11-22T10:00:00.000Z", "properties": {"x": NaN}}',
            {"duckdb": None, "postgres": "invalid_json"},
        ),
        (
            '{"messageId": "m-nul", "type": "track", "event": "E", "userId": "u1", '
            '"receivedAt": "2026-11-22T10:00:00.000Z", "properties": {"s": "a\\u0000b"}}',
            {"duckdb": None, "postgres": "invalid_json"},
        ),
    ]


def raw_lines() -> list[tuple[str, int, str]]:
    """(source_object, line_number, line) for every raw line, valid and not."""
    a = [
        json.dumps(
            _event(
                "m-track",
                "track",
                "2026-11-22T10:15:07.000Z",
                event="Order Completed",
                userId="u1",
                anonymousId="anon-1",
                properties=PROPERTIES,
                context=CONTEXT,
                timestamp="2026-11-22T10:15:00.123Z",
                sentAt="2026-11-22T10:15:05.123Z",
            ),
            ensure_ascii=False,
        ),
        # Client clock years off: the skew correction puts it back at arrival minus transit.
        json.dumps(
            _event(
                "m-skew",
                "track",
                "2026-11-22T10:00:10.000Z",
                event="Clock Wrong",
                userId="u1",
                timestamp="2020-01-01T00:00:00Z",
                sentAt="2020-01-01T00:00:10Z",
            )
        ),
        json.dumps(
            _event(
                "m-identify",
                "identify",
                "2026-11-22T10:00:03.000Z",
                anonymousId="anon-2",
                traits={"email": "zoe@example.com", "name": "Zoë", "plan": "pro", "logins": 3},
                originalTimestamp="2026-11-22T12:00:00+02:00",
                timestamp="2026-11-22T09:00:00Z",
                sentAt="2026-11-22T12:00:01+0200",
            )
        ),
        json.dumps(
            _event(
                "m-page",
                "page",
                "2026-11-22T09:30:01.000Z",
                name="Pricing",
                userId="u1",
                timestamp="2026-11-22T11:30:00+02:00",
                properties={
                    "url": "https://shop.example/pricing",
                    "path": "/pricing",
                    "title": "Pricing",
                    "referrer": "https://ref.example/",
                    "search": "?a=1",
                    "session_id": "sess-props",
                },
                context={"library": {"name": "analytics.js", "version": "5.2.0"}},
            )
        ),
        json.dumps(
            _event(
                "m-screen",
                "screen",
                "2026-11-23T02:31:00.000Z",
                name="Home",
                anonymousId="anon-2",
                timestamp="2026-11-23 02:30:00",
                properties={"url": "app://home"},
                context={"session_id": "sess-snake", "library": {"name": "analytics-ios", "version": "4.1"}},
            )
        ),
        json.dumps(
            _event(
                "m-group",
                "group",
                userId="u3",
                groupId="g-1",
                traits={"name": "Acme", "employees": 100},
                timestamp="2026-11-22T10:00:00Z",
            )
        ),
        json.dumps(_event("m-alias", "alias", "2026-11-22T10:20:00.000Z", userId="u4", previousId="anon-9")),
        json.dumps(
            _event(
                "m-dup",
                "track",
                "2026-11-22T10:59:59.000Z",
                event="Button Clicked",
                anonymousId="anon-3",
                properties={"copy": "first"},
            )
        ),
        json.dumps(
            _event(
                "m-dup",
                "track",
                "2026-11-22T10:59:59.000Z",
                event="Button Clicked",
                anonymousId="anon-3",
                properties={"copy": "same time, later line"},
            )
        ),
        json.dumps(_event("m-numeric", "track", event="Signed Up", userId=12345)),
        # Queued offline for 3 days across the end of US daylight saving time (1 Nov 2026).
        json.dumps(
            _event(
                "m-offline",
                "screen",
                "2026-11-02T12:00:05.000Z",
                name="Offline",
                anonymousId="anon-4",
                timestamp="2026-10-30T12:00:00Z",
                sentAt="2026-11-02T12:00:00Z",
            )
        ),
    ]
    a += [line for line, _reason in rejected_lines()]
    b = [
        # A retry received later, in a later object: must lose to the first copy.
        json.dumps(
            _event(
                "m-dup",
                "track",
                "2026-11-22T11:00:05.000Z",
                event="Button Clicked",
                anonymousId="anon-3",
                properties={"copy": "late"},
            )
        ),
    ]
    return [(OBJ_A, i, line) for i, line in enumerate(a, 1)] + [(OBJ_B, i, line) for i, line in enumerate(b, 1)]


def raw_rows() -> list[tuple]:
    """Rows as the loader would write them (see the raw.events_raw contract)."""
    return [
        raw_row(line, obj, n, *(("load-a", LOADED_A) if obj == OBJ_A else ("load-b", LOADED_B)))
        for obj, n, line in raw_lines()
    ]


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request, tmp_path_factory) -> Warehouse:
    wh = make_warehouse(request.param, tmp_path_factory.mktemp(f"dbt-{request.param}"), request, "trackway_dbt_models")
    wh.execute(INSERT_RAW, raw_rows())
    wh.build_result, wh.build_seconds = wh.dbt("build")
    print(f"\ndbt build on {wh.kind}: {wh.build_seconds:.1f}s")
    return wh


def _events(wh: Warehouse) -> dict[str, dict]:
    return {row["event_id"]: row for row in wh.query("select * from analytics.events")}


_json = as_json
_test_statuses = dbt_test_statuses


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_build_succeeds_and_runs_the_data_tests(warehouse):
    result = warehouse.build_result
    assert result.exception is None
    statuses = _test_statuses(result)
    failing = {name: status for name, status in statuses.items() if status != "pass"}
    assert result.success, failing
    assert not failing
    expected = {
        "unique_events_event_id",
        "not_null_events_event_id",
        "not_null_events_occurred_at",
        "not_null_events_received_at",
        "assert_every_raw_line_is_accounted_for",
    }
    assert expected <= set(statuses), sorted(statuses)
    assert any(name.startswith("accepted_values_events_event_type") for name in statuses)
    models = {r.node.name for r in result.result.results if r.node.resource_type == "model"}
    assert {
        "stg_events",
        "int_events_validated",
        "int_events_deduplicated",
        "int_events_new",
        "events",
        "events_rejected",
    } <= models


def test_each_message_is_one_event(warehouse):
    events = _events(warehouse)
    expected = {
        "m-track",
        "m-skew",
        "m-identify",
        "m-page",
        "m-screen",
        "m-group",
        "m-alias",
        "m-dup",
        "m-numeric",
        "m-offline",
    }
    if warehouse.kind == "duckdb":
        expected |= {"m-nan", "m-nul"}  # DuckDB's JSON type stores both; PostgreSQL's jsonb cannot
    assert set(events) == expected
    dup = events["m-dup"]
    assert _json(dup["properties"]) == {"copy": "first"}
    assert (dup["source_object"], dup["line_number"]) == (OBJ_A, 8)


def test_event_columns_are_typed_and_mapped(warehouse):
    events = _events(warehouse)
    track = events["m-track"]
    assert track["event_type"] == "track" and track["event_name"] == "Order Completed"
    assert track["page_name"] is None
    assert (track["user_id"], track["anonymous_id"], track["source_id"]) == ("u1", "anon-1", "web")
    assert track["session_id"] == "1700000000123"
    # Skew: client said 10:15:00.123 and sent at 10:15:05.123 (5 s in flight by its clock);
    # the collector got it at 10:15:07.000, so it happened at 10:15:02.000.
    assert track["occurred_at"] == _utc("2026-11-22T10:15:02Z")
    assert track["original_timestamp"] == _utc("2026-11-22T10:15:00.123Z")
    assert track["sent_at"] == _utc("2026-11-22T10:15:05.123Z")
    assert track["received_at"] == _utc("2026-11-22T10:15:07Z")
    assert track["loaded_at"] == LOADED_A
    assert track["event_date"] == date(2026, 11, 22)
    assert (track["page_url"], track["page_path"], track["page_title"], track["referrer"], track["page_search"]) == (
        "https://shop.example/checkout?step=2",
        "/checkout",
        "Checkout",
        "https://search.example/",
        "?step=2",
    )
    assert (track["user_agent"], track["ip"], track["locale"]) == (
        "Mozilla/5.0 (X11; Linux x86_64)",
        "203.0.113.7",
        "de-DE",
    )
    assert (track["library_name"], track["library_version"]) == ("analytics.js", "5.2.0")
    assert _json(track["context"]) == CONTEXT
    assert (track["source_object"], track["line_number"]) == (OBJ_A, 1)

    skew = events["m-skew"]
    assert skew["occurred_at"] == _utc("2026-11-22T10:00:00Z")
    assert skew["original_timestamp"] == _utc("2020-01-01T00:00:00Z")

    identify = events["m-identify"]
    assert identify["event_name"] == "Identify" and identify["user_id"] is None and identify["anonymous_id"] == "anon-2"
    # originalTimestamp (with offset) wins over timestamp; skew-corrected against sentAt (+0200 form).
    assert identify["original_timestamp"] == _utc("2026-11-22T10:00:00Z")
    assert identify["occurred_at"] == _utc("2026-11-22T10:00:02Z")
    assert _json(identify["traits"]) == {"email": "zoe@example.com", "name": "Zoë", "plan": "pro", "logins": 3}

    page = events["m-page"]
    assert (page["event_name"], page["page_name"]) == ("Page Viewed", "Pricing")
    assert page["occurred_at"] == _utc("2026-11-22T09:30:00Z")  # +02:00 offset, no sentAt
    assert (page["page_url"], page["page_path"], page["page_title"], page["referrer"], page["page_search"]) == (
        "https://shop.example/pricing",
        "/pricing",
        "Pricing",
        "https://ref.example/",
        "?a=1",
    )
    assert page["session_id"] == "sess-props"

    screen = events["m-screen"]
    assert (screen["event_name"], screen["page_name"], screen["session_id"]) == ("Screen Viewed", "Home", "sess-snake")
    assert screen["occurred_at"] == _utc("2026-11-23T02:30:00Z")  # zone-less means UTC, not the session zone
    assert screen["event_date"] == date(2026, 11, 23)  # the 22nd in the session's zone
    assert screen["page_url"] is None  # properties.url is a fallback for page calls only

    group = events["m-group"]
    assert (group["event_name"], group["group_id"], group["user_id"]) == ("Group", "g-1", "u3")
    assert _json(group["traits"]) == {"name": "Acme", "employees": 100}

    alias = events["m-alias"]
    assert (alias["event_name"], alias["previous_id"], alias["user_id"]) == ("Alias", "anon-9", "u4")
    assert alias["occurred_at"] == alias["received_at"] == _utc("2026-11-22T10:20:00Z")  # no client time at all
    assert alias["original_timestamp"] is None

    assert events["m-numeric"]["user_id"] == "12345"

    # Calendar-day interval arithmetic in the session zone would be an hour off here.
    assert events["m-offline"]["occurred_at"] == _utc("2026-10-30T12:00:05Z")
    assert events["m-offline"]["event_date"] == date(2026, 10, 30)


def test_properties_round_trip(warehouse):
    props = _json(_events(warehouse)["m-track"]["properties"])
    assert props == PROPERTIES
    assert isinstance(props["total"], int) and props["order"]["items"][0]["sku"] == "é-ü"


def test_every_bad_line_is_rejected_with_a_reason(warehouse):
    rows = warehouse.query("select * from analytics.events_rejected")
    by_raw = {r["raw"]: r for r in rows}
    assert len(by_raw) == len(rows)
    expected = {line: reasons[warehouse.kind] for line, reasons in rejected_lines() if reasons[warehouse.kind]}
    assert {raw: r["reject_reason"] for raw, r in by_raw.items()} == expected
    positions = {line: (obj, n) for obj, n, line in raw_lines()}
    assert all(
        (r["source_object"], r["line_number"]) == positions[r["raw"]] for r in rows
    )  # lineage and raw kept exactly
    assert all(r["reject_detail"] and r["load_id"] == "load-a" and r["loaded_at"] == LOADED_A for r in rows)

    garbage = by_raw["this is not json"]
    assert garbage["parse_error"].startswith("invalid JSON") and garbage["message_id"] is None
    details = {r["message_id"]: r["reject_detail"] for r in rows if r["message_id"]}
    assert "sentAt=2026-02-30T10:00:00Z" in details["m-badts-date"]
    assert "timestamp=now" in details["m-badts-now"]
    assert "'purchase'" in details["m-unknown"]
    assert "'bogus'" in details["m-dup"]


def test_data_tests_can_fail(warehouse):
    """Inject violations into the built tables; dbt test must report them."""
    duplicate = "insert into analytics.events select * from analytics.events where event_id = 'm-track'"
    if warehouse.kind == "postgres":  # the unique index on event_id already refuses it
        import psycopg

        with pytest.raises(psycopg.errors.UniqueViolation):
            warehouse.execute(duplicate)
    else:
        warehouse.execute(duplicate)
    warehouse.execute("delete from analytics.events where event_id = 'm-alias'")
    warehouse.execute("update analytics.events_rejected set reject_reason = 'whatever' where raw = 'this is not json'")
    result, _ = warehouse.dbt("test", "--select", "events", "events_rejected", "assert_every_raw_line_is_accounted_for")
    assert not result.success
    statuses = _test_statuses(result)
    assert statuses["unique_events_event_id"] == ("pass" if warehouse.kind == "postgres" else "fail")
    assert statuses["assert_every_raw_line_is_accounted_for"] == "fail"
    assert any(
        name.startswith("accepted_values_events_rejected_reject_reason") and status == "fail"
        for name, status in statuses.items()
    )
    assert statuses["not_null_events_event_id"] == "pass"
