"""Apache Superset from .venv-bi with the repository's bundle, on the demo's warehouse (`make test-bi`, docs/bi.md).

`trackway demo` fills a warehouse, `trackway bi init` provisions Superset (twice: idempotent), `trackway bi
serve` runs it on loopback; every chart's data API answers with rows, and Debian's headless Chromium opens
every dashboard with no error and no request beyond loopback, saving a screenshot per dashboard into
docs/images/bi/. Marker "bi": not in `make test`, because .venv-bi is an 880 MB install of its own.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.bi

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv-bi"
SDK_DIR = REPO / "tests" / "sdk_clients"
SCREENSHOTS = REPO / "docs" / "images" / "bi"
DASHBOARDS = ["product-overview", "funnels", "retention", "experiments", "marketplace", "tracking-plan-health"]
DEADLINE = 900


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKWAY_", "AIRFLOW", "SUPERSET_"))}
    env["TRACKWAY_HOME"] = str(home)
    return env


def _trackway(home: Path, *args: str, timeout: int = DEADLINE) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "trackway.cli", *args], env=_env(home), capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"trackway {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def superset(tmp_path_factory):
    assert (VENV / ".trackway-bi-installed").exists(), f"{VENV} is missing: run `make bi-venv`"
    home = tmp_path_factory.mktemp("bi") / "home"
    _trackway(home, "demo", "--people", "60")
    assert (home / "bi" / "warehouse.duckdb").exists()  # events_transform's last task published the snapshot
    first = _trackway(home, "bi", "init")
    second = _trackway(home, "bi", "init")  # idempotent: the same assets, updated in place
    port = _free_port()
    log = (home / "superset.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "trackway.cli", "bi", "serve", "--port", str(port)],
        env=_env(home),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:  # the workers load Superset after the port is bound: a request waits for them
                if requests.get(url + "/health", timeout=60).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            assert server.poll() is None and time.monotonic() < deadline, (home / "superset.log").read_text()
            time.sleep(1)
        password = (home / "bi" / "admin-password").read_text().strip()
        yield {"url": url, "home": home, "password": password, "init": [first.stdout, second.stdout]}
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _api(superset) -> requests.Session:
    session = requests.Session()
    answer = session.post(
        superset["url"] + "/api/v1/security/login",
        json={"username": "admin", "password": superset["password"], "provider": "db", "refresh": False},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    session.headers["Authorization"] = "Bearer " + answer.json()["access_token"]
    return session


def _server_log_tail(superset, lines: int = 60) -> str:
    """The server's last requests and errors (static files left out), for a failure's message."""
    log = (superset["home"] / "superset.log").read_text(errors="replace").splitlines()
    kept = [line[:240] for line in log if "/static/" not in line]
    return "superset.log, last lines:\n" + "\n".join(kept[-lines:])


def test_init_imports_the_bundle_idempotently_and_never_prints_the_password(superset):
    for out in superset["init"]:
        assert "1 databases, 10 datasets, 25 charts, 6 dashboards" in out
        assert superset["password"] not in out
    # The two gunicorn workers share the SQLite metadata: readers never wait for the other's writes.
    with sqlite3.connect(superset["home"] / "bi" / "superset.db") as metadata:
        assert metadata.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # No cross-origin reads: Superset's default CORS allowance for OpenStreetMap's tile hosts is off.
    probe = requests.get(superset["url"] + "/login/", headers={"Origin": "https://tile.openstreetmap.org"}, timeout=30)
    assert "Access-Control-Allow-Origin" not in probe.headers, probe.headers
    api = _api(superset)
    for kind, count in (("chart", 25), ("dashboard", 6), ("dataset", 10), ("database", 1)):
        assert api.get(f"{superset['url']}/api/v1/{kind}/?q=(page_size:100)", timeout=30).json()["count"] == count
    [database] = api.get(f"{superset['url']}/api/v1/database/", timeout=30).json()["result"]
    assert database["allow_dml"] is False and database["allow_file_upload"] is False
    # SQL Lab cannot reach the server's files: DuckDB's external access is off in Superset's connection.
    answer = api.post(
        f"{superset['url']}/api/v1/sqllab/execute/",
        json={"database_id": database["id"], "sql": "SELECT * FROM read_csv('/etc/passwd')", "runAsync": False},
        timeout=60,
    )
    assert answer.status_code >= 400 and "root:" not in answer.text, answer.text


def test_every_chart_answers_with_rows(superset):
    api = _api(superset)
    charts = api.get(f"{superset['url']}/api/v1/chart/?q=(page_size:100)", timeout=30).json()["result"]
    assert len(charts) == 25
    empty = []
    for chart in charts:
        answer = api.get(f"{superset['url']}/api/v1/chart/{chart['id']}/data/", timeout=120)
        assert answer.status_code == 200, (chart["slice_name"], answer.text[:500])
        if not sum(result["rowcount"] for result in answer.json()["result"]):
            empty.append(chart["slice_name"])
    assert empty == []


def test_chromium_opens_every_dashboard_without_errors_or_outside_requests(superset, tmp_path):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            "node",
            str(SDK_DIR / "superset_dashboards.js"),
            superset["url"],
            str(tmp_path / "chromium-profile"),
            str(SCREENSHOTS),
            "admin",
            superset["password"],
            *DASHBOARDS,
        ],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        cwd=SDK_DIR,
    )
    assert proc.returncode == 0, f"superset_dashboards.js failed:\n{proc.stderr}\n{_server_log_tail(superset)}"
    out = json.loads(proc.stdout)
    assert not out["login"].startswith(superset["url"] + "/login")
    for slug in DASHBOARDS:
        seen = out["dashboards"][slug]
        assert seen["charts"] >= 2, slug
        assert seen["chartErrors"] == [] and seen["emptyCharts"] == [], (slug, seen)
        assert [e for e in seen["errors"] if "net::ERR_ABORTED" not in e] == [], (slug, seen["errors"])
        failed = [f for f in seen["failed"] if "net::ERR_ABORTED" not in f]  # navigation cancels list requests
        assert failed == [], (slug, failed)
        outside = [u for u in seen["requests"] if not u.startswith((superset["url"] + "/", "data:", "blob:"))]
        assert outside == [], (slug, outside)
        assert seen["blankCharts"] == [], (slug, seen["blankCharts"])
        # A floor against an empty page, not a measure of content: how much a chart draws depends on the
        # day's data (the retention cohorts were 18.9 KB on one CI run, 37 KB on another).
        assert Path(seen["screenshot"]).stat().st_size > 10_000, slug
