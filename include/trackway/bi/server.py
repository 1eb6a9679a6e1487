"""Apache Superset beside Trackway: provisioned and started from .venv-bi as a subprocess (docs/bi.md, adr/0032).

Superset's pins (Flask, SQLAlchemy 1.4, marshmallow) cannot share Airflow's environment, so it lives in
its own (.venv-bi, `make bi-venv`) and this module never imports it: it renders the bundle, then runs
ops/superset/provision.py and gunicorn with that environment's Python. On the embedded default
Superset's metadata is a SQLite file under TRACKWAY_HOME/bi; its secret key and the admin's password
are generated there on first use (mode 0600) and never printed.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from trackway.bi.bundle import BundleError, Rendered, render
from trackway.config import Settings
from trackway.transform.manifest import manifest_path
from trackway.warehouse.snapshot import Snapshot, publish_snapshot, snapshot_path

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_VENV = REPO_ROOT / ".venv-bi"
OPS_DIR = REPO_ROOT / "ops" / "superset"
ADMIN_USER = "admin"


@dataclass(frozen=True)
class InitReport:
    rendered: Rendered
    snapshot: Snapshot | None
    imported: dict[str, int]
    seconds: float
    password_file: Path


def bi_home(settings: Settings) -> Path:
    return settings.home / "bi"


def _secret(path: Path, nbytes: int) -> str:
    """A secret kept in ``path`` (created 0600 on first use), never printed."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(nbytes))
    return path.read_text(encoding="utf-8").strip()


def superset_env(settings: Settings) -> dict[str, str]:
    """The environment Superset runs with on the embedded default: config, secret key, SQLite metadata, admin."""
    home = bi_home(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPERSET_", "TRACKWAY_", "AIRFLOW"))}
    env.update(
        {
            "SUPERSET_CONFIG_PATH": str(OPS_DIR / "superset_config.py"),
            "SUPERSET_SECRET_KEY": _secret(home / "secret-key", 42),
            "SUPERSET_METADATA_URL": f"sqlite:///{home / 'superset.db'}",
            "SUPERSET_ADMIN_USERNAME": ADMIN_USER,
            "SUPERSET_ADMIN_PASSWORD": _secret(home / "admin-password", 18),
            "FLASK_APP": "superset.app:create_app()",
            "PYTHONPATH": str(OPS_DIR),
        }
    )
    return env


def _python(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        raise BundleError(f"no Superset environment at {venv}: run `make bi-venv` (installs requirements-bi.txt)")
    return python


def init(settings: Settings, venv: Path = DEFAULT_VENV) -> InitReport:
    """Snapshot (DuckDB, when there is none yet), render the bundle, provision Superset; idempotent."""
    started = time.monotonic()
    python = _python(venv)
    snapshot = None
    target = settings.read_warehouse
    path = snapshot_path(target, settings.home)
    if path is not None and not path.exists():
        snapshot = publish_snapshot(target, settings.home)
    rendered = render(settings, bi_home(settings) / "bundle", manifest_path(settings))
    env = superset_env(settings)
    if rendered.password:
        env["SUPERSET_WAREHOUSE_PASSWORD"] = rendered.password
    proc = subprocess.run(
        [str(python), str(OPS_DIR / "provision.py"), str(rendered.path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise BundleError(f"Superset's provisioning failed (exit {proc.returncode}):\n{tail}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return InitReport(
        rendered, snapshot, result["imported"], time.monotonic() - started, bi_home(settings) / "admin-password"
    )


def serve_command(
    settings: Settings, host: str, port: int, venv: Path = DEFAULT_VENV
) -> tuple[list[str], dict[str, str]]:
    """gunicorn serving Superset (argv, environment); `make bi` runs it on loopback."""
    _python(venv)
    argv = [
        str(venv / "bin" / "gunicorn"),
        "--bind",
        f"{host}:{port}",
        "--workers",
        "2",
        "--worker-class",
        "gthread",
        "--threads",
        "4",
        "--timeout",
        "120",
        "--access-logfile",
        "-",
        "superset.app:create_app()",
    ]
    return argv, superset_env(settings)
