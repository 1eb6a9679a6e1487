"""Hostile and malformed requests get a clear 4xx, never a 500, and never cost an acknowledged event."""

from __future__ import annotations

import base64
import http.client
import json

import pytest

from collector_helpers import CollectorProcess, local_store, wait_for_events

AUTH = {"Authorization": "Basic " + base64.b64encode(b"key-web:").decode(), "Content-Type": "application/json"}

CASES = {
    "deeply nested": ("/v1/track", b'{"userId":"u","event":"e","properties":' + b"[" * 5000 + b"]" * 5000 + b"}", 400),
    "unpaired surrogate": ("/v1/track", b'{"userId":"u","event":"\\ud800"}', 400),
    "valid surrogate pair": ("/v1/track", b'{"userId":"u","event":"smile \\ud83d\\ude00"}', 200),
    "5000-digit number": ("/v1/track", b'{"userId":"u","event":"e","properties":{"n":1' + b"0" * 5000 + b"}}", 400),
    "NaN": ("/v1/track", b'{"userId":"u","event":"e","properties":{"n":NaN}}', 400),
    "invalid UTF-8": ("/v1/track", b'{"userId":"\xff","event":"e"}', 400),
    "batch is an object": ("/v1/batch", b'{"batch": {"a": 1}}', 400),
    "batch of scalars": ("/v1/batch", b'{"batch": [1, "x", null]}', 400),
    "body is a string": ("/v1/track", b'"hello"', 400),
    "context is a string": ("/v1/track", b'{"userId":"u","event":"e","context":"x"}', 400),
    "messageId is a number": ("/v1/track", b'{"userId":"u","event":"e","messageId":5}', 400),
    "event over 32 KB": (
        "/v1/track",
        json.dumps({"userId": "u", "event": "e", "properties": {"x": "a" * 40000}}).encode(),
        413,  # over a limit: 413 naming TRACKWAY_MAX_EVENT_BYTES (issue 9), was 400
    ),
    "gzip header, not gzip": ("/v1/track", b"\x1f\x8bnot gzip", 400),
}


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    proc = CollectorProcess(tmp_path_factory.mktemp("hostile"), TRACKWAY_SPOOL_MAX_AGE_SECONDS="1").start()
    yield proc
    proc.close()


def _post(port: int, path: str, body: bytes, extra: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body=body, headers={**AUTH, **(extra or {})})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_request_gets_a_clear_answer(collector, name):
    path, body, expected = CASES[name]
    extra = {"Content-Encoding": "gzip"} if name.startswith("gzip") else None
    status, answer = _post(collector.port, path, body, extra)
    assert status == expected, answer
    if status != 200:
        assert answer["success"] is False and len(answer["error"]) > 20 and answer["code"] != "internal_error"
    if status == 413:
        assert "TRACKWAY_MAX_" in answer["error"]  # names the limit


def test_collector_keeps_earlier_events_after_hostile_requests(collector):
    status, _ = _post(
        collector.port, "/v1/track", json.dumps({"userId": "u", "event": "Kept", "messageId": "kept-1"}).encode()
    )
    assert status == 200
    for path, body, _ in CASES.values():
        _post(collector.port, path, body)
    assert collector.health()["status"] == "ok"
    stored = wait_for_events(local_store(collector.home), ["kept-1"])
    assert stored["kept-1"]["event"] == "Kept"
