"""Secrets never print: run what an operator runs with known secrets set, grep every output for them.

Every output means stdout and stderr of each command (tracebacks included),
the log records, repr() of the settings, the generated configuration
reference, and every file the commands wrote under TRACKWAY_HOME.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

PASSWORD = "S3cr3t-Known-Pw"
WRITE_KEY = "Wk-Known-Secret-4f2a9c"
FILE_KEY = "Wk-File-Secret-77b1"
WEBHOOK_TOKEN = "Hook-Token-Secret-91d0"
SECRETS = (PASSWORD, WRITE_KEY, FILE_KEY, WEBHOOK_TOKEN)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the with block ends: nothing listens there


def _run(*args: str) -> str:
    """One `trackway` command in its own process; everything it printed, both streams."""
    proc = subprocess.run(
        [sys.executable, "-m", "trackway.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    return f"$ trackway {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def _files_under(root: Path) -> str:
    return "\n".join(f"{p}: {p.read_bytes().decode(errors='replace')}" for p in sorted(root.rglob("*")) if p.is_file())


def _assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where} shows a secret ({secret[:4]}...):\n{text[:3000]}"


@pytest.fixture
def secret_env(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"backend:{FILE_KEY}\n")
    monkeypatch.setenv("TRACKWAY_HOME", str(home))
    monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", f"postgresql://user:{PASSWORD}@127.0.0.1:{_closed_port()}/db")
    monkeypatch.setenv("TRACKWAY_WRITE_KEYS", f"web:{WRITE_KEY}")
    monkeypatch.setenv("TRACKWAY_WRITE_KEYS_FILE", str(keys_file))
    monkeypatch.setenv("TRACKWAY_ALERT_WEBHOOK_URL", f"https://hooks.example.com/services/{WEBHOOK_TOKEN}")
    monkeypatch.setenv("TRACKWAY_DBT_EXECUTABLE", "in-process")
    for name in ("TRACKWAY_RAW_URL", "TRACKWAY_SPOOL_DIR", "TRACKWAY_PLAN_DIR"):
        monkeypatch.delenv(name, raising=False)
    return home


def test_no_command_output_log_or_file_shows_a_secret(secret_env, caplog):
    from trackway.config import load_settings

    caplog.set_level(logging.DEBUG)
    outputs = [
        _run("config", "check"),
        _run("config", "check", "--json"),
        _run("config", "docs"),
        _run("status"),  # cannot connect: its error must not carry the URL's password
        _run("transform"),  # same
        _run("env"),
    ]
    settings = load_settings()
    outputs += [repr(settings), str(settings), repr(settings.warehouse), str(settings.write_keys)]
    logging.getLogger("trackway.test").info("settings: %s warehouse: %s", settings, settings.warehouse)
    everything = "\n".join(outputs)
    # The commands really ran (not an argparse error or a crash before reading the settings).
    assert "TRACKWAY_WAREHOUSE_URL" in outputs[0] and "postgresql://user:" in outputs[0], outputs[0]
    assert '"TRACKWAY_WRITE_KEYS"' in outputs[1], outputs[1]
    assert "Connection refused" in outputs[3] or "connection" in outputs[3].lower(), outputs[3]
    _assert_no_secret(everything, "command output or repr")
    _assert_no_secret(caplog.text, "the log")
    _assert_no_secret(_files_under(secret_env), f"a file under {secret_env}")
    assert settings.warehouse.dbt_env()["TRACKWAY_PG_PASSWORD"] == PASSWORD  # dbt still gets the real one


def test_a_reachable_warehouse_is_named_without_its_password(tmp_path, monkeypatch, postgres_url):
    """Connected but empty: status names the warehouse, transform says what to load; neither shows the password."""
    from postgres_server import create_database

    url = create_database(postgres_url, "secrets_shown")
    password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password and password in url
    monkeypatch.setenv("TRACKWAY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", url)
    monkeypatch.setenv("TRACKWAY_DBT_EXECUTABLE", "in-process")
    outputs = "\n".join([_run("status"), _run("transform"), _run("config", "check")])
    assert "load raw events first" in outputs and "127.0.0.1" in outputs, outputs
    assert password not in outputs, outputs
    assert password not in _files_under(tmp_path / "home")
