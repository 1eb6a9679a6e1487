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
