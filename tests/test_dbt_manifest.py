"""The dbt manifest is compiled ahead of time (adr/0014).

Parsing the DAG folder runs no dbt and spawns no process; a stale or missing manifest
fails events_transform's import, and `trackway status` says so, both naming the command
that fixes it. Real parts: `dbt parse` on a copy of the project, Airflow's DagBag.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from plan_fixtures import DEMO_PLAN
from trackway.cli import main
from trackway.config import load_settings
from trackway.transform.manifest import COMPILE_COMMAND, FINGERPRINT_FILE, check_manifest, compile_manifest

REPO_ROOT = Path(__file__).resolve().parents[1]
_CLEARED = ("TRACKWAY_RAW_URL", "TRACKWAY_WAREHOUSE_URL", "TRACKWAY_PLAN_DIR", "TRACKWAY_DBT_EXECUTABLE")


def _use(env: dict[str, str], mp: pytest.MonkeyPatch) -> None:
    for var in _CLEARED:
        mp.delenv(var, raising=False)
    for key, value in env.items():
        mp.setenv(key, value)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, str]:
    """`trackway transform compile` for a copy of the dbt project (the tests edit the copy), in its own home."""
    root = tmp_path_factory.mktemp("manifest")
    project = root / "dbt"
    shutil.copytree(REPO_ROOT / "include" / "dbt", project, ignore=shutil.ignore_patterns("target", "logs"))
    env = {"TRACKWAY_HOME": str(root / "home"), "TRACKWAY_DBT_PROJECT_DIR": str(project)}
    with pytest.MonkeyPatch.context() as mp:
        _use(env, mp)
        assert main(["transform", "compile"]) == 0
    return env


@pytest.fixture
def home(compiled, monkeypatch) -> Path:
    _use(compiled, monkeypatch)
    return Path(compiled["TRACKWAY_HOME"])


@pytest.fixture
def spawned(monkeypatch) -> list[str]:
    """Every dbtRunner invocation and every child process started while the test runs (a spy on the real code).

    The tests assert that none of them is dbt; others (a first import's ``file -b python``
    from the platform module) are printed.
    """
    from airflow.dag_processing.dagbag import DagBag  # noqa: F401 (imported before the spy, as in the DAG processor)
    from dbt.cli.main import dbtRunner

    calls: list[str] = []
    invoke, execute_child = dbtRunner.invoke, subprocess.Popen._execute_child  # type: ignore[attr-defined]

    def spy_invoke(self, args, **kwargs):
        calls.append(f"dbtRunner.invoke {args}")
        return invoke(self, args, **kwargs)

    def spy_execute_child(self, args, *rest, **kwargs):
        calls.append(f"subprocess {args}")
        return execute_child(self, args, *rest, **kwargs)

    monkeypatch.setattr(dbtRunner, "invoke", spy_invoke)
    monkeypatch.setattr(subprocess.Popen, "_execute_child", spy_execute_child)
    return calls


def _dbt(calls: list[str]) -> list[str]:
    return [call for call in calls if "dbt" in call]


def _parse_dags():
    from airflow.dag_processing.dagbag import DagBag

    saved = dict(os.environ)  # the DAG file sets dbt's connection variables in os.environ
    try:
        return DagBag(dag_folder=str(REPO_ROOT / "dags"))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _transform_import_error(dagbag) -> str:
    return next(str(v) for k, v in dagbag.import_errors.items() if k.endswith("events_transform.py"))


def _status(capsys) -> str:
    assert main(["status"]) == 0
    return next(line for line in capsys.readouterr().out.splitlines() if line.startswith("dbt manifest:"))


def test_compile_writes_manifest_and_fingerprint_without_a_warehouse(home, compiled, capsys):
    manifest = home / "dbt" / "manifest" / "manifest.json"
    assert "model.trackway.events" in json.loads(manifest.read_text())["nodes"]
    parts = json.loads((manifest.parent / FINGERPRINT_FILE).read_text())["parts"]
    assert parts["dbt target"] == "duckdb" and parts["tracking plan"] == "none"  # no plan: no analytics_x models
    assert parts["project used by the DAG"] == compiled["TRACKWAY_DBT_PROJECT_DIR"]
    assert sorted(p.name for p in home.iterdir()) == ["dbt"]  # no warehouse.duckdb: dbt parse never connected
    # Parsed as events_transform's tasks run dbt, and put where Cosmos starts them from (the project's target):
    # their first dbt reads it instead of parsing the project again.
    parsed = manifest.parent / "partial_parse.msgpack"
    seeded = Path(compiled["TRACKWAY_DBT_PROJECT_DIR"]) / "target" / "partial_parse.msgpack"
    assert seeded.read_bytes() == parsed.read_bytes()
    # dbt's file log at info, not its debug default (trackway.transform.dbt_runner: DBT_LOG_LEVEL_FILE=debug
    # brings each statement back): a build's every result and error stay, the statements' lines do not.
    log = (home / "dbt" / "logs" / "dbt.log").read_text()
    assert "[info ]" in log and "[debug]" not in log, log[:2000]


def test_compile_is_a_no_op_when_current(home, spawned, capsys):
    assert main(["transform", "compile"]) == 0
    assert "current already, not recompiled" in capsys.readouterr().out
    assert _dbt(spawned) == []


def test_parsing_the_dag_folder_runs_no_dbt(home, airflow_db, spawned):
    dagbag = _parse_dags()
    assert dagbag.import_errors == {}
    assert {"events_load", "events_transform"} <= set(dagbag.dag_ids)
    assert len(dagbag.get_dag("events_transform").tasks) > 10  # the dbt graph (18 tasks), from the manifest
    print("processes started while parsing:", spawned)
    assert _dbt(spawned) == [], "parsing the DAGs ran dbt"
    for stat in dagbag.dagbag_stats:  # a figure to read, not an assert (benchmarks/bench_dag_parse.py)
        print(f"parsed {stat.file} in {stat.duration.total_seconds():.3f}s ({stat.task_num} tasks)")


def test_stale_manifest_fails_the_import_and_shows_in_status(home, compiled, airflow_db, spawned, tmp_path, capsys):
    import duckdb

    warehouse = tmp_path / "warehouse.duckdb"  # `trackway status` reads counts from a warehouse first
    duckdb.connect(str(warehouse)).close()
    os.environ["TRACKWAY_WAREHOUSE_URL"] = f"duckdb://{warehouse}"  # restored by conftest's _restore_environ
    assert _status(capsys).startswith("dbt manifest: current")
    model = Path(compiled["TRACKWAY_DBT_PROJECT_DIR"]) / "models" / "marts" / "events.sql"
    original = model.read_text()
    model.write_text(original + "\n-- an edit after the last compile\n")
    try:
        dagbag = _parse_dags()
        error = _transform_import_error(dagbag)
        assert "stale" in error and "the dbt project's files changed" in error and COMPILE_COMMAND in error
        assert "events_load" in dagbag.dag_ids and "events_transform" not in dagbag.dag_ids
        line = _status(capsys)
        assert "stale (the dbt project's files changed)" in line and COMPILE_COMMAND in line
    finally:
        model.write_text(original)
    assert _status(capsys).startswith("dbt manifest: current")  # a content hash: the same files are current again
    assert _dbt(spawned) == [], "a stale manifest was rebuilt at parse time"


def test_missing_manifest_fails_the_import_and_shows_in_status(tmp_path, monkeypatch, airflow_db, spawned, capsys):
    import duckdb

    _use({"TRACKWAY_HOME": str(tmp_path / "home")}, monkeypatch)
    (tmp_path / "home").mkdir()
    duckdb.connect(str(tmp_path / "home" / "warehouse.duckdb")).close()
    error = _transform_import_error(_parse_dags())
    assert "dbt manifest: missing" in error and COMPILE_COMMAND in error
    assert _status(capsys).startswith("dbt manifest: missing (no manifest in ")
    assert _dbt(spawned) == []


def test_only_the_plans_dbt_models_make_the_manifest_stale_a_target_change_does(home, monkeypatch, tmp_path):
    """Typed views are deployed, not compiled (adr/0029): a plan change leaves the manifest's plan part as it was,
    unless it changes the analytics_x models the plan generates (a reference to a synced table)."""
    from app_fixtures import sources_yaml
    from trackway.transform.manifest import fingerprint

    plan = shutil.copytree(DEMO_PLAN, tmp_path / "plan")
    monkeypatch.setenv("TRACKWAY_PLAN_DIR", str(plan))
    before = fingerprint(load_settings())["tracking plan"]
    (plan / "events" / "teleported.yaml").write_text(
        "name: Listing Teleported\ntype: track\ndescription: d\nowner: o\nproperties: {type: object}\n"
    )
    monkeypatch.setenv("TRACKWAY_TYPED_SCHEMA", "typed_elsewhere")
    assert fingerprint(load_settings())["tracking plan"] == before  # no dbt model changed
    (tmp_path / "sources.yml").write_text(sources_yaml("sqlite:///" + str(tmp_path / "app.sqlite")))
    monkeypatch.setenv("TRACKWAY_SOURCES_FILE", str(tmp_path / "sources.yml"))
    assert fingerprint(load_settings())["tracking plan"] != before  # analytics_x views for app.listings now
    monkeypatch.delenv("TRACKWAY_PLAN_DIR")
    monkeypatch.delenv("TRACKWAY_SOURCES_FILE")
    monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", "postgresql://trackway@127.0.0.1:1/warehouse")
    state = check_manifest(load_settings())
    assert "the warehouse's dbt target changed (compiled for duckdb, now postgres)" in state.reasons
    assert COMPILE_COMMAND in state.line()
    assert any(r.startswith("dbt or its adapter was upgraded") and "dbt-postgres" in r for r in state.reasons)


def test_transform_help_says_compile_is_the_ahead_of_time_step(capsys):
    with pytest.raises(SystemExit):
        main(["transform", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "`trackway transform compile` is the ahead-of-time step" in text and "manifest.json" in text


@pytest.mark.slow
def test_compile_needs_no_postgres_server(tmp_path, monkeypatch):
    """make install and the image build compile with no warehouse running: dbt parse never connects."""
    _use(
        {
            "TRACKWAY_HOME": str(tmp_path / "home"),
            "TRACKWAY_WAREHOUSE_URL": "postgresql://trackway@127.0.0.1:1/warehouse",  # nothing listens on port 1
        },
        monkeypatch,
    )
    result = compile_manifest(load_settings())
    assert result.compiled and check_manifest(load_settings()).current
    print(f"trackway transform compile (PostgreSQL target, cold): {result.seconds:.1f}s")
