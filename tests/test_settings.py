"""The settings registry: one declaration per TRACKWAY_* variable, checked per component, documented from itself."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from compose_file import ANNOUNCED_SETTINGS
from trackway.cli import main
from trackway.config import SETTINGS, ConfigError, default, load_settings
from trackway.config.commands import reference_markdown

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE = REPO_ROOT / "docs" / "reference" / "configuration.md"


def test_the_committed_reference_is_what_the_registry_generates():
    assert REFERENCE.read_text() == reference_markdown(), (
        "docs/reference/configuration.md is out of date: run `trackway config docs > docs/reference/configuration.md`"
    )


def test_every_trackway_variable_the_code_reads_is_registered():
    """grep the code, the dbt profile and the compose file for TRACKWAY_* names: each one is in the registry.

    (AIRFLOW_CONN_TRACKWAY_* are Airflow connections, not settings: the look-behind skips them.)
    """
    found = subprocess.run(
        [
            "grep",
            "-rhoP",
            r"(?<![A-Z_])TRACKWAY_[A-Z0-9_]+",
            "include/trackway",
            "include/dbt",
            "dags",
            "docker-compose.yaml",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    not_settings = {"TRACKWAY_SCHEMAS"}  # a Python constant in bigquery_warehouse.py, not a variable
    registered = {s.name for s in SETTINGS} | ANNOUNCED_SETTINGS  # the compose file names those of sibling branches
    names = {n for n in found if not n.endswith("_") and n not in not_settings}
    assert names - registered == set()
    assert {s.name for s in SETTINGS if s.internal} >= {"TRACKWAY_PG_PASSWORD", "TRACKWAY_DBT_TARGET"}


def test_defaults_live_in_the_registry(monkeypatch):
    from trackway.collector.protocol import GuardedHttpToolsProtocol
    from trackway.segment_rules import MAX_EVENT_BYTES

    for name in ("TRACKWAY_MAX_EVENT_BYTES", "TRACKWAY_HEADER_TIMEOUT_SECONDS", "TRACKWAY_MAX_CONNECTIONS"):
        monkeypatch.delenv(name, raising=False)
    limits = load_settings().collector
    assert MAX_EVENT_BYTES == limits.max_event_bytes == default("TRACKWAY_MAX_EVENT_BYTES") == 32 * 1024
    assert GuardedHttpToolsProtocol.header_timeout == limits.header_timeout_seconds
    assert GuardedHttpToolsProtocol.max_connections == limits.max_connections


def test_check_warns_about_a_misspelled_name_and_suggests_the_right_one(trackway_env, monkeypatch, capsys):
    monkeypatch.setenv("TRACKWAY_WRITE_KEY", "web:abc")
    assert main(["config", "check"]) == 0  # a warning, not an error
    out = capsys.readouterr().out
    assert "TRACKWAY_WRITE_KEY is not a Trackway setting and is ignored; did you mean TRACKWAY_WRITE_KEYS?" in out
    assert re.search(r"TRACKWAY_HOME\s+\S+\s+env", out) and re.search(
        r"TRACKWAY_MAX_BATCH_EVENTS\s+2500\s+default", out
    )


def test_an_invalid_value_fails_the_check_naming_the_variable(trackway_env, monkeypatch, capsys):
    monkeypatch.setenv("TRACKWAY_MAX_BATCH_EVENTS", "abc")
    assert main(["config", "check"]) == 2
    out = capsys.readouterr().out
    assert "error: TRACKWAY_MAX_BATCH_EVENTS='abc' is not a whole number; set it to e.g. 2500" in out
    assert main(["config", "check", "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and any("TRACKWAY_MAX_BATCH_EVENTS" in e for e in report["errors"])
    bad = [r["name"] for r in report["settings"] if not r["valid"]]
    assert bad == ["TRACKWAY_MAX_BATCH_EVENTS"]  # its neighbours in the section still show their values
    # The load does not read it: checking only the load passes.
    assert main(["config", "check", "--component", "load", "--json"]) == 0
    names = {r["name"] for r in json.loads(capsys.readouterr().out)["settings"]}
    assert "TRACKWAY_LOAD_LOOKBACK_HOURS" in names and "TRACKWAY_MAX_BATCH_EVENTS" not in names


def test_a_bad_setting_breaks_only_the_component_that_reads_it(trackway_env, monkeypatch):
    monkeypatch.setenv("TRACKWAY_MAX_BATCH_EVENTS", "abc")
    settings = load_settings()  # the core settings are fine
    assert settings.task_retries == 2 and settings.load_lookback_hours == 1
    with pytest.raises(ConfigError, match="TRACKWAY_MAX_BATCH_EVENTS"):
        settings.collector  # noqa: B018
    with pytest.raises(ConfigError, match="TRACKWAY_MAX_BATCH_EVENTS"):
        load_settings("collector")
    load_settings("load", "transform", "dags")


def test_the_dag_folder_imports_with_a_bad_collector_setting(trackway_env, airflow_db, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    from trackway.config import load_settings
    from trackway.transform.manifest import compile_manifest

    compile_manifest(load_settings())  # `trackway transform compile`, as make install runs it
    monkeypatch.setenv("TRACKWAY_MAX_BATCH_EVENTS", "abc")
    dagbag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    assert dagbag.import_errors == {}
    # Every DAG file still defines its DAG (tests/test_dag_integrity.py names them): one per file, named after it.
    assert set(dagbag.dag_ids) == {p.stem for p in (REPO_ROOT / "dags").glob("*.py") if not p.name.startswith("_")}


def test_a_bad_load_setting_fails_the_load_with_its_message(trackway_env, airflow_db, monkeypatch, capsys):
    monkeypatch.setenv("TRACKWAY_LOAD_LOOKBACK_HOURS", "an hour")
    monkeypatch.setenv("TRACKWAY_TASK_RETRIES", "0")
    message = "TRACKWAY_LOAD_LOOKBACK_HOURS='an hour' is not a whole number; set it to e.g. 1"
    assert main(["load", "--hour", "2026-11-22T10"]) == 2
    assert message in capsys.readouterr().err
    spec = importlib.util.spec_from_file_location("dag_events_load_settings", REPO_ROOT / "dags" / "events_load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the DAG file itself imports fine
    run = module.events_load().test(logical_date=datetime(2026, 11, 22, 11, tzinfo=UTC))
    assert run.state == "failed"
    alerts = [json.loads(line) for line in (trackway_env / "alerts.ndjson").read_text().splitlines()]
    assert len(alerts) == 1 and message in alerts[0]["error"]


def test_dbt_runs_one_watched_build_where_each_dbt_is_a_process(trackway_env, monkeypatch, tmp_path):
    """adr/0040: per-model dbt in-process (DuckDB, PostgreSQL); one watched build with a dbt executable."""
    monkeypatch.delenv("TRACKWAY_DBT_EXECUTION", raising=False)
    monkeypatch.setenv("TRACKWAY_DBT_EXECUTABLE", "in-process")
    assert load_settings().dbt_execution == "per_model"
    monkeypatch.setenv("TRACKWAY_DBT_EXECUTABLE", str(tmp_path / "dbt"))
    assert load_settings().dbt_execution == "watcher"
    monkeypatch.setenv("TRACKWAY_DBT_EXECUTION", "per_model")
    assert load_settings().dbt_execution == "per_model"
    monkeypatch.setenv("TRACKWAY_DBT_EXECUTION", "one_big_build")
    with pytest.raises(ConfigError, match="TRACKWAY_DBT_EXECUTION"):
        _ = load_settings().dbt_execution
