"""Other Segment-compatible clients, pointed at the collector by changing only their host.

Each client runs for real (Node SDKs as subprocesses from tests/sdk_clients, RudderStack's
Python SDK in-process, analytics.js' wire format as raw HTTP) and we capture what it actually
put on the wire, then require that every event is in the raw objects with every field equal
to what was sent, plus only the collector's own enrichments, and that the SDK saw no error.
A wrong-key run per client proves its error reporting reaches the test, so "no error" means
something. The Node SDKs come from `make sdk-clients` (npm ci of tests/sdk_clients).
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

try:
    from collector_helpers import DEADLINE, privacy_defaults, wait_for_events
except ImportError:  # tests/ imported as a package
    from tests.collector_helpers import DEADLINE, privacy_defaults, wait_for_events

SDK_DIR = Path(__file__).resolve().parent / "sdk_clients"
RECEIVED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
COLLECTOR_FIELDS = {"receivedAt", "sourceId", "sentAt", "context"}  # the only keys the collector may add
BATCH_SIZE = 15
BATCH_EVENTS = 20


@pytest.fixture(scope="module")
def node():
    exe = shutil.which("node")
    assert exe, "node not found: install Node.js 20+ and run `make sdk-clients`"
    assert (SDK_DIR / "node_modules").is_dir(), f"{SDK_DIR}/node_modules is missing: run `make sdk-clients`"
    return exe


def _calls(tag: str) -> list[dict]:
    """One of each call type plus a burst the SDK must batch; params in the Node SDKs' shape."""
    mid = lambda name: f"{tag}-{name}-{uuid.uuid4().hex[:8]}"  # noqa: E731
    calls = [
        {
            "call": "track",
            "args": {
                "userId": "u-1",
                "event": "Order Completed",
                "messageId": mid("track"),
                "properties": {"total": 12.5, "items": [1, 2], "coupon": None, "note": 'Café ☕ "quoted"'},
                "context": {"app": {"name": "shop", "version": "1.2.3"}, "traits": {"plan": "pro"}},
                "integrations": {"Amplitude": False},
                "timestamp": "2026-01-02T03:04:05.678Z",
            },
        },
        {
            "call": "page",
            "args": {
                "userId": "u-1",
                "category": "Docs",
                "name": "Install",
                "properties": {"path": "/install"},
                "messageId": mid("page"),
            },
        },
        {
            "call": "screen",
            "args": {"anonymousId": "anon-1", "name": "Home", "properties": {"tab": 2}, "messageId": mid("screen")},
        },
        {
            "call": "identify",
            "args": {
                "userId": "u-1",
                "traits": {"email": "u1@example.com", "plan": "pro"},
                "messageId": mid("identify"),
            },
        },
        {
            "call": "group",
            "args": {
                "userId": "u-1",
                "groupId": "acme",
                "traits": {"name": "Acme", "seats": 40},
                "messageId": mid("group"),
            },
        },
        {"call": "alias", "args": {"userId": "u-1", "previousId": "anon-1", "messageId": mid("alias")}},
    ]
    calls += [
        {
            "call": "track",
            "args": {
                "anonymousId": "anon-2",
                "event": "Item Viewed",
                "properties": {"i": i},
                "messageId": mid(f"b{i}"),
            },
        }
        for i in range(BATCH_EVENTS)
    ]
    return calls


def _run_node(node: str, script: str, collector, key: str, calls: list[dict], tmp_path: Path) -> dict:
    calls_path = tmp_path / f"{script}.calls.json"
    calls_path.write_text(json.dumps(calls))
    proc = subprocess.run(
        [node, str(SDK_DIR / script), collector.url, key, str(calls_path), str(BATCH_SIZE)],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        cwd=SDK_DIR,
    )
    assert proc.returncode == 0, f"{script} failed ({proc.returncode}):\n{proc.stderr}"
    return json.loads(proc.stdout)


def _contains(stored, wanted, path="") -> None:
    """Everything in ``wanted`` is in ``stored`` unchanged (SDKs may add keys to objects)."""
    if isinstance(wanted, dict):
        assert isinstance(stored, dict), f"{path}: {stored!r}"
        for key, value in wanted.items():
            assert key in stored, f"{path}.{key} missing"
            _contains(stored[key], value, f"{path}.{key}")
    elif path.endswith(("timestamp", "Timestamp")):  # SDKs re-spell times (Z vs +00:00, µs)
        assert _instant(stored) == _instant(wanted), path
    else:
        assert stored == wanted, f"{path}: stored {stored!r}, sent {wanted!r}"


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _wire_events(requests_sent: list[dict]) -> list[tuple[dict, dict]]:
    """(event, its request body) for every event the client put on the wire."""
    return [(event, req["body"]) for req in requests_sent for event in req["body"]["batch"]]


def _assert_stored_as_sent(store, wire: list[tuple[dict, dict]], source: str, keyring) -> dict[str, dict]:
    """Each stored event equals the wire event plus only the collector's enrichments (and privacy defaults)."""
    rows = wait_for_events(store, [event["messageId"] for event, _ in wire])
    for sent, body in wire:
        event = privacy_defaults(sent, keyring)
        stored = rows[event["messageId"]]
        for key, value in event.items():
            if key == "writeKey":
                assert key not in stored  # the collector drops secrets from the raw store
            elif key == "context":
                assert stored["context"] == {**value, "ip": stored["context"]["ip"]}, event["messageId"]
            else:
                assert stored[key] == value, (event["messageId"], key)
        assert set(stored) - set(event) <= COLLECTOR_FIELDS, set(stored) - set(event)
        assert stored["sentAt"] == event.get("sentAt", body.get("sentAt"))  # batch sentAt fills in
        assert stored["sourceId"] == source and RECEIVED_AT.match(stored["receivedAt"])
        assert stored["context"]["ip"] == event.get("context", {}).get("ip", "127.0.0.0")  # truncated
    return rows


def _assert_calls_landed(rows_by_id: dict[str, dict], calls: list[dict], keyring) -> None:
    """What the test asked each SDK to send is what the raw store has (after the privacy defaults)."""
    for call in calls:
        stored = rows_by_id[call["args"]["messageId"]]
        assert stored["type"] == call["call"]
        args = privacy_defaults({**call["args"], "type": call["call"]}, keyring)
        _contains(stored, {k: v for k, v in args.items() if k != "type"}, call["args"]["messageId"])


def _assert_batched(requests_sent: list[dict], calls: list[dict]) -> None:
    sizes = [len(req["body"]["batch"]) for req in requests_sent]
    assert sum(sizes) == len(calls) and max(sizes) <= BATCH_SIZE, sizes
    assert len(sizes) < len(calls) / 2, f"SDK did not batch: {sizes}"


# -- @segment/analytics-node ----------------------------------------------


def test_segment_analytics_node_every_call_and_a_batch(node, collector, store, tmp_path):
    calls = _calls("segnode")
    out = _run_node(node, "segment_node.js", collector, "key-web", calls, tmp_path)
    assert (out["errors"], out["callbackErrors"]) == ([], []), out
    assert out["statuses"] and set(out["statuses"]) == {200}
    _assert_batched(out["requests"], calls)
    for req in out["requests"]:
        assert req["url"] == collector.url + "/v1/batch"
        assert req["headers"]["Authorization"] == "Basic " + base64.b64encode(b"key-web:").decode()
        assert req["body"]["writeKey"] == "key-web"  # it sends the key both ways
    rows = _assert_stored_as_sent(store, _wire_events(out["requests"]), "web", collector.keyring)
    _assert_calls_landed(rows, calls, collector.keyring)
    some = rows[calls[0]["args"]["messageId"]]
    assert some["context"]["library"]["name"] == "@segment/analytics-node"
    assert some["_metadata"]["jsRuntime"] == "node"


def test_segment_analytics_node_reports_a_refused_key(node, collector, tmp_path):
    out = _run_node(node, "segment_node.js", collector, "not-a-key", _calls("segnode-bad")[:2], tmp_path)
    assert set(out["statuses"]) == {401}
    assert out["errors"] and all(e["code"] == "delivery_failure" and "401" in e["reason"] for e in out["errors"])
    assert len(out["callbackErrors"]) == 2


# -- @rudderstack/rudder-sdk-node ------------------------------------------


def test_rudderstack_node_sdk_gzip_batches_and_its_own_fields(node, collector, store, tmp_path):
    calls = _calls("rsnode")
    # RudderStack payloads carry fields Segment's don't; the SDK passes unknown ones through.
    calls[0]["args"].update(rudderId="rudder-7f3a", requestIP="203.0.113.7")
    out = _run_node(node, "rudder_node.js", collector, "key-backend", calls, tmp_path)
    assert (out["errors"], out["callbackErrors"]) == ([], []), out
    assert out["statuses"] and set(out["statuses"]) == {200}
    _assert_batched(out["requests"], calls)
    for req in out["requests"]:
        assert req["url"] == collector.url + "/v1/batch"
        assert req["gzip"] and req["headers"]["Content-Encoding"] == "gzip"
        assert req["auth"] == {"username": "key-backend"}
    rows = _assert_stored_as_sent(store, _wire_events(out["requests"]), "backend", collector.keyring)
    _assert_calls_landed(rows, calls, collector.keyring)
    first = rows[calls[0]["args"]["messageId"]]
    assert (first["rudderId"], first["requestIP"], first["channel"]) == ("rudder-7f3a", "203.0.113.7", "server")
    assert first["context"]["library"] == {"name": "analytics-node", "version": out["sdk"].rsplit("@", 1)[1]}
    assert first["sentAt"] and first["originalTimestamp"]  # per-event, kept as the SDK wrote them


def test_rudderstack_node_sdk_reports_a_refused_key(node, collector, tmp_path):
    out = _run_node(node, "rudder_node.js", collector, "not-a-key", _calls("rsnode-bad")[:2], tmp_path)
    assert set(out["statuses"]) == {401} and set(out["errors"]) == {"401"}
    assert len(out["callbackErrors"]) == 2


# -- rudder-sdk-python (PyPI) ------------------------------------------------


@pytest.fixture(scope="module")
def rudderstack():
    try:
        import rudderstack.analytics
        import rudderstack.analytics.request
    except ImportError:
        pytest.fail("rudder-sdk-python is not installed: it is pinned in requirements.txt, run `make install`")
    return rudderstack.analytics


class _Wire:
    """Records every request RudderStack's Python SDK sends, from its own HTTP session."""

    def __init__(self, rudderstack):
        self.session = rudderstack.request._session  # module-level requests.Session it posts with
        self.requests: list[dict] = []

    def __enter__(self):
        self.session.hooks["response"].append(self._record)
        return self

    def __exit__(self, *exc):
        self.session.hooks["response"].remove(self._record)

    def _record(self, response, *args, **kwargs):
        sent = response.request
        body = sent.body
        if sent.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.requests.append(
            {"url": sent.url, "headers": dict(sent.headers), "status": response.status_code, "body": json.loads(body)}
        )


def _rudder_python_send(client, call: dict) -> None:
    a = call["args"]
    common = {"context": a.get("context"), "integrations": a.get("integrations"), "message_id": a["messageId"]}
    if "timestamp" in a:
        common["timestamp"] = _instant(a["timestamp"])
    who = {"anonymous_id": a.get("anonymousId")}
    kind = call["call"]
    if kind == "track":
        client.track(a.get("userId"), a["event"], a.get("properties"), **who, **common)
    elif kind in ("page", "screen"):
        getattr(client, kind)(a.get("userId"), a.get("category"), a.get("name"), a.get("properties"), **who, **common)
    elif kind == "identify":
        client.identify(a.get("userId"), a.get("traits"), **who, **common)
    elif kind == "group":
        client.group(a.get("userId"), a["groupId"], a.get("traits"), **who, **common)
    elif kind == "alias":
        client.alias(a["previousId"], a["userId"], **common)


def test_rudderstack_python_sdk_every_call_and_a_batch(rudderstack, collector, store):
    calls = _calls("rspy")
    errors = []
    client = rudderstack.Client(
        "key-web", host=collector.url, upload_size=BATCH_SIZE, max_retries=0, on_error=lambda e, batch: errors.append(e)
    )
    with _Wire(rudderstack) as wire:
        for call in calls:
            _rudder_python_send(client, call)
        client.shutdown()  # flush the queue, then stop the consumer thread
    assert errors == []
    assert {r["status"] for r in wire.requests} == {200}
    _assert_batched(wire.requests, calls)
    for req in wire.requests:
        assert req["url"] == collector.url + "/v1/batch"
        assert req["headers"]["Content-Encoding"] == "gzip"
        assert req["headers"]["Authorization"] == "Basic " + base64.b64encode(b"key-web:").decode()
    rows = _assert_stored_as_sent(store, _wire_events(wire.requests), "web", collector.keyring)
    for call in calls:
        args = dict(call["args"])
        if call["call"] == "identify":  # this SDK sends identify traits as context.traits only
            args["context"] = {"traits": args.pop("traits")}
        args = privacy_defaults(args, collector.keyring)  # context.traits.email: a pseudonym too
        _contains(rows[args["messageId"]], args, args["messageId"])
    first = rows[calls[0]["args"]["messageId"]]
    assert first["channel"] == "server" and first["context"]["library"]["name"] == "analytics-python"


def test_rudderstack_python_sdk_sees_a_refused_key_as_an_api_error(rudderstack, collector):
    client = rudderstack.Client("not-a-key", host=collector.url, sync_mode=True)
    # It reads "code" and "message" from the error body; without them it raised KeyError
    # and its async consumer retried the 4xx for minutes instead of giving up.
    with pytest.raises(rudderstack.request.APIError) as info:
        client.track("u-1", "Order Completed")
    assert (info.value.status, info.value.code) == (401, "unauthorized")
    assert "TRACKWAY_WRITE_KEYS" in info.value.message


# -- analytics.js (analytics-next) wire format -----------------------------

AJS_PATHS = {"track": "t", "page": "p", "screen": "s", "identify": "i", "group": "g", "alias": "a"}


def _ajs_event(call: dict, key: str) -> dict:
    """An event as analytics-next's segmentio plugin serialises it (normalize.ts)."""
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "integrations": {},
        "type": call["call"],
        **call["args"],
        "context": {
            "page": {
                "path": "/pricing",
                "referrer": "",
                "search": "?utm_source=x",
                "title": "Pricing",
                "url": "https://shop.example/pricing?utm_source=x",
            },
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
            "locale": "en-US",
            "library": {"name": "analytics.js", "version": "npm:next-1.81.0"},
            "campaign": {"source": "x"},
            **call["args"].get("context", {}),
        },
        "anonymousId": call["args"].get("anonymousId", "ajs-anon-1"),
        "writeKey": key,
        "sentAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
    }


def test_analytics_js_short_paths_text_plain_and_body_write_key(collector, store):
    """Standard delivery: one text/plain POST per event to <apiHost>/<first letter of type>."""
    calls = _calls("ajs")[:6]
    origin = {"Origin": "https://shop.example", "Content-Type": "text/plain"}
    wire = []
    for call in calls:
        event = _ajs_event(call, "key-web")
        r = requests.post(
            f"{collector.url}/v1/{AJS_PATHS[call['call']]}",
            data=json.dumps(event).encode(),
            headers=origin,
            timeout=DEADLINE,
        )
        assert r.status_code == 200, r.text
        assert r.headers["Access-Control-Allow-Origin"] == "https://shop.example"  # or the browser hides the answer
        wire.append((event, {}))
    rows = _assert_stored_as_sent(store, wire, "web", collector.keyring)
    _assert_calls_landed(rows, calls, collector.keyring)


def test_analytics_js_batching_endpoint(collector, store):
    """Batching delivery: {writeKey, batch, sentAt} to <apiHost>/b, sentAt stripped from events."""
    calls = _calls("ajsb")
    batch = []
    for call in calls:
        event = _ajs_event(call, "key-web")
        del event["sentAt"]
        batch.append(event)
    body = {"writeKey": "key-web", "batch": batch, "sentAt": "2026-11-23T10:00:00.000Z"}
    r = requests.post(
        collector.url + "/v1/b",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "text/plain"},
        timeout=DEADLINE,
    )
    assert r.status_code == 200 and r.json() == {"success": True, "accepted": len(calls), "quarantined": 0}, r.text
    rows = _assert_stored_as_sent(store, [(event, body) for event in batch], "web", collector.keyring)
    _assert_calls_landed(rows, calls, collector.keyring)


def test_error_bodies_carry_segment_code_and_message(collector):
    r = requests.post(collector.url + "/v1/s", data=b"{}", headers={"Content-Type": "text/plain"}, timeout=DEADLINE)
    assert r.status_code == 401
    body = r.json()
    assert body["success"] is False and body["code"] == "unauthorized" and body["message"] == body["error"]
    r = requests.post(collector.url + "/v1/s", data=json.dumps({"writeKey": "key-web"}), timeout=DEADLINE)
    assert (r.status_code, r.json()["code"]) == (400, "invalid_request")
