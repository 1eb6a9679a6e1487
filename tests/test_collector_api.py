"""The collector's HTTP API, over real HTTP, with the official Segment SDK as client."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import re
import uuid

import pytest
import requests
from segment.analytics import Client
from segment.analytics.request import APIError

from trackway.pseudonym import pseudonymise

try:
    from collector_helpers import CollectorProcess, local_store, make_keyring, read_lines, wait_for, wait_for_events
except ImportError:  # tests/ imported as a package
    from tests.collector_helpers import (
        CollectorProcess,
        local_store,
        make_keyring,
        read_lines,
        wait_for,
        wait_for_events,
    )

MAX_BODY = 100_000
RECEIVED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    home = tmp_path_factory.mktemp("collector")
    keyring = make_keyring(home / "keys.yaml")
    proc = CollectorProcess(
        home, TRACKWAY_MAX_BODY_BYTES=str(MAX_BODY), TRACKWAY_PSEUDONYM_KEYS=str(home / "keys.yaml")
    ).start()
    proc.keyring = keyring
    yield proc
    proc.close()


@pytest.fixture(scope="module")
def store(collector):
    return local_store(collector.home)


def _auth(key: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def _mid() -> str:
    return f"test-{uuid.uuid4()}"


def _assert_sent_plus_enrichments(stored: dict, sent: dict, source: str, keyring=None) -> None:
    """Every field the client sent is stored unchanged; only the collector's fields are added.

    Save the privacy defaults (docs/privacy.md): an identify's traits.email is a pseudonym.
    """
    if keyring is not None and sent.get("type") == "identify" and "email" in sent.get("traits", {}):
        sent = {**sent, "traits": {**sent["traits"], "email": pseudonymise(sent["traits"]["email"], keyring)}}
    for key, value in sent.items():
        if key == "context":
            assert stored["context"] == {**value, "ip": stored["context"]["ip"]}
        else:
            assert stored[key] == value, key
    assert RECEIVED_AT.match(stored["receivedAt"])
    assert stored["sourceId"] == source
    assert stored["context"]["ip"] == "127.0.0.0"  # the request address, truncated to its /24 (docs/privacy.md)
    assert "writeKey" not in stored
    added = set(stored) - set(sent)
    assert added <= {"receivedAt", "sourceId", "sentAt", "context"}


def test_sdk_every_call_type_lands_in_one_object_line_each(collector, store):
    client = Client("key-web", host=collector.url, sync_mode=True)
    sent = [
        client.track("u1", "Order Completed", {"total": 12.5, "items": [1, 2]}, timestamp=None, message_id=_mid())[1],
        client.page("u1", "Docs", "Install", {"path": "/install"}, message_id=_mid())[1],
        client.screen(None, "App", "Home", {"x": 1}, anonymous_id="anon-1", message_id=_mid())[1],
        client.identify("u1", {"email": "u1@example.com", "plan": "pro"}, message_id=_mid())[1],
        client.group("u1", "acme", {"name": "Acme"}, message_id=_mid())[1],
        client.alias("anon-1", "u1", message_id=_mid())[1],
    ]
    rows = wait_for_events(store, [m["messageId"] for m in sent])
    for msg in sent:
        stored = rows[msg["messageId"]]
        _assert_sent_plus_enrichments(stored, msg, "web", collector.keyring)
        assert stored["context"]["library"]["name"] == "analytics-python"
        assert stored["sentAt"]  # the SDK sends sentAt at batch level only
    assert [rows[m["messageId"]]["type"] for m in sent] == ["track", "page", "screen", "identify", "group", "alias"]


def test_sdk_async_batches_gzip_and_second_source(collector, store):
    client = Client("key-backend", host=collector.url, gzip=True, upload_size=20, upload_interval=0.05)
    failures = []
    client.on_error = lambda err, batch: failures.append(err)
    ids = [client.track(f"user-{i}", "Clicked", {"i": i}, message_id=_mid())[1]["messageId"] for i in range(60)]
    client.flush()
    client.join()
    assert failures == []
    rows = wait_for_events(store, ids)
    assert {rows[i]["sourceId"] for i in ids} == {"backend"}
    assert sorted(rows[i]["properties"]["i"] for i in ids) == list(range(60))


def test_basic_auth_only_and_body_write_key_only(collector, store):
    a, b = _mid(), _mid()
    r1 = requests.post(
        collector.url + "/v1/track", json={"userId": "u", "event": "A", "messageId": a}, headers=_auth("key-web")
    )
    # analytics.js style: text/plain, key in the body, no Authorization header
    r2 = requests.post(
        collector.url + "/v1/track",
        data=json.dumps({"writeKey": "key-backend", "anonymousId": "x", "event": "B", "messageId": b}),
        headers={"Content-Type": "text/plain"},
    )
    assert (r1.status_code, r1.json()) == (200, {"success": True})
    assert (r2.status_code, r2.json()) == (200, {"success": True})
    rows = wait_for_events(store, [a, b])
    assert rows[a]["sourceId"] == "web" and rows[b]["sourceId"] == "backend"
    assert "writeKey" not in rows[b]


def test_single_event_endpoints_imply_type_and_keep_fields_unchanged(collector, store):
    sent = {}
    for path in ("track", "page", "screen", "identify", "group", "alias"):
        event = {
            "userId": "u-77",
            "messageId": _mid(),
            "timestamp": "2026-11-23T10:00:00+02:00",  # kept verbatim, offset and all
            "properties": {"nested": {"deep": [1, "two", None, True]}, "unicode": "grüße ✓"},
            "context": {"ip": "203.0.113.9", "locale": "de-DE"},
            "integrations": {"All": False},
            "sentAt": "2026-11-23T08:00:01.000Z",
            "custom_field": 42,
        }
        if path == "track":
            event["event"] = "Signed Up"
        if path == "group":
            event["groupId"] = "g-1"
        if path == "alias":
            event["previousId"] = "old-1"
        r = requests.post(f"{collector.url}/v1/{path}", json=event, headers=_auth("key-web"))
        assert r.status_code == 200, r.text
        sent[path] = event
    rows = wait_for_events(store, [e["messageId"] for e in sent.values()])
    for path, event in sent.items():
        stored = rows[event["messageId"]]
        assert stored["type"] == path
        # the client-given ip is not overwritten by the request's (only truncated: 203.0.113.9 -> its /24)
        assert stored["context"] == {**event["context"], "ip": "203.0.113.0"}
        assert {k: v for k, v in stored.items() if k not in ("type", "receivedAt", "sourceId", "context")} == {
            k: v for k, v in event.items() if k != "context"
        }


def test_message_id_assigned_when_missing_and_forwarded_for_not_trusted(collector, store):
    marker = _mid()
    r = requests.post(
        collector.url + "/v1/track",
        json={"userId": "u", "event": "NoId", "properties": {"marker": marker}},
        headers={**_auth("key-web"), "X-Forwarded-For": "198.51.100.7, 10.0.0.1"},
    )
    assert r.status_code == 200

    def find():
        return [row for row in read_lines(store, "events/") if row.get("properties", {}).get("marker") == marker]

    (row,) = wait_for(find, "event without messageId")
    assert uuid.UUID(row["messageId"]).version == 4
    assert row["context"]["ip"] == "127.0.0.0"  # the peer's, not the forged header's (truncated)


def test_batch_level_context_integrations_and_sent_at_are_merged(collector, store):
    own, plain = _mid(), _mid()
    body = {
        "writeKey": "key-web",
        "sentAt": "2026-11-23T12:00:00.000Z",
        "context": {"library": {"name": "batch-lib", "version": "9"}, "locale": "fr-FR"},
        "integrations": {"Mixpanel": False},
        "batch": [
            {
                "type": "track",
                "event": "E",
                "userId": "u",
                "messageId": own,
                "sentAt": "2026-11-23T11:59:59.000Z",
                "context": {"library": {"name": "own-lib"}, "locale": "en-US"},
                "integrations": {"All": True},
            },
            {"type": "identify", "userId": "u", "messageId": plain},
        ],
    }
    r = requests.post(collector.url + "/v1/batch", json=body)
    assert r.json() == {"success": True, "accepted": 2, "quarantined": 0}
    rows = wait_for_events(store, [own, plain])
    assert rows[own]["context"] == {
        "library": {"name": "own-lib", "version": "9"},
        "locale": "en-US",
        "ip": "127.0.0.0",
    }
    assert rows[own]["integrations"] == {"All": True, "Mixpanel": False}
    assert rows[own]["sentAt"] == "2026-11-23T11:59:59.000Z"
    assert rows[plain]["context"] == {
        "library": {"name": "batch-lib", "version": "9"},
        "locale": "fr-FR",
        "ip": "127.0.0.0",
    }
    assert rows[plain]["sentAt"] == "2026-11-23T12:00:00.000Z"


def test_import_is_an_alias_of_batch(collector, store):
    mid = _mid()
    r = requests.post(
        collector.url + "/v1/import",
        json={"batch": [{"type": "page", "userId": "u", "messageId": mid}]},
        headers=_auth("key-web"),
    )
    assert r.json()["accepted"] == 1
    wait_for_events(store, [mid])


def test_cors_preflight_and_header(collector):
    r = requests.options(
        collector.url + "/v1/batch",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
    )
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] in ("*", "https://shop.example")
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert "authorization" in r.headers["Access-Control-Allow-Headers"].lower()
    r = requests.post(collector.url + "/v1/track", data="{", headers={"Origin": "https://shop.example"})
    assert r.headers["Access-Control-Allow-Origin"] in ("*", "https://shop.example")


def test_health_counts_live(collector):
    before = collector.health()
    requests.post(collector.url + "/v1/track", json={"userId": "u", "event": "H"}, headers=_auth("key-web"))
    after = collector.health()
    assert after["status"] == "ok"
    assert after["requests"] == before["requests"] + 1
    assert after["events_accepted"] == before["events_accepted"] + 1
    for name in ("events_quarantined", "segments_rotated", "objects_written", "spool_pending_bytes", "uptime_seconds"):
        assert name in after
    assert after["uptime_seconds"] > before["uptime_seconds"]


# -- bad input ----------------------------------------------------------------


def _error(r: requests.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["success"] is False and isinstance(body["error"], str) and len(body["error"]) > 15
    return body["error"]


def test_bad_requests_get_clear_errors_and_lose_nothing(collector, store):
    url = collector.url
    acked = _mid()
    assert requests.post(
        url + "/v1/track", json={"userId": "u", "event": "Before", "messageId": acked}, headers=_auth("key-web")
    ).ok
    rejected = _mid()
    good = {"userId": "u", "event": "Rejected", "messageId": rejected}

    assert "not valid JSON" in _error(
        requests.post(url + "/v1/track", data=b'{"userId": ', headers=_auth("key-web")), 400
    )
    assert "not an object" in _error(requests.post(url + "/v1/track", json=[good], headers=_auth("key-web")), 400)
    assert "NaN" in _error(
        requests.post(
            url + "/v1/track", data=b'{"userId":"u","event":"x","properties":{"v":NaN}}', headers=_auth("key-web")
        ),
        400,
    )
    # One answer for a wrong, missing or malformed key (tests/test_collector_security.py compares them byte for byte).
    assert "unknown write key" in _error(requests.post(url + "/v1/track", json=good, headers=_auth("wrong")), 401)
    assert "unknown write key" in _error(requests.post(url + "/v1/track", json={**good, "writeKey": "wrong"}), 401)
    assert "TRACKWAY_WRITE_KEYS" in _error(requests.post(url + "/v1/track", json=good), 401)
    assert "basic auth" in _error(
        requests.post(url + "/v1/track", json=good, headers={"Authorization": "Bearer x"}), 401
    )
    msg = _error(
        requests.post(url + "/v1/track", json={"event": "x", "messageId": rejected}, headers=_auth("key-web")), 400
    )
    assert "userId" in msg and "anonymousId" in msg
    assert "'event' name" in _error(
        requests.post(url + "/v1/track", json={"userId": "u"}, headers=_auth("key-web")), 400
    )
    assert "'properties' must be a JSON object" in _error(
        requests.post(url + "/v1/track", json={**good, "properties": [1]}, headers=_auth("key-web")), 400
    )
    assert "'batch'" in _error(
        requests.post(url + "/v1/batch", json={"batch": {"a": 1}}, headers=_auth("key-web")), 400
    )
    assert "TRACKWAY_MAX_BODY_BYTES" in _error(
        requests.post(url + "/v1/batch", data=b"x" * (MAX_BODY + 1), headers=_auth("key-web")), 413
    )
    bomb = gzip.compress(json.dumps({"batch": [good], "pad": " " * (MAX_BODY * 50)}).encode())
    assert len(bomb) < MAX_BODY
    assert "decompressed body" in _error(
        requests.post(url + "/v1/batch", data=bomb, headers={**_auth("key-web"), "Content-Encoding": "gzip"}), 413
    )
    assert "not valid gzip" in _error(
        requests.post(url + "/v1/batch", data=b"not gzip", headers={**_auth("key-web"), "Content-Encoding": "gzip"}),
        400,
    )
    assert "not supported" in _error(
        requests.post(url + "/v1/batch", data=b"{}", headers={**_auth("key-web"), "Content-Encoding": "br"}), 415
    )
    msg = _error(
        requests.post(
            url + "/v1/batch",
            json={"batch": [{"type": "track"}, {"type": "nope", "userId": "u"}]},
            headers=_auth("key-web"),
        ),
        400,
    )
    assert "none of the 2 events" in msg and "event 1" in msg
    assert "POST" in _error(requests.get(url + "/v1/track"), 405)
    assert "/v1/batch" in _error(requests.post(url + "/v2/whatever", json=good, headers=_auth("key-web")), 404)

    # Every rejected request stored nothing; the event acknowledged before is intact.
    marker = _mid()
    assert requests.post(
        url + "/v1/track", json={"userId": "u", "event": "After", "messageId": marker}, headers=_auth("key-web")
    ).ok
    rows = wait_for_events(store, [acked, marker])
    assert rejected not in rows
    assert all(
        q["event"].get("messageId") != rejected
        for q in read_lines(store, "quarantine/")
        if isinstance(q["event"], dict)
    )


def test_sdk_sees_401_for_a_wrong_key(collector):
    client = Client("not-a-key", host=collector.url, sync_mode=True)
    with pytest.raises(APIError) as info:
        client.track("u", "x")
    assert info.value.status == 401


def test_mixed_batch_accepts_valid_and_quarantines_invalid(collector, store):
    ok1, ok2, bad_mid = _mid(), _mid(), _mid()
    body = {
        "writeKey": "key-backend",
        "batch": [
            {"type": "track", "userId": "u", "event": "Good", "messageId": ok1},
            {"type": "track", "event": "No user", "messageId": bad_mid, "writeKey": "key-backend"},
            "not an object",
            {"type": "page", "anonymousId": "a", "messageId": ok2},
        ],
    }
    r = requests.post(
        collector.url + "/v1/batch", data=gzip.compress(json.dumps(body).encode()), headers={"Content-Encoding": "gzip"}
    )
    assert r.status_code == 200
    payload = r.json()
    assert payload["success"] is True and payload["accepted"] == 2 and payload["quarantined"] == 2
    assert [e["index"] for e in payload["errors"]] == [1, 2]
    rows = wait_for_events(store, [ok1, ok2])
    assert bad_mid not in rows

    def quarantined():
        lines = read_lines(store, "quarantine/")
        mine = [
            q
            for q in lines
            if q["event"] == "not an object"
            or (isinstance(q["event"], dict) and q["event"].get("messageId") == bad_mid)
        ]
        return mine if len(mine) == 2 else None

    by_event = {json.dumps(q["event"]): q for q in wait_for(quarantined, "quarantined events")}
    no_user = by_event[json.dumps({"type": "track", "event": "No user", "messageId": bad_mid})]  # writeKey dropped
    assert (
        "userId" in no_user["reason"] and no_user["sourceId"] == "backend" and RECEIVED_AT.match(no_user["receivedAt"])
    )
    assert "not an object" in by_event['"not an object"']["reason"]
    keys = store.list("quarantine/")
    assert all(re.search(r"^quarantine/dt=\d{4}-\d{2}-\d{2}/hour=\d{2}/[^/]+\.ndjson\.gz$", k) for k in keys)


def test_chunked_body_and_missing_length(collector, store):
    mid = _mid()
    body = json.dumps({"userId": "u", "event": "Chunked", "messageId": mid}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=30)
    conn.putrequest("POST", "/v1/track")
    conn.putheader("Authorization", _auth("key-web")["Authorization"])
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for part in (body[:10], body[10:]):
        conn.send(b"%x\r\n%s\r\n" % (len(part), part))
    conn.send(b"0\r\n\r\n")
    resp = conn.getresponse()
    assert (resp.status, json.loads(resp.read())) == (200, {"success": True})

    conn.putrequest("POST", "/v1/track")  # same keep-alive connection
    conn.putheader("Authorization", _auth("key-web")["Authorization"])
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 411 and "Content-Length" in json.loads(resp.read())["error"]
    conn.close()
    wait_for_events(store, [mid])


def test_empty_batch_is_answered_at_once(collector):
    # Found by the schemathesis run: an empty batch used to wait forever for a group commit.
    r = requests.post(collector.url + "/v1/batch", json={"batch": []}, headers=_auth("key-web"), timeout=10)
    assert (r.status_code, r.json()) == (200, {"success": True, "accepted": 0, "quarantined": 0})
