"""A real ``airflow api-server`` on loopback for tests: the repo's plugins, Airflow's simple auth manager, one user.

The metadata database is the session's (tests/conftest.py ``airflow_db``). The server
runs in its own process group, its output in files under ``log_dir``, and is stopped
(the whole group) when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from collector_helpers import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_DEADLINE = 180.0  # generous: only waited out when something is broken (2 shared cores)


@dataclass
class ApiServer:
    url: str
    username: str
    password: str
    log: Path

    def token(self) -> str:
        """A JWT for the user, as Airflow's own clients get one (POST /auth/token)."""
        answer = requests.post(
            f"{self.url}/auth/token", json={"username": self.username, "password": self.password}, timeout=30
        )
        answer.raise_for_status()
        return answer.json()["access_token"]


@contextlib.contextmanager
def airflow_api_server(log_dir: Path, env: dict[str, str] | None = None) -> Iterator[ApiServer]:
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    username, password = "oncall", secrets.token_urlsafe(12)
    passwords = log_dir / "simple-auth-passwords.json"
    passwords.write_text(json.dumps({username: password}))
    full_env = {
        **os.environ,
        **(env or {}),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{username}:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
    }
    log = log_dir / "api-server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow",
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it takes uvicorn's workers too
        )
    server = ApiServer(f"http://127.0.0.1:{port}", username, password, log)
    try:
        _wait_ready(proc, server)
        yield server
    finally:
        _stop(proc)


def _wait_ready(proc: subprocess.Popen, server: ApiServer) -> None:
    end = time.monotonic() + STARTUP_DEADLINE
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"airflow api-server exited with {proc.returncode}:\n{server.log.read_text()[-4000:]}")
        try:
            if requests.get(f"{server.url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:  # not listening yet
            pass
        time.sleep(0.25)
    raise AssertionError(
        f"airflow api-server not ready after {STARTUP_DEADLINE:.0f}s:\n{server.log.read_text()[-4000:]}"
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
