"""dbt runs from its own virtual environment (adr/0007): the setting, the lock, the errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trackway.config import load_settings
from trackway.transform.dbt_runner import DbtBuildError, run_dbt

REPO_ROOT = Path(__file__).resolve().parents[1]


def _pins(lock: str) -> dict[str, str]:
    text = (REPO_ROOT / lock).read_text()
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, flags=re.MULTILINE))


def test_dbt_lock_has_the_adapters_and_shares_dbt_core_and_duckdb_with_the_airflow_lock():
    dbt, airflow = _pins("requirements-dbt.txt"), _pins("requirements.txt")
    assert {"dbt-core", "dbt-duckdb", "dbt-postgres", "dbt-bigquery"} <= dbt.keys()
    assert dbt["dbt-core"].startswith("1.11.") and dbt["dbt-core"] == airflow["dbt-core"]
    assert dbt["duckdb"] == airflow["duckdb"]  # both environments open the same warehouse file
    # The clash that forces two environments (if it goes away, the locks can merge again).
    gcs = lambda pins: tuple(int(x) for x in pins["google-cloud-storage"].split(".")[:2])  # noqa: E731
    assert gcs(dbt) < (3, 2) <= (3, 10) <= gcs(airflow)
    assert "dbt-bigquery" not in airflow


@pytest.mark.bigquery  # the default is .dbt-venv/bin/dbt once it exists: make test-bigquery installs it
def test_default_is_in_process_except_on_bigquery(trackway_env, monkeypatch):
    """dbt-core, dbt-duckdb and dbt-postgres are in Airflow's environment: no process per task there."""
    monkeypatch.delenv("TRACKWAY_DBT_EXECUTABLE", raising=False)
    assert load_settings().dbt_executable is None  # DuckDB
    monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", "postgresql://trackway@localhost/trackway")
    assert load_settings().dbt_executable is None
    monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", "bigquery://my-project/trackway")
    assert load_settings().dbt_executable == REPO_ROOT / ".dbt-venv" / "bin" / "dbt"  # make test-bigquery builds it
    monkeypatch.setenv("TRACKWAY_DBT_EXECUTABLE", "in-process")
    assert load_settings().dbt_executable is None
    explicit = REPO_ROOT / ".dbt-venv" / "bin" / "dbt"
    monkeypatch.setenv("TRACKWAY_DBT_EXECUTABLE", str(explicit))
    monkeypatch.delenv("TRACKWAY_WAREHOUSE_URL")
    assert load_settings().dbt_executable == explicit


def test_missing_dbt_executable_says_what_to_do(trackway_env, monkeypatch, tmp_path):
    monkeypatch.setenv("TRACKWAY_DBT_EXECUTABLE", str(tmp_path / "nope" / "dbt"))
    settings = load_settings()
    with pytest.raises(DbtBuildError, match="make dbt-venv"):
        run_dbt(settings, "parse")


def test_bigquery_needs_the_dbt_environment(monkeypatch, trackway_env):
    monkeypatch.setenv("TRACKWAY_DBT_EXECUTABLE", "in-process")
    monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", "bigquery://my-project/trackway")
    with pytest.raises(DbtBuildError, match="make dbt-venv"):
        run_dbt(load_settings(), "parse")


@pytest.mark.bigquery  # .dbt-venv is installed for this tier (make test-bigquery)
def test_parse_runs_in_the_dbt_environment(trackway_env, monkeypatch):
    # make test-bigquery builds .dbt-venv first; a missing one is an install bug, not a reason to skip.
    assert (REPO_ROOT / ".dbt-venv" / "bin" / "dbt").is_file(), "run make dbt-venv (make test-bigquery does it)"
    monkeypatch.setenv("TRACKWAY_DBT_EXECUTABLE", str(REPO_ROOT / ".dbt-venv" / "bin" / "dbt"))
    report = run_dbt(load_settings(), "parse")
    assert report.success and report.errors == []
    assert (trackway_env / "dbt" / "target" / "manifest.json").exists()
