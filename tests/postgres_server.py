"""A throwaway PostgreSQL server for tests.

Tests talk to a real server (not a mock) so that SQL which only PostgreSQL
rejects — ``::jsonb`` on odd JSON, bad timestamps, plpgsql — fails here
rather than in production. The server runs from the distribution's binaries
under ``/usr/lib/postgresql/*/bin``; PostgreSQL refuses to run as root, so as
root it runs as the ``postgres`` OS user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROLE = "trackway"
DATABASE = "trackway"
START_DEADLINE_SECONDS = 60
# The superuser URL of each running server, by the URL ``postgres_server`` yielded: for tests that play the
# operator who creates roles (``trackway warehouse grant``), as the stack's POSTGRES_USER does.
SUPERUSER_URLS: dict[str, str] = {}


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries on this machine; the message says how to install them."""


def find_bin_dir() -> Path:
    """Newest ``/usr/lib/postgresql/<major>/bin`` that has initdb and pg_ctl."""
    candidates = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        bin_dir = Path(initdb).parent
        if (bin_dir / "pg_ctl").exists():
            try:
                major = int(bin_dir.parent.name.split(".")[0])
            except ValueError:
                major = 0
            candidates.append((major, bin_dir))
    if candidates:
        return max(candidates)[1]
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on PATH; "
        "install them with: apt-get install postgresql"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_as(user: str | None, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    cmd = ["runuser", "-u", user, "--", *args] if user else args
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=START_DEADLINE_SECONDS + 30)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:1])} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def _wait_ready(url: str, log_file: Path) -> None:
    import psycopg

    deadline = time.monotonic() + START_DEADLINE_SECONDS
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(url, connect_timeout=5):
                return
        except psycopg.OperationalError as exc:
            last_error = exc
            time.sleep(0.1)
    log = log_file.read_text(errors="replace") if log_file.exists() else ""
    raise RuntimeError(f"PostgreSQL did not accept connections within {START_DEADLINE_SECONDS}s: {last_error}\n{log}")


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a private server; yield ``postgresql://trackway:PASS@127.0.0.1:PORT/trackway``.

    The role may create databases, so tests can isolate themselves from each
    other on the one server. Everything is deleted on exit.
    """
    import psycopg

    bin_dir = find_bin_dir()
    os_user = "postgres" if os.geteuid() == 0 else None
    # Not under pytest's tmp_path: that lives in a root-only folder the
    # postgres user cannot traverse.
    base = Path(tempfile.mkdtemp(prefix="trackway-pg-"))
    if os_user:
        entry = pwd.getpwnam(os_user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    data_dir, log_file, pw_file = base / "data", base / "server.log", base / "pwfile"
    superuser_password = secrets.token_hex(16)
    pw_file.write_text(superuser_password + "\n")
    if os_user:
        os.chown(pw_file, entry.pw_uid, entry.pw_gid)
    started = False
    try:
        _run_as(
            os_user,
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                f"--pwfile={pw_file}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            cwd=base,
        )
        for _attempt in range(5):
            port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                _run_as(
                    os_user,
                    [
                        str(bin_dir / "pg_ctl"),
                        "-D",
                        str(data_dir),
                        "-l",
                        str(log_file),
                        "-o",
                        options,
                        "-w",
                        "-t",
                        str(START_DEADLINE_SECONDS),
                        "start",
                    ],
                    cwd=base,
                )
            except RuntimeError:
                # Most likely another process took the port between probe and bind.
                continue
            started = True
            break
        if not started:
            log = log_file.read_text(errors="replace") if log_file.exists() else ""
            raise RuntimeError(f"PostgreSQL failed to start after 5 attempts:\n{log}")
        admin_url = f"postgresql://postgres:{superuser_password}@127.0.0.1:{port}/postgres"
        _wait_ready(admin_url, log_file)
        password = secrets.token_hex(16)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{password}'")
            conn.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
        url = f"postgresql://{ROLE}:{password}@127.0.0.1:{port}/{DATABASE}"
        SUPERUSER_URLS[url] = admin_url
        yield url
    finally:
        if started:
            with contextlib.suppress(Exception):
                _run_as(
                    os_user, [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"], cwd=base
                )
        shutil.rmtree(base, ignore_errors=True)


def superuser_url(url: str) -> str:
    """The superuser URL of the server behind ``url`` (one ``postgres_server`` yielded, or a database on it)."""
    from urllib.parse import urlparse, urlunparse

    parsed = urlparse(url)
    for served, admin in SUPERUSER_URLS.items():
        if urlparse(served).netloc == parsed.netloc:
            return urlunparse(urlparse(admin)._replace(path=parsed.path))
    raise KeyError("no superuser URL for this server: it was not started by postgres_server()")


def create_database(url: str, name: str) -> str:
    """Create database ``name`` on the server behind ``url``; return its URL."""
    from urllib.parse import urlparse, urlunparse

    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # a connection a failed test left
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunparse(urlparse(url)._replace(path="/" + name))
