"""trackway.orchestration.dbt_in_process: the same answers as the dbt-common and Cosmos code it replaces, and
the manifest kept between dbt commands replaced whenever what it was parsed from changes."""

import gc
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

from dbt_common import behavior_flags

from dbt_helpers import DBT_DIR, make_warehouse
from trackway.orchestration import dbt_in_process
from trackway.orchestration.dbt_tasks import PIPELINE_DBT_ENV

FLAG = {"name": "a_flag", "default": False, "description": "a flag made by this test"}


def _rendered_source() -> str:
    return behavior_flags.BehaviorFlagRendered(FLAG, {})._behavior_change_event.flag_source


def test_a_flag_names_the_module_that_made_it_as_dbt_common_did():
    dbt_in_process.speed_up_in_process_dbt()
    original = dbt_in_process._APPLIED["flag_source"]
    replaced = vars(behavior_flags.BehaviorFlagRendered)["_default_source"]  # the staticmethod itself
    try:
        behavior_flags.BehaviorFlagRendered._default_source = staticmethod(original)
        theirs = _rendered_source()
    finally:
        behavior_flags.BehaviorFlagRendered._default_source = replaced
    assert theirs == __name__
    assert _rendered_source() == theirs


def test_after_cosmos_cleans_up_what_survived_is_frozen():
    from cosmos.dbt import runner

    dbt_in_process.speed_up_in_process_dbt()
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    runner._cleanup_dbt_adapters()
    assert gc.get_freeze_count() > 0


# -- the manifest kept between Cosmos's dbt commands ---------------------------------------------------------

COSMOS_FLAGS = ["--profile", "trackway", "--target", "duckdb", "--vars", "test_scope: new_rows\n", "--no-static-parser"]


def _project_copy(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(DBT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    return project


def _command(project: Path, *selection: str, command: str = "build") -> list[str]:
    """As Cosmos words it: the profiles from the project it copied (DBT_DIR), run in its copy."""
    return ["dbt", command, *selection, "--project-dir", str(project), "--profiles-dir", str(DBT_DIR), *COSMOS_FLAGS]


def test_the_key_is_what_the_manifest_is_parsed_from_not_the_nodes_chosen(tmp_path, monkeypatch):
    project = _project_copy(tmp_path)
    key = partial(dbt_in_process.manifest_key, cwd=str(project))
    env = {"TRACKWAY_DUCKDB_PATH": str(tmp_path / "a.duckdb")}
    build = key(_command(project, "--select", "stg_events")[1:], env)
    assert build is not None
    assert key(_command(project, "--select", "fqn:trackway.marts.events", "--exclude", "a b")[1:], env) == build
    assert key(_command(project, command="test")[1:], env) == build  # build, run and test share one manifest
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(project, elsewhere)  # Cosmos's per-task copy: another folder, the same files
    assert key(_command(elsewhere, "--select", "users")[1:], env, cwd=str(elsewhere)) == build

    other_vars = [a.replace("new_rows", "all") for a in _command(project)[1:]]
    other_target = [a.replace("duckdb", "postgres") for a in _command(project)[1:]]
    assert len({build, key(other_vars, env), key(other_target, env)}) == 3
    assert key(_command(project)[1:], {"TRACKWAY_DUCKDB_PATH": str(tmp_path / "b.duckdb")}) != build
    monkeypatch.setenv("DBT_SOMETHING", "set in the environment, not by Cosmos")
    assert key(_command(project)[1:], env) != build
    monkeypatch.delenv("DBT_SOMETHING")
    model = project / "models" / "marts" / "users.sql"
    model.write_text(model.read_text() + "\n-- an edit\n")
    assert key(_command(project)[1:], env) != build
    assert key(["deps", "--project-dir", str(project)], env) is None
    assert key(["parse", "--project-dir", str(project)], env) is None
    assert key(["source", "freshness", "--project-dir", str(project), *COSMOS_FLAGS], env) is not None
    (project / "models" / "loop").symlink_to(project / "models")  # a symlink loop: each real folder read once
    assert key(_command(project)[1:], env) is not None


def test_a_second_command_runs_on_the_kept_manifest_and_an_edit_loads_a_new_one(tmp_path, request):
    """Through Cosmos's own run_command, as its DBT_RUNNER tasks call it, on a DuckDB warehouse."""
    from cosmos.dbt import runner

    dbt_in_process.speed_up_in_process_dbt()
    dbt_in_process.MANIFESTS.clear()
    project = _project_copy(tmp_path)
    wh = make_warehouse("duckdb", tmp_path, request, "kept_manifest")

    def build(model: str) -> bool:
        env = {**wh.env, **PIPELINE_DBT_ENV}
        result = runner.run_command(_command(project, "--select", model, command="run"), env, str(project))
        return bool(result.success)

    hits, misses = dbt_in_process.MANIFESTS.hits, dbt_in_process.MANIFESTS.misses
    assert build("stg_events")
    assert (dbt_in_process.MANIFESTS.hits - hits, dbt_in_process.MANIFESTS.misses - misses) == (0, 1)
    assert build("+int_events_new")  # with what it reads
    assert (dbt_in_process.MANIFESTS.hits - hits, dbt_in_process.MANIFESTS.misses - misses) == (1, 1)
    # An edit the kept manifest does not have: a new column, which only a new parse puts in the model.
    model = project / "models" / "staging" / "stg_events.sql"
    model.write_text(f"select *, 1 as added_by_the_test from (\n{model.read_text()}\n) as edited\n")
    assert build("stg_events")
    assert dbt_in_process.MANIFESTS.misses - misses == 2
    [column] = wh.query(
        "select column_name from information_schema.columns where table_name = 'stg_events' "
        "and column_name = 'added_by_the_test'"
    )
    assert column == {"column_name": "added_by_the_test"}


def test_installing_it_while_the_dag_is_parsed_imports_no_dbt_cli():
    """speed_up_in_process_dbt runs while events_transform is parsed: dbt's CLI (about 3 s to import) waits
    for the first dbt command."""
    code = (
        "import sys, airflow\n"
        "from trackway.orchestration.dbt_in_process import speed_up_in_process_dbt\n"
        "speed_up_in_process_dbt()\n"
        "print(sorted(m for m in sys.modules if m.startswith('dbt.cli')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
