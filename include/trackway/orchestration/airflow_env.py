"""Airflow settings for the embedded default, derived from TRACKWAY_HOME.

Only defaults: an AIRFLOW_* variable already set (production, docker-compose)
always wins.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from trackway.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[3]
AIRFLOW_UI_PORT = 8081


def airflow_defaults(airflow_home: Path) -> dict[str, str]:
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "AIRFLOW__API__EXPOSE_CONFIG": "False",
        # The collector's default port is 8080, so the embedded Airflow UI moves aside.
        "AIRFLOW__API__PORT": str(AIRFLOW_UI_PORT),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{AIRFLOW_UI_PORT}/execution/",
    }


def apply_airflow_defaults(settings: Settings) -> dict[str, str]:
    """Set the defaults in os.environ (before airflow is imported); return the effective values."""
    effective = {}
    for key, value in airflow_defaults(settings.home / "airflow").items():
        os.environ.setdefault(key, value)
        effective[key] = os.environ[key]
    Path(effective["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    return effective


def shell_exports(settings: Settings) -> str:
    """``export`` lines for ``eval "$(trackway env)"``: Trackway's and Airflow's settings together."""
    values = {
        "TRACKWAY_HOME": str(settings.home),
        "TRACKWAY_RAW_URL": settings.raw_url,
    }
    if not settings.environ.get("TRACKWAY_WAREHOUSE_URL"):
        # Only the default (a DuckDB file, no secret): a URL you set is in your environment already
        # and may hold a password, which must not be printed.
        values["TRACKWAY_WAREHOUSE_URL"] = settings.warehouse.url.get_secret_value()
    values.update({k: os.environ.get(k, v) for k, v in airflow_defaults(settings.home / "airflow").items()})
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in values.items())
