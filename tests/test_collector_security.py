"""The collector fails closed: the public demo write key never faces a network, browsers read only the
tracking API cross-origin (metrics are on a separate admin listener), and an unknown key gets one answer.

Real processes: `trackway collect` started as operators start it, real HTTP.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys

import pytest
import requests

from collector_helpers import CollectorProcess, clean_env, free_port, request_from


def _collect(tmp_path, host: str, **env: str) -> subprocess.CompletedProcess:
    port = free_port()
    return subprocess.run(
        [sys.executable, "-m", "trackway.cli", "collect", "--host", host, "--port", str(port)],
        env=clean_env(TRACKWAY_HOME=str(tmp_path / "home"), TRACKWAY_COLLECTOR_WORKERS="1", **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_no_write_keys_on_a_public_address_is_refused(tmp_path):
    # A misspelled variable leaves the collector without keys: it used to serve the demo key on 0.0.0.0.
    result = _collect(tmp_path, "0.0.0.0", TRACKWAY_WRITE_KEY="web:a-key-of-our-own")
    assert result.returncode == 2, result.stderr
    assert "refusing to listen on 0.0.0.0 with the built-in demo write key" in result.stderr
    assert "TRACKWAY_WRITE_KEYS" in result.stderr


def test_ipv6_any_and_host_names_count_as_public(tmp_path):
    for host in ("::", socket.gethostname()):
        result = _collect(tmp_path, host)
        assert result.returncode == 2, (host, result.stderr)


def test_own_keys_on_a_public_address_serve(tmp_path):
    proc = CollectorProcess(tmp_path / "keys")
    proc.args = ["--host", "0.0.0.0"]
    proc.start()
    try:
        assert proc.health()["status"] == "ok"
    finally:
        assert proc.stop() == 0
        proc.close()


def test_forwarded_for_is_read_from_the_right_past_trusted_proxies_only():
    from ipaddress import ip_network

    from trackway.collector.http_api import Proxies, client_ip

    lb = Proxies((ip_network("10.0.0.0/8"),))
    # The client wrote the leftmost entry; the load balancer appended what it saw.
    assert client_ip("10.0.0.5", "6.6.6.6, 203.0.113.9", lb) == "203.0.113.9"
    assert client_ip("10.0.0.5", "6.6.6.6, 203.0.113.9, 10.1.2.3", lb) == "203.0.113.9"  # two proxy hops
    assert client_ip("198.51.100.7", "6.6.6.6", lb) == "198.51.100.7"  # not from a proxy: ignored
    assert client_ip("10.0.0.5", "not-an-ip, 203.0.113.9", lb) == "203.0.113.9"
    assert client_ip("10.0.0.5", "203.0.113.9, garbage", lb) == "10.0.0.5"  # garbled at the right: no guess
    one_hop = Proxies(any_peer=True)  # TRACKWAY_TRUST_FORWARDED_FOR=true, no list
    assert client_ip("192.0.2.1", "6.6.6.6, 203.0.113.9", one_hop) == "203.0.113.9"
    assert client_ip("192.0.2.1", None, Proxies()) == "192.0.2.1"


def test_a_client_cannot_forge_its_stored_ip(tmp_path):
    import requests

    from collector_helpers import local_store, read_lines, wait_for_events

    # Truncation off: this is about which address is taken (docs/privacy.md truncates it by default).
    proc = CollectorProcess(tmp_path, TRACKWAY_TRUSTED_PROXIES="127.0.0.1", TRACKWAY_IP_TRUNCATION="off").start()
    try:
        body = {"type": "track", "event": "Ip", "userId": "u", "messageId": "xff-1"}
        r = requests.post(
            proc.url + "/v1/track",
            json=body,
            headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9"},
            auth=("key-web", ""),
            timeout=10,
        )
        assert r.status_code == 200
        wait_for_events(local_store(tmp_path), ["xff-1"])
    finally:
        proc.close()
    (stored,) = [e for e in read_lines(local_store(tmp_path), "events/") if e["messageId"] == "xff-1"]
    assert stored["context"]["ip"] == "203.0.113.9"


def test_a_malformed_trusted_proxy_list_is_refused(tmp_path):
    result = _collect(tmp_path, "127.0.0.1", TRACKWAY_TRUSTED_PROXIES="10.0.0.0/8,my-proxy")
    assert result.returncode != 0 and "TRACKWAY_TRUSTED_PROXIES entry 'my-proxy'" in result.stderr


def test_config_check_names_a_malformed_proxy_entry(trackway_env, monkeypatch, capsys):
    from trackway.cli import main

    monkeypatch.setenv("TRACKWAY_TRUSTED_PROXIES", "10.0.0.0/8,my-proxy")
    assert main(["config", "check"]) != 0
    captured = capsys.readouterr()
    assert "TRACKWAY_TRUSTED_PROXIES entry 'my-proxy'" in captured.out + captured.err


# -- CORS and the admin listener -------------------------------------------------

ORIGIN = "https://evil.example"
PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-probe"}


def _cors_headers(response: requests.Response) -> list[str]:
    return [name for name in response.headers if name.lower().startswith("access-control-")]


def test_no_page_can_read_metrics_or_health_cross_origin_but_tracking_routes_keep_cors(tmp_path):
    proc = CollectorProcess(tmp_path).start()
    try:
        # The public port has no /metrics at all, and its /health is liveness with no CORS and no counters.
        public_metrics = requests.get(proc.url + "/metrics", headers={"Origin": ORIGIN}, timeout=10)
        assert public_metrics.status_code == 404 and not _cors_headers(public_metrics)
        live = requests.get(proc.url + "/health", headers={"Origin": ORIGIN}, timeout=10)
        assert live.status_code == 200 and live.json() == {"status": "ok"} and not _cors_headers(live)
        for path in ("/health", "/metrics", "/openapi.json"):
            preflight = requests.options(proc.url + path, headers=PREFLIGHT, timeout=10)
            assert preflight.status_code >= 400 and not _cors_headers(preflight), path

        # The admin listener: metrics of all workers, never a CORS header, not even to a preflight.
        admin_metrics = requests.get(proc.admin_url + "/metrics", headers={"Origin": ORIGIN}, timeout=10)
        assert admin_metrics.status_code == 200 and "trackway_collector_requests_total" in admin_metrics.text
        assert not _cors_headers(admin_metrics)
        for path in ("/metrics", "/health"):
            preflight = requests.options(proc.admin_url + path, headers=PREFLIGHT, timeout=10)
            assert preflight.status_code == 405 and not _cors_headers(preflight), path
        # A page that points its own name at 127.0.0.1 (DNS rebinding) would be same-origin: refused by Host.
        rebound = requests.get(proc.admin_url + "/metrics", headers={"Host": f"evil.example:{proc.admin_port}"})
        assert rebound.status_code == 403 and "trackway_collector" not in rebound.text
        assert requests.get(proc.admin_url + "/metrics", headers={"Host": f"localhost:{proc.admin_port}"}).ok

        # Browsers still send events: the preflight of /v1/batch and the answers of tracking routes have CORS.
        shop = "https://shop.example"
        batch = requests.options(
            proc.url + "/v1/batch",
            headers={
                "Origin": shop,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,authorization",
            },
            timeout=10,
        )
        assert batch.status_code == 204 and batch.headers["Access-Control-Allow-Origin"] == shop
        assert "POST" in batch.headers["Access-Control-Allow-Methods"]
        assert "authorization" in batch.headers["Access-Control-Allow-Headers"].lower()
        settings = requests.options(proc.url + "/v1/projects/key-web/settings", headers=PREFLIGHT, timeout=10)
        assert settings.status_code == 204 and "GET" in settings.headers["Access-Control-Allow-Methods"]
        sent = requests.post(
            proc.url + "/v1/t",
            data=json.dumps({"type": "track", "event": "Cors", "userId": "u", "writeKey": "key-web"}),
            headers={"Origin": shop, "Content-Type": "text/plain"},
            timeout=10,
        )
        assert sent.status_code == 200 and sent.headers["Access-Control-Allow-Origin"] == shop
        assert sent.headers["Access-Control-Expose-Headers"] == "Retry-After"  # a browser may read it on a 429
    finally:
        proc.close()


def test_admin_listener_stays_on_loopback_when_the_public_one_opens(tmp_path):
    proc = CollectorProcess(tmp_path)
    proc.args = ["--host", "0.0.0.0"]
    proc.start()
    try:
        # 127.0.0.2 stands for any other address of the machine: the public port answers there...
        assert request_from("127.0.0.2", proc.port, "GET", "/health")[0] == 200
        # ...the admin port does not: it is bound to 127.0.0.1 only.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.2", proc.admin_port), timeout=10).close()
        assert proc.health()["status"] == "ok" and proc.health()["workers_running"] == 2
        assert f"admin (/metrics, /health) on http://127.0.0.1:{proc.admin_port}" in proc.stdout
    finally:
        proc.close()


def test_admin_listener_leaves_loopback_only_when_named_and_says_so(tmp_path):
    proc = CollectorProcess(tmp_path, TRACKWAY_COLLECTOR_ADMIN_HOST="0.0.0.0").start()
    try:
        status, _, body = request_from("127.0.0.2", proc.admin_port, "GET", "/metrics", {"Host": "collector:8081"})
        assert status == 200 and b"trackway_collector_requests_total" in body  # e.g. Prometheus by service name
    finally:
        proc.close()
    assert "the admin listener (/metrics, /health) is on 0.0.0.0, reachable from the network" in proc.stderr


def test_admin_port_may_not_be_the_public_port(tmp_path):
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "trackway.cli", "collect", "--port", str(port), "--admin-port", str(port)],
        env=clean_env(TRACKWAY_HOME=str(tmp_path / "home"), TRACKWAY_COLLECTOR_WORKERS="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "set TRACKWAY_COLLECTOR_ADMIN_PORT" in result.stderr


def test_a_non_loopback_admin_host_needs_naming(trackway_env, monkeypatch):
    """The guard behind the default: an admin address that is not loopback is used only when named."""
    from trackway.collector.app import _admin_address
    from trackway.config import ConfigError, Settings, load_settings

    settings = load_settings()
    assert _admin_address(settings, 8080, None, None) == ("127.0.0.1", 8082)
    assert _admin_address(settings, 8080, "0.0.0.0", 9100) == ("0.0.0.0", 9100)  # --admin-host names it
    # Were the default ever to change to a network address, it would still not be used unnamed. (The
    # registry's default cannot be changed from outside, so this one property is patched.)
    monkeypatch.setattr(Settings, "collector_admin_host", property(lambda _self: "0.0.0.0"))
    with pytest.raises(ConfigError, match="set TRACKWAY_COLLECTOR_ADMIN_HOST"):
        _admin_address(settings, 8080, None, None)
    monkeypatch.setenv("TRACKWAY_COLLECTOR_ADMIN_HOST", "0.0.0.0")
    assert _admin_address(load_settings(), 8080, None, None) == ("0.0.0.0", 8082)


# -- one answer for a missing, malformed or unknown write key -----------------------


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def test_an_unknown_key_gets_the_same_answer_on_every_route(tmp_path):
    from trackway.collector.routes import BATCH, ROUTES

    proc = CollectorProcess(tmp_path, TRACKWAY_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE="0").start()
    answers: dict[tuple[str, str], tuple[int, dict[str, str], bytes]] = {}
    event = {"type": "track", "event": "Probe", "userId": "u"}
    try:
        for path, route in ROUTES.items():
            body = {"batch": [event]} if route == BATCH else event
            ways = {
                "unknown key": ({"Authorization": _basic("no-such-key")}, body),
                "key in the body": ({}, {**body, "writeKey": "no-such-key"}),
                "key of the wrong type": ({}, {**body, "writeKey": 42}),
                "no key": ({}, body),
                "bearer token": ({"Authorization": "Bearer key-web"}, body),
                "not base64": ({"Authorization": "Basic !!!"}, body),
            }
            for way, (auth, payload) in ways.items():
                headers = {"Origin": ORIGIN, "Content-Type": "text/plain", **auth}
                answers[path, way] = request_from(
                    "127.0.0.1", proc.port, "POST", path, headers, json.dumps(payload).encode()
                )
        answers["settings", "unknown key"] = request_from(
            "127.0.0.1", proc.port, "GET", "/v1/projects/no-such-key/settings", {"Origin": ORIGIN}
        )
    finally:
        proc.close()

    def shape(answer: tuple[int, dict[str, str], bytes]) -> tuple:
        status, headers, body = answer
        return status, tuple(sorted((k, v) for k, v in headers.items() if k != "date")), body

    distinct = {shape(a) for a in answers.values()}
    assert len(distinct) == 1, {k: shape(a) for k, a in list(answers.items())[:8]}
    status, headers, body = answers["/v1/batch", "unknown key"]
    assert status == 401 and json.loads(body)["code"] == "unauthorized"
    assert b"no-such-key" not in body and b"web" not in body.replace(b"TRACKWAY_WRITE_KEYS", b"")
