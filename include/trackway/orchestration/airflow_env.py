"""Airflow settings for the embedded default, derived from TRACKWAY_HOME and the stack's settings.

Only defaults: an AIRFLOW_* variable already set (production, docker-compose)
always wins. Everything Airflow keeps lives under ``$TRACKWAY_HOME/airflow``
and its ports come from the settings, so two homes give two Airflows that can
run side by side (`trackway up`).
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from trackway.config import Settings
from trackway.config.registry import StackSection

REPO_ROOT = Path(__file__).resolve().parents[3]
#: The default of TRACKWAY_AIRFLOW_PORT: the collector's default port is 8080, so Airflow moves aside.
AIRFLOW_UI_PORT = 8081
#: Where Airflow's OpenLineage provider writes lineage by default (one JSON event per line).
LINEAGE_FILE = Path("lineage") / "openlineage.ndjson"
LINEAGE_NAMESPACE = "trackway"


def airflow_defaults(
    airflow_home: Path, *, api_port: int = AIRFLOW_UI_PORT, lineage_file: Path | None = None
) -> dict[str, str]:
    """Airflow's configuration for one Trackway home: its database, DAGs, ports, lineage transport."""
    lineage = lineage_file or airflow_home / LINEAGE_FILE
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        # Cosmos's default cache is /tmp/cosmos, which two homes would share.
        "AIRFLOW__COSMOS__CACHE_DIR": str(airflow_home / "cosmos"),
        "AIRFLOW__API__EXPOSE_CONFIG": "False",
        # Loopback unless you say otherwise: the embedded default uses Airflow's simple auth manager.
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        # Every process of the stack shares one machine: on a busy one, Airflow's 5 s made a task fail to start
        # ("httpx.ReadTimeout" on task-instances/<id>/run) while its API server was slow to answer.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
        # Lineage of every task run (events_load's objects and rows, each dbt model) to a local file;
        # docs/operations.md#lineage shows the HTTP transport for Marquez instead.
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(lineage), "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": LINEAGE_NAMESPACE,
    }


def api_port(settings: Settings) -> int:
    """The Airflow API server's port: an AIRFLOW__API__PORT you set, else TRACKWAY_AIRFLOW_PORT."""
    explicit = os.environ.get("AIRFLOW__API__PORT")
    if explicit and explicit.isdigit():
        return int(explicit)
    return settings.section(StackSection).airflow_port


def home_defaults(settings: Settings) -> dict[str, str]:
    """``airflow_defaults`` for TRACKWAY_HOME: Airflow under ``airflow/``, lineage under ``lineage/``."""
    return airflow_defaults(
        settings.home / "airflow", api_port=api_port(settings), lineage_file=settings.home / LINEAGE_FILE
    )


def effective_airflow_env(settings: Settings, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The defaults with every AIRFLOW_* variable already in ``environ`` (default os.environ) winning."""
    source = os.environ if environ is None else environ
    return {key: source.get(key, value) for key, value in home_defaults(settings).items()}


def lineage_path(airflow_env: dict[str, str]) -> Path | None:
    """The file the OpenLineage file transport writes to, if that is the transport configured."""
    try:
        transport = json.loads(airflow_env.get("AIRFLOW__OPENLINEAGE__TRANSPORT") or "{}")
    except ValueError:
        return None
    if isinstance(transport, dict) and transport.get("type") == "file" and transport.get("log_file_path"):
        return Path(transport["log_file_path"])
    return None


def prepare_folders(airflow_env: dict[str, str]) -> None:
    """AIRFLOW_HOME and the lineage file's folder (the file transport does not create it)."""
    Path(airflow_env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    lineage = lineage_path(airflow_env)
    if lineage is not None and "://" not in str(lineage):
        lineage.parent.mkdir(parents=True, exist_ok=True)


def apply_airflow_defaults(settings: Settings) -> dict[str, str]:
    """Set the defaults in os.environ (before airflow is imported); return the effective values."""
    effective = effective_airflow_env(settings)
    for key, value in effective.items():
        os.environ.setdefault(key, value)
    prepare_folders(effective)
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
    values.update(effective_airflow_env(settings))
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in values.items())
