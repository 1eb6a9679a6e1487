"""events_transform as one Airflow task per dbt model, through astronomer-cosmos.

The DAG file only wires what this module builds:

* the graph comes from dbt's manifest (``LoadMode.DBT_MANIFEST``), compiled
  ahead of time by ``trackway transform compile`` (trackway.transform.manifest,
  adr/0014): parsing the DAG never runs dbt and never writes the project; a
  stale or missing manifest fails the import with the command that fixes it;
* each model runs as ``dbt build --select <model>`` (its data tests included,
  ``TestBehavior.BUILD``); tests spanning several models, and the raw
  source's freshness check (warn/error levels in ``_sources.yml``), are
  tasks of their own, so on-call sees what failed and can retry it alone;
* or, with ``TRACKWAY_DBT_EXECUTION=watcher`` (the default where dbt is a
  process of its own: BigQuery), one ``dbt build`` of the whole project runs
  first and each model's run and tests are tasks that read its result;
  a retried one builds its model alone (adr/0040);
* dbt runs in the worker process (``InvocationMode.DBT_RUNNER``) with the
  connection taken from the environment, never from the serialized DAG;
* DuckDB has a single writer: on DuckDB the DAG runs one task at a time;
* the hourly tasks test only what each model's latest run wrote (var
  ``test_scope: new_rows``, adr/0034); ``dbt_audit_task`` tests all history,
  once a day in the events_audit DAG.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from trackway.config import Settings, load_settings
from trackway.orchestration.dbt_in_process import speed_up_in_process_dbt
from trackway.transform.dbt_runner import DBT_PROFILE, HOURLY_DBT_VARS, dbt_environment, project_path
from trackway.transform.manifest import require_current_manifest
from trackway.transform.plan_models import PLAN_MODELS

# dbt's unit tests need their parents built already; they run in CI
# (`dbt test --select test_type:unit`), not in the pipeline. No dbt.log: Cosmos runs each dbt in a temporary
# copy of the project and deletes it, log folder included; what dbt prints goes to the task's Airflow log.
# Writing that debug log cost a tenth of each task's dbt time (issue 20 §7).
PIPELINE_DBT_ENV = {"DBT_EXCLUDE_RESOURCE_TYPES": "unit_test", "DBT_LOG_LEVEL_FILE": "none"}


def max_active_tasks(settings: Settings) -> int:
    """One task at a time on DuckDB (a single writer); dbt's own threads (4) on PostgreSQL."""
    return 1 if settings.warehouse.kind == "duckdb" else 4


def _dbt_config(settings: Settings) -> tuple[Any, Any, dict[str, Any]]:
    """Cosmos's profile and execution settings, shared by the hourly task group and the daily audit."""
    from cosmos import ExecutionConfig, ProfileConfig
    from cosmos.constants import ExecutionMode, InvocationMode

    # profiles.yml reads only these variables; set here, in the process that
    # parses the DAG and runs its tasks, so no credential is serialized.
    os.environ.update(dbt_environment(settings))
    project = project_path(settings)
    executable = {"dbt_executable_path": str(settings.dbt_executable)} if settings.dbt_executable else {}
    profile = ProfileConfig(
        profile_name=DBT_PROFILE,
        # The profile's target as dbt_runner picks it (bigquery_emulator when an API endpoint is set).
        target_name=settings.warehouse.dbt_env()["TRACKWAY_DBT_TARGET"],
        profiles_yml_filepath=project / "profiles.yml",
    )
    if not executable:  # dbt in this process: many dbt commands per process under `dags test` (the demo)
        speed_up_in_process_dbt()
    execution = ExecutionConfig(
        execution_mode=ExecutionMode.WATCHER if settings.dbt_execution == "watcher" else ExecutionMode.LOCAL,
        # dbt in its own environment (BigQuery) runs as a subprocess of that dbt.
        invocation_mode=InvocationMode.SUBPROCESS if executable else InvocationMode.DBT_RUNNER,
        **executable,
    )
    return profile, execution, executable


def dbt_task_group(group_id: str = "dbt") -> Any:
    """The Cosmos task group: one task per model (with its tests), per multi-model test, and source freshness."""
    from cosmos import DbtTaskGroup, ProjectConfig, RenderConfig
    from cosmos.constants import LoadMode, SourceRenderingBehavior, TestBehavior

    settings = load_settings()
    profile, execution, _ = _dbt_config(settings)
    watcher = settings.dbt_execution == "watcher"
    # Both written by `trackway transform compile`; here only read (with a plan: the copy holding its models).
    manifest = require_current_manifest(settings)
    group = DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(
            dbt_project_path=project_path(settings),
            manifest_path=manifest,
            project_name="trackway",
            # Given to every dbt the tasks start, without leaking into this process's
            # environment (a later `dbt test --select test_type:unit` here must still see them).
            env_vars=PIPELINE_DBT_ENV,
            # Each run tests what it wrote (adr/0034); `trackway transform compile` parsed with the same vars.
            dbt_vars=dict(HOURLY_DBT_VARS),
        ),
        profile_config=profile,
        execution_config=execution,
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            # The watcher's one build runs every test: each model's tests are a task of their own that reads it.
            test_behavior=TestBehavior.AFTER_EACH if watcher else TestBehavior.BUILD,
            source_rendering_behavior=SourceRenderingBehavior.WITH_TESTS_OR_FRESHNESS,
            should_detach_multiple_parents_tests=True,
            # Unit tests run in CI; the on-run-end hook (audit.dbt_results) is no task of its own.
            # The plan's analytics_x views read the deployed typed views: built by the DAG's last task.
            exclude=["resource_type:unit_test", "resource_type:operation", PLAN_MODELS],
            # No Airflow asset per model (Cosmos's default, which overrides operator_args): the DAG publishes
            # analytics.events; each model's lineage still goes to OpenLineage (the provider asks the task).
            emit_datasets=False,
        ),
        operator_args={"install_deps": False},
    )
    if watcher:
        _watch_after_the_build(group)
    return group


def _watch_after_the_build(group: Any) -> None:
    """The watched build first; each of the group's first tasks after it, whether it succeeded or failed.

    Cosmos starts a task group's watchers beside the build, waiting for its results. Under `airflow dags
    test` (the demo, the tests), which runs one task at a time, a watcher that ran first waited forever
    for a build that could not start. After the build they find every result at once.

    ``one_done`` runs them when the build failed too, so each model shows its own result (and a retry
    builds it alone), and skips them with a skipped build (micro-batch's fresh-models branch). The build
    is not retried: Cosmos skips a second attempt; the model tasks' retries do that work.
    """
    tasks = list(group.iter_tasks())
    ids = {task.task_id for task in tasks}
    [producer] = [task for task in tasks if type(task).__name__ == "DbtProducerWatcherOperator"]
    producer.retries = 0
    for task in tasks:
        if task is producer or task.task_id in producer.downstream_task_ids:
            continue
        if not set(task.upstream_task_ids) & ids:
            producer >> task
            task.trigger_rule = "one_done"


def dbt_audit_task(task_id: str = "test_all_history") -> Any:
    """One Cosmos `dbt test` of every data test over all history (var test_scope: all), for the daily audit."""
    from cosmos.operators.local import DbtTestLocalOperator

    settings = load_settings()
    profile, execution, executable = _dbt_config(settings)
    require_current_manifest(settings)  # the same project the hourly tasks run, compiled
    return DbtTestLocalOperator(
        task_id=task_id,
        project_dir=str(project_path(settings)),
        profile_config=profile,
        invocation_mode=execution.invocation_mode,
        env=PIPELINE_DBT_ENV,
        vars={"test_scope": "all"},
        install_deps=False,
        emit_datasets=False,
        **executable,
    )


def transform_summary() -> dict[str, Any]:
    """What the run left in the warehouse, for the task log and the asset event."""
    from trackway.status import stage_counts

    counts = stage_counts(load_settings())
    return {"events": counts.events, "rejected": counts.rejected, "raw_rows": counts.raw_rows}


def publish_bi_snapshot() -> dict[str, Any]:
    """After the transform: the read-only copy of a DuckDB warehouse that Superset opens (adr/0032).

    A no-op on PostgreSQL and BigQuery, which BI reads directly as the read-only role.
    """
    from trackway.warehouse.snapshot import publish_snapshot

    settings = load_settings()
    snapshot = publish_snapshot(settings.transform_warehouse, settings.home)
    if snapshot is None:
        return {"snapshot": None}
    logging.getLogger(__name__).info(snapshot.line())
    return {"snapshot": str(snapshot.path), "bytes": snapshot.bytes}
