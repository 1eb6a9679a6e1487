"""The Nestful demo generator and its Segment-SDK sender."""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import re
import threading
import uuid
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from trackway.demo import Call, generate_day, send_calls, summarize

DAY = date(2026, 11, 22)
DAY_START = datetime(2026, 11, 22, tzinfo=UTC)
WRITE_KEY = "test-write-key"
METHODS = {"track", "page", "screen", "identify", "group", "alias"}


@pytest.fixture(scope="module")
def day_calls() -> list[Call]:
    return generate_day(DAY)  # the default demo day: 300 people, seed 7


# --------------------------------------------------------------------------- generation


def test_same_seed_same_calls_and_other_seed_other_calls():
    first = generate_day(DAY, people=25, seed=11)
    again = generate_day(DAY, people=25, seed=11)
    other = generate_day(DAY, people=25, seed=12)
    assert first == again
    assert {c.message_id for c in first}.isdisjoint({c.message_id for c in other})
    assert [c.kwargs.get("event") for c in first] != [c.kwargs.get("event") for c in other]


def test_a_demo_day_has_the_promised_volume(day_calls):
    summary = summarize(day_calls)
    assert 15_000 <= summary["calls"] <= 40_000
    assert summary["calls"] == len(day_calls)
    assert summary["anonymous_ids"] == 300
    assert set(summary["by_method"]) == METHODS
    assert 300 < summary["sessions"] < 3000
    assert 50 < summary["users"] < 300


def test_timestamps_are_inside_the_day_utc_and_sorted(day_calls):
    stamps = [c.kwargs["timestamp"] for c in day_calls]
    assert all(ts.tzinfo is not None and ts.utcoffset() == timedelta(0) for ts in stamps)
    assert all(DAY_START <= ts < DAY_START + timedelta(days=1) for ts in stamps)
    assert stamps == sorted(stamps)
    assert all(ts.microsecond % 1000 == 0 for ts in stamps)  # the SDK serialises milliseconds


def test_every_call_is_well_formed(day_calls):
    for call in day_calls:
        kw = call.kwargs
        assert call.method in METHODS
        assert kw.get("user_id") or kw.get("anonymous_id"), call
        if call.method == "alias":
            assert kw["previous_id"] and "anonymous_id" not in kw
        if call.method == "track":
            assert re.fullmatch(r"[A-Z][a-z]+( [A-Z][a-z]+)+", kw["event"]), kw["event"]  # Object Action
            assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", key) for key in kw["properties"]), kw["properties"]
    ids = [c.message_id for c in day_calls]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i) for i in ids)


def test_funnel_is_plausible(day_calls):
    methods = Counter(c.method for c in day_calls)
    events = Counter(c.kwargs["event"] for c in day_calls if c.method == "track")
    assert methods["page"] > events["Listings Searched"] > events["Listing Viewed"] > events["Showing Requested"] > 0
    assert 0 < events["Newsletter Subscribed"] < events["Showing Requested"]
    assert 0 < events["Signed Up"] < methods["identify"]
    assert 0 < methods["group"] < 100 and 0 < methods["alias"] < 100 and 0 < methods["screen"] < methods["page"]


def test_event_properties_have_the_documented_shape(day_calls):
    seen = set()
    for call in day_calls:
        kw = call.kwargs
        event = kw.get("event")
        props = kw.get("properties", {})
        if event == "Listing Viewed":
            assert re.fullmatch(r"lst_\d{5}", props["listing_id"])
            assert isinstance(props["price_per_night"], (int, float)) and props["price_per_night"] > 0
            assert props["currency"] == "USD" and isinstance(props["bedrooms"], int) and props["property_type"]
        elif event == "Listings Searched":
            check_in, check_out = date.fromisoformat(props["check_in"]), date.fromisoformat(props["check_out"])
            assert DAY < check_in < check_out
            assert props["min_price"] < props["max_price"] and props["guests"] >= 1 and props["results_count"] >= 0
        elif event == "Showing Requested":
            assert date.fromisoformat(props["requested_date"]) > DAY and props["message_length"] >= 0
            assert kw["user_id"]
        elif event == "Newsletter Subscribed":
            assert props["source"] and props["topics"] and isinstance(props["topics"], list)
        elif event == "Signed Up":
            assert props["method"] in {"email", "google", "apple"} and props["role"] in {"renter", "landlord"}
        elif call.method == "identify":
            traits = kw["traits"]
            assert traits["email"].split("@")[1] in {"example.com", "example.org", "example.net"}
            assert traits["role"] in {"renter", "landlord"} and traits["name"]
            assert datetime.fromisoformat(traits["created_at"]) <= kw["timestamp"]
        elif call.method == "group":
            assert kw["group_id"].startswith("agc_") and kw["traits"]["name"] and kw["traits"]["industry"]
        elif call.method == "page":
            page = kw["context"]["page"]
            assert page == {k: kw["properties"][k] for k in ("path", "referrer", "search", "title", "url")}
            assert page["url"].endswith(page["path"] + page["search"]) and kw["name"] and kw["category"]
        elif call.method == "screen":
            assert kw["context"]["app"]["name"] == "Nestful" and "page" not in kw["context"]
        seen.add(event or call.method)
    assert {
        "Listing Viewed",
        "Listings Searched",
        "Showing Requested",
        "Newsletter Subscribed",
        "Signed Up",
        "identify",
        "group",
        "page",
        "screen",
        "alias",
    } <= seen


def test_anonymous_visitors_sign_up_and_keep_their_anonymous_id(day_calls):
    by_anon = defaultdict(list)
    for call in day_calls:
        if call.kwargs.get("anonymous_id"):
            by_anon[call.kwargs["anonymous_id"]].append(call)
    converted = 0
    for calls in by_anon.values():
        signed = [i for i, c in enumerate(calls) if c.kwargs.get("event") == "Signed Up"]
        if not signed:
            assert len({c.kwargs.get("user_id") for c in calls}) == 1  # always anonymous or always known
            continue
        converted += 1
        user_id = calls[signed[0]].kwargs["user_id"]
        first_identify = next(i for i, c in enumerate(calls) if c.method == "identify")
        assert 0 < first_identify < signed[0]
        assert all("user_id" not in c.kwargs for c in calls[:first_identify])  # anonymous before
        assert all(c.kwargs["user_id"] == user_id for c in calls[first_identify:])  # known after, same anonymousId
    assert converted >= 10


def test_sessions_are_consistent(day_calls):
    sessions = defaultdict(list)
    for call in day_calls:
        sessions[call.kwargs["context"]["sessionId"]].append(call)
    for session_id, calls in sessions.items():
        assert isinstance(session_id, int)
        # The id is the session's start in epoch milliseconds, like RudderStack's.
        start = datetime.fromtimestamp(session_id / 1000, tz=UTC)
        assert calls[0].kwargs["timestamp"] == start
        assert [c.kwargs["context"].get("sessionStart") for c in calls] == [True] + [None] * (len(calls) - 1)
        assert calls[-1].kwargs["timestamp"] - start < timedelta(hours=1)
        assert len({c.kwargs.get("anonymous_id") for c in calls if c.method != "alias"}) == 1
        assert len({c.kwargs["context"]["userAgent"] for c in calls}) == 1
        assert len({c.kwargs["context"]["locale"] for c in calls}) == 1
        gaps = [(b.kwargs["timestamp"] - a.kwargs["timestamp"]).total_seconds() for a, b in itertools.pairwise(calls)]
        assert all(0 < g <= 300 for g in gaps)
        assert all("campaign" not in c.kwargs["context"] for c in calls[1:])
    assert sum(1 for calls in sessions.values() if "campaign" in calls[0].kwargs["context"]) > 100


def test_traffic_peaks_in_the_evening(day_calls):
    hours = Counter(c.kwargs["timestamp"].hour for c in day_calls)
    assert sum(hours[h] for h in range(18, 23)) > 3 * sum(hours[h] for h in range(2, 7))


def test_summarize_counts():
    calls = generate_day(DAY, people=10, seed=3)
    summary = summarize(calls)
    assert summary["calls"] == len(calls)
    assert sum(summary["by_method"].values()) == len(calls)
    assert sum(summary["by_event"].values()) == summary["by_method"]["track"]
    assert summary["anonymous_ids"] == 10
    assert summary["sessions"] == len({c.kwargs["context"]["sessionId"] for c in calls})
    assert summarize([])["calls"] == 0


def test_rejects_a_datetime_for_the_day():
    with pytest.raises(TypeError):
        generate_day(DAY_START)


# --------------------------------------------------------------------------- sending through the real SDK


class _Collector:
    """A stand-in Segment endpoint: records POST /v1/batch bodies and answers like Segment."""

    def __init__(self, status: int = 200, fail_first: int = 0):
        self.status = status
        self.fail_first = fail_first  # answer 500 to this many requests first
        self.batches: list[dict] = []
        self.requests = 0
        self.auth: set[str] = set()
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with collector.lock:
                    collector.requests += 1
                    collector.auth.add(self.headers.get("Authorization", ""))
                    if collector.fail_first > 0:
                        collector.fail_first -= 1
                        status, reply = 500, {"code": "internal", "message": "try again"}
                    elif self.path != "/v1/batch":
                        status, reply = 404, {"code": "not_found", "message": self.path}
                    elif collector.status != 200:
                        status, reply = collector.status, {"code": "unauthorized", "message": "bad write key"}
                    else:
                        collector.batches.append(json.loads(body))
                        status, reply = 200, {"success": True}
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # port 0: any free port
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def messages(self) -> list[dict]:
        return [m for b in self.batches for m in b["batch"]]

    def close(self):
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()


@pytest.fixture
def collector_factory():
    made = []

    def make(**kwargs) -> _Collector:
        made.append(_Collector(**kwargs))
        return made[-1]

    yield make
    for c in made:
        c.close()


def test_send_calls_delivers_every_call_intact(collector_factory):
    calls = generate_day(DAY, people=30, seed=5)  # > one 1000-call chunk, so flushing between chunks is exercised
    assert 1000 < len(calls) < 5000
    pristine = json.dumps([c.kwargs for c in calls], default=str)
    server = collector_factory()
    seen_progress = []
    report = send_calls(calls, server.url, WRITE_KEY, progress=lambda done, total: seen_progress.append((done, total)))

    assert (report.calls, report.failed, report.acknowledged, report.skipped) == (len(calls), 0, len(calls), 0)
    assert report.seconds > 0
    assert seen_progress[-1] == (len(calls), len(calls)) and len(seen_progress) >= 2
    assert [d for d, _ in seen_progress] == sorted(d for d, _ in seen_progress)
    assert json.dumps([c.kwargs for c in calls], default=str) == pristine  # the SDK mutated copies, not our calls
    assert server.auth == {"Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
    assert all(b["writeKey"] == WRITE_KEY and b["sentAt"] for b in server.batches)
    assert max(len(b["batch"]) for b in server.batches) <= 100

    received = {m["messageId"]: m for m in server.messages()}
    assert len(server.messages()) == len(calls)
    assert set(received) == {c.message_id for c in calls}
    for call in calls:
        kw, msg = call.kwargs, received[call.message_id]
        assert msg["type"] == call.method
        assert datetime.fromisoformat(msg["timestamp"]) == kw["timestamp"]
        assert msg["context"]["sessionId"] == kw["context"]["sessionId"]
        assert msg["context"]["library"]["name"] == "analytics-python"
        assert msg.get("userId") == kw.get("user_id") and msg.get("anonymousId") == kw.get("anonymous_id")
        if call.method == "track":
            assert msg["event"] == kw["event"] and msg["properties"] == kw["properties"]
        if call.method in ("page", "screen"):
            assert msg["name"] == kw["name"] and msg["properties"] == kw["properties"]
        if call.method == "identify":
            assert msg["traits"] == kw["traits"]
        if call.method == "alias":
            assert msg["previousId"] == kw["previous_id"]
    assert summarize(calls)["calls"] == len(received)


def test_a_retried_batch_is_delivered_with_the_same_message_ids(collector_factory):
    calls = generate_day(DAY, people=3, seed=5)
    server = collector_factory(fail_first=1)
    report = send_calls(calls, server.url, WRITE_KEY, batch_size=50)
    assert (report.failed, report.acknowledged) == (0, len(calls))
    assert server.requests == len(server.batches) + 1
    assert sorted(m["messageId"] for m in server.messages()) == sorted(c.message_id for c in calls)


def test_rejected_calls_are_reported_failed_and_sending_stops(collector_factory):
    calls = generate_day(DAY, people=5, seed=5)
    server = collector_factory(status=401)
    progress = []
    report = send_calls(calls, server.url, "wrong-key", progress=lambda d, t: progress.append((d, t)))
    # The first batch is a probe: when all of it is refused the rest is not attempted, and says so.
    assert report.calls == report.failed == 100 and report.acknowledged == 0
    assert report.skipped == len(calls) - 100
    assert progress == [(100, len(calls))]
    assert server.batches == [] and server.requests == 1
    assert any("401" in e for e in report.errors)


def test_rejection_after_the_probe_counts_every_refused_call(collector_factory):
    calls = generate_day(DAY, people=30, seed=5)
    server = collector_factory()
    accepted_first = []

    def progress(done, total):
        if not accepted_first:
            accepted_first.append(done)
            server.status = 401  # e.g. the write key was revoked mid-run

    report = send_calls(calls, server.url, WRITE_KEY, progress=progress)
    assert accepted_first == [100]
    assert report.calls == 100 + 1000 and report.failed == 1000 and report.acknowledged == 100
    assert report.skipped == len(calls) - report.calls
    assert len(server.messages()) == 100


def test_an_unreachable_collector_is_reported_not_hung(collector_factory):
    server = collector_factory()
    url = server.url
    server.close()  # nothing listens on that port any more
    calls = generate_day(DAY, people=5, seed=5)
    report = send_calls(calls, url, WRITE_KEY, batch_size=50)
    assert report.calls == report.failed == 50 and report.acknowledged == 0
    assert report.skipped == len(calls) - 50 and report.errors


def test_bad_call_methods_are_refused(collector_factory):
    server = collector_factory()
    with pytest.raises(ValueError, match="flush"):
        send_calls([Call("flush", {})], server.url, WRITE_KEY)
    assert server.requests == 0
