"""The collector fails closed: the public demo write key never faces a network.

Real processes: `trackway collect` started as operators start it.
"""

from __future__ import annotations

import socket
import subprocess
import sys

from collector_helpers import CollectorProcess, clean_env, free_port


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
