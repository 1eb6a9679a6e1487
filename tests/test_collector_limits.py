"""Limits, rate limits, slow/idle connections and write-key rotation, against the real multi-worker collector."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import resource
import signal
import socket
import threading
import uuid

import pytest
import requests

from collector_helpers import (
    DEADLINE,
    CollectorProcess,
    local_store,
    read_lines,
    request_from,
    wait_for,
    wait_for_events,
)
from trackway.config import load_settings


def _auth(key: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def _event(**extra) -> dict:
    return {"type": "track", "userId": "u", "event": "Limit", "messageId": f"lim-{uuid.uuid4()}", **extra}


def test_segment_limits_are_the_defaults(monkeypatch):
    for name in ("TRACKWAY_MAX_BODY_BYTES", "TRACKWAY_MAX_EVENT_BYTES", "TRACKWAY_MAX_BATCH_EVENTS"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert (settings.max_body_bytes, settings.collector.max_event_bytes, settings.collector.max_batch_events) == (
        500 * 1024,
        32 * 1024,
        2500,
    )
    assert settings.collector.rate_limit_events_per_second == 0  # off by default
    assert settings.collector.rate_limit_auth_failures_per_minute == 30  # on by default


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    proc = CollectorProcess(
        tmp_path_factory.mktemp("limits"),
        TRACKWAY_MAX_BODY_BYTES="20000",
        TRACKWAY_MAX_EVENT_BYTES="2000",
        TRACKWAY_MAX_BATCH_EVENTS="10",
        TRACKWAY_RATE_LIMIT_EVENTS_PER_SECOND="10",  # per write key and client address, in each worker
    ).start()
    yield proc
    proc.close()


def _limit_error(r: requests.Response, status: int, names: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and names in body["error"] and body["code"] in ("payload_too_large", "rate_limited")


def test_each_limit_gets_413_naming_it_and_stores_nothing(limited):
    url, auth = limited.url, _auth("key-backend")
    refused = [_event() for _ in range(3)]
    big = {**refused[0], "properties": {"x": "a" * 3000}}
    _limit_error(requests.post(url + "/v1/track", json=big, headers=auth), 413, "TRACKWAY_MAX_EVENT_BYTES")
    _limit_error(
        requests.post(url + "/v1/batch", json={"batch": [refused[1]] * 11}, headers=auth),
        413,
        "TRACKWAY_MAX_BATCH_EVENTS",
    )
    padded = {"batch": [refused[2]], "pad": "x" * 25000}
    _limit_error(requests.post(url + "/v1/batch", json=padded, headers=auth), 413, "TRACKWAY_MAX_BODY_BYTES")

    # In a batch with valid events, the oversized one is quarantined with the limit as its reason.
    ok = [_event() for _ in range(3)]  # 7 tokens with the three refused requests: within the 10-event burst
    r = requests.post(url + "/v1/batch", json={"batch": [*ok, big]}, headers=auth)
    assert r.status_code == 200 and r.json()["quarantined"] == 1, r.text
    assert "TRACKWAY_MAX_EVENT_BYTES" in r.json()["errors"][0]["reason"]
    rows = wait_for_events(local_store(limited.home), [e["messageId"] for e in ok])
    assert not {e["messageId"] for e in refused} & rows.keys()


def test_rate_limit_per_write_key_answers_429_with_retry_after(limited):
    url = limited.url
    statuses, refused_ids, accepted_ids = [], [], []
    with requests.Session() as session:
        for _ in range(12):
            batch = [_event() for _ in range(5)]
            r = session.post(url + "/v1/batch", json={"batch": batch}, headers=_auth("key-web"))
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["Retry-After"]) >= 1
                assert "TRACKWAY_RATE_LIMIT_EVENTS_PER_SECOND" in r.json()["error"]
                refused_ids += [e["messageId"] for e in batch]
            else:
                assert r.status_code == 200, r.text
                accepted_ids += [e["messageId"] for e in batch]
    assert 429 in statuses and 200 in statuses
    # The limit is per key: right after key-web's 429s, another key still gets through.
    assert requests.post(url + "/v1/track", json=_event(), headers=_auth("key-backend")).status_code == 200
    rows = wait_for_events(local_store(limited.home), accepted_ids)
    assert not set(refused_ids) & rows.keys()


def _headers_only(port: int, path: str, headers: dict[str, str], body_prefix: bytes = b"") -> bytes:
    """Send a POST's headers announcing a 400 KB body, then at most ``body_prefix`` of it; return the answer.

    The rest of the body never comes: a server that waits for it before deciding answers nothing
    until its body timeout (set far beyond DEADLINE in these tests), so recv() times out instead.
    """
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 400000\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
        s.sendall(head.encode() + body_prefix)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while b"\r\n\r\n" not in answer and (chunk := s.recv(65536)):
                answer += chunk
    return answer


def _batch(count: int, **extra) -> bytes:
    return json.dumps({"batch": [_event() for _ in range(count)], **extra}).encode()


def test_rate_limit_is_per_key_and_address_and_answers_before_the_body(tmp_path):
    """One client over its rate is refused from its headers alone; the same key from another address is not."""
    proc = CollectorProcess(
        tmp_path,
        TRACKWAY_COLLECTOR_WORKERS="1",  # the buckets are per worker: one worker makes the test exact
        TRACKWAY_RATE_LIMIT_EVENTS_PER_SECOND="0.5",  # a 50-event batch leaves ~100 s of debt
        TRACKWAY_BODY_TIMEOUT_SECONDS="600",
    ).start()
    web = _auth("key-web")
    try:
        status, _, _ = request_from("127.0.0.1", proc.port, "POST", "/v1/batch", web, _batch(50))
        assert status == 200  # a full bucket lets a batch bigger than the burst through, into debt

        answer = _headers_only(proc.port, "/v1/batch", web, body_prefix=b'{"batch": [')
        assert answer.startswith(b"HTTP/1.1 429 "), answer[:300]  # answered with 399,989 body bytes unsent
        assert b"retry-after: " in answer.lower() and b"connection: close" in answer.lower()

        # The same (public) key from another client, and another key from the same client, still pass:
        # one abuser of a browser key cannot starve everyone else who uses it.
        other = [_event(), _event()]
        status, _, body = request_from("127.0.0.2", proc.port, "POST", "/v1/track", web, json.dumps(other[0]).encode())
        assert status == 200, body
        status, _, body = request_from(
            "127.0.0.1", proc.port, "POST", "/v1/track", _auth("key-backend"), json.dumps(other[1]).encode()
        )
        assert status == 200, body

        # analytics.js puts the key in the body: before the body is read only the address is known, so
        # those requests share the address's keyless bucket (and are refused from the headers alone too).
        ajs = {"Content-Type": "text/plain"}
        status, _, body = request_from("127.0.0.1", proc.port, "POST", "/v1/b", ajs, _batch(50, writeKey="key-web"))
        assert status == 200, body
        answer = _headers_only(proc.port, "/v1/b", ajs)
        assert answer.startswith(b"HTTP/1.1 429 "), answer[:300]
        refused = [_event()]
        status, headers, body = request_from(
            "127.0.0.1", proc.port, "POST", "/v1/t", ajs, json.dumps({**refused[0], "writeKey": "key-web"}).encode()
        )
        assert status == 429 and int(headers["retry-after"]) >= 1, body
        assert "TRACKWAY_RATE_LIMIT_EVENTS_PER_SECOND" in json.loads(body)["error"]
        assert 'trackway_collector_rate_limited_total{reason="events"} 3.0' in proc.metrics()
        wait_for_events(local_store(tmp_path), [e["messageId"] for e in other])
    finally:
        assert proc.stop() == 0
        proc.close()
    assert refused[0]["messageId"] not in {r["messageId"] for r in read_lines(local_store(tmp_path), "events/")}


def test_failed_authentications_are_limited_per_address(tmp_path):
    """Past N requests without a valid key a minute, an address gets 429 without its key being checked."""
    proc = CollectorProcess(
        tmp_path,
        TRACKWAY_COLLECTOR_WORKERS="1",
        TRACKWAY_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE="3",  # one more allowed every 20 s: ample for this test
        TRACKWAY_BODY_TIMEOUT_SECONDS="600",
    ).start()
    track = json.dumps(_event()).encode()
    try:
        for key in ("guess-1", "guess-2", "guess-3"):
            assert request_from("127.0.0.1", proc.port, "POST", "/v1/track", _auth(key), track)[0] == 401
        # Now even the right key is not looked at from that address, on every route, before any body.
        status, headers, body = request_from("127.0.0.1", proc.port, "POST", "/v1/track", _auth("key-web"), track)
        assert status == 429 and int(headers["retry-after"]) >= 1, body
        assert "TRACKWAY_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE" in json.loads(body)["error"]
        assert request_from("127.0.0.1", proc.port, "GET", "/v1/projects/key-web/settings")[0] == 429
        assert _headers_only(proc.port, "/v1/batch", _auth("key-web")).startswith(b"HTTP/1.1 429 ")
        # Another address is not affected.
        ok = _event()
        status, _, body = request_from(
            "127.0.0.2", proc.port, "POST", "/v1/track", _auth("key-web"), json.dumps(ok).encode()
        )
        assert status == 200, body
        assert proc.health()["auth_failures"] == 3
        wait_for_events(local_store(tmp_path), [ok["messageId"]])
    finally:
        proc.close()
    warnings = [line for line in proc.stderr.splitlines() if "TRACKWAY_TRUSTED_PROXIES" in line]
    assert len(warnings) == 1 and "127.0.0.1" in warnings[0]  # said once, naming the address
    assert "guess-" not in proc.stderr  # the keys tried are never logged


def test_rate_limiter_forgets_idle_buckets_and_caps_memory(monkeypatch):
    from trackway.collector import limits

    now = [1000.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: now[0])  # a clock the test moves (no sleeping)
    limiter = limits.RateLimiter(rate=1.0, burst=2.0, max_buckets=100)
    assert limiter.take("a") == 0 and limiter.take("a") == 0 and limiter.take("a") == 1.0
    limiter.charge("a", 10)  # debt: 11 s until a token
    assert limiter.wait("a") == 11.0 and limiter.take("a") == 11.0
    for i in range(1000):  # many clients: memory stays under the cap
        limiter.take(f"client-{i}")
        assert len(limiter) <= 100
    now[0] += 60  # everything refilled: an idle bucket is the same as none, and is dropped
    limiter.take("b")
    assert len(limiter) == 1


def test_ipv6_clients_are_limited_per_64():
    from trackway.collector.limits import address_bucket

    assert address_bucket("2001:db8:1:2:aaaa::1") == address_bucket("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_bucket("2001:db8:1:3::1") != address_bucket("2001:db8:1:2::1")
    assert address_bucket("203.0.113.9") == "203.0.113.9"


def test_idle_and_slow_connections_do_not_stop_it_answering_others(tmp_path):
    """The issue's figure: 10,000 idle connections (plus slowloris ones) while another client is answered."""
    idle_count, slow_count = 10_000, 100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = idle_count + slow_count + 1024
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.fail(f"this test needs {needed} open files (ulimit -n); the hard limit here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))  # the collector inherits it
    proc = CollectorProcess(tmp_path, TRACKWAY_HEADER_TIMEOUT_SECONDS="15", TRACKWAY_BODY_TIMEOUT_SECONDS="15").start()
    sockets: list[socket.socket] = []
    try:
        for i in range(idle_count + slow_count):
            s = socket.create_connection(("127.0.0.1", proc.port), timeout=10)
            if i >= idle_count:  # slowloris: headers started, never finished
                s.sendall(b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n")
            sockets.append(s)
        mid = f"busy-{uuid.uuid4()}"
        r = requests.post(
            proc.url + "/v1/track", json=_event(messageId=mid), headers=_auth("key-web"), timeout=10
        )  # answered while 10,100 connections sit open
        assert r.status_code == 200
        # The server closes them itself once their header deadline passes (15 s, far longer than opening
        # them takes, so all were held when the request above was answered; none was refused by the cap).
        for s in sockets:
            s.settimeout(60)
            assert s.recv(1024) == b""
        metrics = proc.metrics()
        timed_out = sum(
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith("trackway_collector_connections_timed_out_total")
        )
        assert timed_out >= idle_count + slow_count
        wait_for_events(local_store(tmp_path), [mid])
    finally:
        for s in sockets:
            s.close()
        proc.close()


def test_connection_cap_closes_extra_connections_at_once(tmp_path):
    proc = CollectorProcess(
        tmp_path, TRACKWAY_COLLECTOR_WORKERS="1", TRACKWAY_MAX_CONNECTIONS="5", TRACKWAY_HEADER_TIMEOUT_SECONDS="60"
    ).start()
    held = []
    try:
        for _ in range(8):
            held.append(socket.create_connection(("127.0.0.1", proc.port), timeout=10))
        closed = 0
        for s in held:
            s.settimeout(0.5)
            with contextlib.suppress(TimeoutError):  # a timeout: still open, within the cap
                closed += s.recv(10) == b""
        assert closed == 3
    finally:
        for s in held:
            s.close()
        proc.close()


def test_write_keys_file_several_keys_per_source_and_sighup_reload_drops_nothing(tmp_path):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# source:key, one per line\nweb:old-key\nweb:steady-key\nbackend:be-key\n")
    proc = CollectorProcess(
        tmp_path / "c",
        TRACKWAY_WRITE_KEYS="",
        TRACKWAY_WRITE_KEYS_FILE=str(keys_file),
        # Checking the rotation sends many old-key requests from this one address; the failed-authentication
        # limit (tested on its own) would rightly cut it off, and the steady sender with it.
        TRACKWAY_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE="0",
    )
    proc.env.pop("TRACKWAY_WRITE_KEYS")
    proc.start()
    failures, acked = [], []
    stop = threading.Event()

    def sender() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                event = _event()
                r = session.post(proc.url + "/v1/track", json=event, headers=_auth("steady-key"), timeout=30)
                (acked if r.status_code == 200 else failures).append((event["messageId"], r.status_code))

    thread = threading.Thread(target=sender)
    try:
        assert requests.post(proc.url + "/v1/track", json=_event(), headers=_auth("old-key")).status_code == 200
        assert requests.post(proc.url + "/v1/track", json=_event(), headers=_auth("new-key")).status_code == 401
        thread.start()
        keys_file.write_text("web:new-key\nweb:steady-key\nbackend:be-key\n")  # rotate old-key -> new-key
        os.kill(proc.proc.pid, signal.SIGHUP)

        def rotated() -> bool:
            # Several tries each, so both workers have answered with the new keys.
            codes = {
                requests.post(proc.url + "/v1/track", json=_event(), headers=_auth(key)).status_code
                for key in ("old-key", "new-key")
                for _ in range(6)
            }
            return codes == {200, 401} and all(
                requests.post(proc.url + "/v1/track", json=_event(), headers=_auth("old-key")).status_code == 401
                for _ in range(6)
            )

        wait_for(rotated, "the new write keys to be in use in every worker")
        keys_file.write_text("web-without-a-key\n")  # a broken file: keep the keys in use, say why
        os.kill(proc.proc.pid, signal.SIGHUP)
        wait_for(lambda: "not reloaded" in proc.stderr, "the bad key file to be refused")
        assert requests.post(proc.url + "/v1/track", json=_event(), headers=_auth("new-key")).status_code == 200
        # On a loaded machine the steady sender may have had few turns yet: let it get through before stopping.
        wait_for(lambda: len(acked) > 10, "the steady sender's events to be acknowledged")
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(30)
        assert proc.stop() == 0
        proc.close()
    assert failures == []  # no request was refused or dropped across the reloads
    assert len(acked) > 10
    rows = {r["messageId"]: r for r in read_lines(local_store(tmp_path / "c"), "events/")}
    assert {m for m, _ in acked} <= rows.keys()
    assert {rows[m]["sourceId"] for m, _ in acked} == {"web"}
    assert "old-key" not in proc.stdout + proc.stderr and "steady-key" not in proc.stderr


def _workers_rss(proc: CollectorProcess) -> int:
    import psutil

    return sum(child.memory_info().rss for child in psutil.Process(proc.proc.pid).children())


def test_a_10_mb_header_is_cut_at_the_cap_with_431_and_others_are_answered(tmp_path):
    """Headers are counted as they arrive: a 10 MB header line gets a 431 after ~16 KB, not a read to its end."""
    proc = CollectorProcess(tmp_path, TRACKWAY_HEADER_TIMEOUT_SECONDS="60").start()
    try:
        before = _workers_rss(proc)
        s = socket.create_connection(("127.0.0.1", proc.port), timeout=30)
        s.sendall(b"POST /v1/track HTTP/1.1\r\nHost: x\r\nX-Flood: ")
        sent, answer = 0, b""
        chunk = b"a" * 65536
        with contextlib.suppress(OSError):  # the server closes the socket under us once it has answered
            while sent < 10 * 1024 * 1024:
                s.sendall(chunk)
                sent += len(chunk)
        s.settimeout(10)
        with contextlib.suppress(OSError):
            while data := s.recv(65536):
                answer += data
        s.close()
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert b"TRACKWAY_MAX_HEADER_BYTES" in answer
        assert sent < 10 * 1024 * 1024, "the whole 10 MB header was read before an answer"
        mid = f"after-flood-{uuid.uuid4()}"
        r = requests.post(proc.url + "/v1/track", json=_event(messageId=mid), headers=_auth("key-web"), timeout=10)
        assert r.status_code == 200
        grown = _workers_rss(proc) - before
        print(f"\n10 MB header: cut after {sent:,} bytes sent; worker RSS grew {grown / 1e6:.1f} MB")
        assert grown < 8 * 1024 * 1024
    finally:
        proc.close()


def test_a_url_over_the_cap_gets_414(tmp_path):
    proc = CollectorProcess(tmp_path).start()
    try:
        r = requests.post(proc.url + "/v1/track?" + "q" * 20_000, json=_event(), headers=_auth("key-web"), timeout=10)
        assert r.status_code == 414 and r.json()["code"] == "uri_too_long"
        ok = requests.post(proc.url + "/v1/track?" + "q" * 2_000, json=_event(), headers=_auth("key-web"), timeout=10)
        assert ok.status_code == 200
    finally:
        proc.close()
