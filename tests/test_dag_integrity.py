"""Every DAG file imports cleanly and has the task graph we designed."""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from dbt_parse_reuse import module_home

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compiled_home(request, tmp_path_factory):
    """A home of this worker's own, with the manifest `trackway transform compile` writes (make install, the demo)."""
    from trackway.config import load_settings
    from trackway.transform.manifest import compile_manifest

    home = module_home(request, tmp_path_factory.mktemp("dag-integrity") / "trackway")
    with _home(home, "hourly"):
        compile_manifest(load_settings())
    return home


@contextmanager
def _home(home: Path, mode: str, dbt_execution: str = "per_model"):
    saved = dict(os.environ)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRACKWAY_HOME", str(home))
        mp.setenv("TRACKWAY_PIPELINE_MODE", mode)
        mp.setenv("TRACKWAY_DBT_EXECUTION", dbt_execution)
        mp.setenv("TRACKWAY_DAG_DEADLINE_MINUTES", "45")  # the default; conftest.py turns it off for dag.test()
        for var in ("TRACKWAY_RAW_URL", "TRACKWAY_WAREHOUSE_URL", "TRACKWAY_PLAN_DIR"):
            mp.delenv(var, raising=False)
        yield
    os.environ.clear()
    os.environ.update(saved)  # the DAG file sets dbt's connection variables


@pytest.fixture(scope="module")
def dagbag(airflow_db, compiled_home):
    from airflow.dag_processing.dagbag import DagBag

    with _home(compiled_home, "hourly"):
        bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    bag.trackway_home = str(compiled_home)  # type: ignore[attr-defined]
    return bag


def test_every_dag_file_imports(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {
        "events_load",
        "events_microbatch",
        "events_transform",
        "pipeline_health",
        "app_sync",
        "events_reprocess",
        "privacy",
        "plan_deploy",
        "events_audit",
    }


def test_every_task_retries_only_what_a_retry_can_fix(dagbag):
    """One retry policy on every task, Cosmos's dbt tasks included (trackway.orchestration.retries)."""
    for dag_id in dagbag.dag_ids:
        for task in dagbag.get_dag(dag_id).tasks:
            assert type(task.retry_policy).__name__ == "TrackwayRetryPolicy", (dag_id, task.task_id)


def test_events_reprocess_is_triggered_by_hand_with_its_params(dagbag):
    dag = dagbag.get_dag("events_reprocess")
    assert type(dag.timetable).__name__ == "NullTimetable"  # no schedule
    assert set(dag.params) == {"select", "from_hour", "to_hour", "full_refresh", "confirm_full_refresh"}
    assert dag.params["full_refresh"] is False and dag.params["confirm_full_refresh"] == ""
    assert [t.task_id for t in dag.tasks] == ["reprocess"]
    assert [a.uri for a in dag.get_task("reprocess").outlets] == ["trackway://warehouse/analytics/events"]


def test_every_dag_has_a_deadline_alert_through_the_one_notifier(dagbag):
    for dag_id in dagbag.dag_ids:
        [deadline] = dagbag.get_dag(dag_id).deadline
        assert deadline.interval == timedelta(minutes=45)
        assert deadline.callback.serialize()["path"].endswith("alerts.TrackwayAlertNotifier"), dag_id
        assert deadline.callback.serialize()["kwargs"] == {"kind": "deadline_missed"}


def test_pipeline_health_has_a_task_per_check_family(dagbag):
    from trackway.health.observe import FAMILIES

    dag = dagbag.get_dag("pipeline_health")
    assert [t.task_id for t in dag.tasks] == [f"check_{f}" for f in FAMILIES]
    assert all(t.retries == 0 for t in dag.tasks)  # a verdict, not a fault to retry


def test_app_sync_maps_one_task_over_the_declared_databases(dagbag):
    dag = dagbag.get_dag("app_sync")
    assert [t.task_id for t in dag.tasks] == ["declared_databases", "sync_database"]
    assert dag.get_task("sync_database").upstream_task_ids == {"declared_databases"}
    assert [a.uri for a in dag.get_task("sync_database").outlets] == ["trackway://warehouse/app"]
    assert dag.timetable.expression == "40 * * * *" and dag.max_active_runs == 1
    assert type(dag.default_args["on_failure_callback"]).__name__ == "TrackwayAlertNotifier"


def test_events_load_is_hourly_over_data_intervals(dagbag):
    from airflow.timetables.interval import CronDataIntervalTimetable
    from pendulum import DateTime, Timezone

    dag = dagbag.get_dag("events_load")
    assert [t.task_id for t in dag.tasks] == ["load_raw_objects", "check_load"]
    assert dag.get_task("check_load").upstream_task_ids == {"load_raw_objects"}
    assert dag.get_task("check_load").retries == 0  # a report to act on, not a fault to retry
    timetable = dag.timetable
    assert isinstance(timetable, CronDataIntervalTimetable) or type(timetable).__name__ == "CronDataIntervalTimetable"
    # A manual run "at" 11:00 covers the hour that just ended: 10:00–11:00.
    from airflow.serialization.encoders import coerce_to_core_timetable

    core = coerce_to_core_timetable(timetable)
    interval = core.infer_manual_data_interval(run_after=DateTime(2026, 11, 22, 11, 0, tzinfo=Timezone("UTC")))
    assert (interval.start.hour, interval.end.hour) == (10, 11)
    outlets = dag.get_task("load_raw_objects").outlets
    assert [a.uri for a in outlets] == ["trackway://warehouse/raw/events_raw"]
    assert dag.max_active_runs == 1
    assert dag.default_args["retries"] >= 1
    assert type(dag.default_args["on_failure_callback"]).__name__ == "TrackwayAlertNotifier"


def test_events_transform_runs_on_the_raw_asset(dagbag):
    dag = dagbag.get_dag("events_transform")
    condition = dag.timetable.asset_condition
    assert [asset.uri for asset in condition.objects] == ["trackway://warehouse/raw/events_raw"]
    assert [a.uri for a in dag.get_task("publish").outlets] == ["trackway://warehouse/analytics/events"]


def test_events_transform_has_a_task_per_model_test_and_source(dagbag):
    """Cosmos renders the dbt graph from the manifest: one task per model, multi-model test and source freshness."""
    dag = dagbag.get_dag("events_transform")
    ids = {t.task_id for t in dag.tasks}
    models = ["stg_events", "int_events_new", "events", "events_rejected", "sessions", "identity_map", "users"]
    models += ["daily_active_users", "experiment_assignments", "int_identity_links", "int_person_days"]
    models += ["stickiness", "funnels", "retention_cohorts", "experiment_results", "page_paths"]  # product metrics
    assert {f"dbt.{m}_model_build" for m in models} <= ids, sorted(ids)
    assert any("events_raw" in i and "source" in i for i in ids), sorted(ids)  # freshness
    assert any("assert_every_raw_line_is_accounted_for" in i for i in ids), sorted(ids)
    assert any("assert_every_event_is_in_exactly_one_session" in i for i in ids), sorted(ids)
    assert not any("unit" in i for i in ids)
    events = dag.get_task("dbt.events_model_build")
    assert "dbt.int_events_new_model_build" in events.upstream_task_ids
    assert dag.get_task("dbt.funnels_model_build").upstream_task_ids >= {
        "dbt.events_model_build",
        "dbt.sessions_model_build",
    }
    assert "dbt.daily_active_users_model_build" in dag.get_task("dbt.stickiness_model_build").upstream_task_ids
    assert dag.get_task("publish").upstream_task_ids  # after the dbt group
    # On DuckDB the BI snapshot, then the HTML report (TRACKWAY_REPORT_PATH, docs/report.md) come last, after the
    # marts and analytics_x: a failure there fails only them, the asset event is out already.
    assert dag.get_task("bi_snapshot").upstream_task_ids == {"publish", "build_analytics_x"}
    report = dag.get_task("report")
    assert report.upstream_task_ids == {"bi_snapshot"} and not report.downstream_task_ids
    assert dag.max_active_tasks == 1  # DuckDB: one writer at a time
    check = dag.get_task("check_typed_views")  # the typed views are the plan's, or an alert (adr/0029)
    assert check.upstream_task_ids and "publish" not in check.downstream_task_ids


def test_plan_deploy_runs_on_the_plan_asset(dagbag):
    dag = dagbag.get_dag("plan_deploy")
    assert [asset.uri for asset in dag.timetable.asset_condition.objects] == ["trackway://plan/tracking_plan"]
    assert [t.task_id for t in dag.tasks] == ["deploy_typed_views"]


def test_a_large_plan_adds_no_task_to_the_hourly_transform(dagbag, tmp_path, monkeypatch):
    """600 planned events: the manifest compiled without a plan is still current, and the DAG is the same.

    Before adr/0029 each planned event was a dbt model, so a Cosmos task: 621 tasks with this plan, 18 without.
    """
    from airflow.dag_processing.dagbag import DagBag

    from large_plan import write_segment_export
    from trackway.config import load_settings
    from trackway.plan.importers import import_plan
    from trackway.transform.manifest import check_manifest

    import_plan("segment", write_segment_export(tmp_path / "export.json"), tmp_path / "plan")
    saved = dict(os.environ)
    try:
        monkeypatch.setenv("TRACKWAY_HOME", dagbag.trackway_home)
        monkeypatch.setenv("TRACKWAY_PLAN_DIR", str(tmp_path / "plan"))
        assert check_manifest(load_settings()).current
        with_plan = DagBag(dag_folder=str(REPO_ROOT / "dags" / "events_transform.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert with_plan.import_errors == {}
    before = {t.task_id for t in dagbag.dags["events_transform"].tasks}
    assert {t.task_id for t in with_plan.dags["events_transform"].tasks} == before
    assert len(before) < 40  # the models and singular tests, the plan check and analytics_x: none per planned event


def test_hourly_dbt_tasks_test_new_rows_and_the_daily_audit_all_history(dagbag):
    """adr/0034: the hourly build tests what each run wrote; events_audit runs every data test over all history."""
    transform = dagbag.get_dag("events_transform")
    dbt_tasks = [t for t in transform.tasks if t.task_id.startswith("dbt.")]
    assert dbt_tasks and all(t.vars == {"test_scope": "new_rows"} for t in dbt_tasks)
    audit = dagbag.get_dag("events_audit")
    assert type(audit.timetable).__name__ == "CronTriggerTimetable" and audit.timetable.expression == "40 3 * * *"
    [task] = audit.tasks
    assert type(task).__name__ == "DbtTestLocalOperator" and task.vars == {"test_scope": "all"}
    assert not task.install_deps and task.env == {
        "DBT_EXCLUDE_RESOURCE_TYPES": "unit_test",
        "DBT_LOG_LEVEL_FILE": "none",
    }


def test_privacy_runs_daily_and_alerts_whatever_the_run_did(dagbag):
    dag = dagbag.get_dag("privacy")
    assert [t.task_id for t in dag.tasks] == ["run_requests", "alert_due_requests"]
    alert = dag.get_task("alert_due_requests")
    assert alert.upstream_task_ids == {"run_requests"} and alert.trigger_rule == "all_done" and alert.retries == 0
    assert type(dag.timetable).__name__ == "CronTriggerTimetable" and dag.max_active_runs == 1
    assert type(dag.default_args["on_failure_callback"]).__name__ == "TrackwayAlertNotifier"


def test_dbt_tasks_emit_lineage_but_no_asset_per_model(dagbag):
    """Lineage per model goes to OpenLineage; Airflow gets one asset, analytics.events, from `publish`.

    Cosmos's RenderConfig(emit_datasets=True), its default, overrode operator_args' False: each dbt task
    registered an asset per model (56 URI-migration warnings and 30 "inactive AssetModel" ones in the demo).
    """
    dag = dagbag.get_dag("events_transform")
    dbt_tasks = [t for t in dag.tasks if t.task_id.startswith("dbt.")]
    assert dbt_tasks and all(t.emit_datasets is False for t in dbt_tasks)
    assert all(callable(getattr(t, "get_openlineage_facets_on_complete", None)) for t in dbt_tasks)


def test_dag_files_stay_thin():
    """DAG files wire tasks; SQL and logic live in the trackway package."""
    for path in (REPO_ROOT / "dags").glob("*.py"):
        text = path.read_text().upper()
        for keyword in ("SELECT ", "INSERT ", "CREATE TABLE", "DELETE FROM"):
            assert keyword not in text, f"{path.name} holds SQL ({keyword.strip()})"


@pytest.fixture(scope="module", params=["micro_batch", "hourly"])
def mode_dags(request, airflow_db, compiled_home):
    """events_microbatch and events_transform parsed in one mode (TRACKWAY_PIPELINE_MODE; only these two files)."""
    from airflow.dag_processing.dagbag import DagBag

    with _home(compiled_home, request.param):
        dags = {}
        for name in ("events_microbatch", "events_transform"):
            bag = DagBag(dag_folder=str(REPO_ROOT / "dags" / f"{name}.py"))
            assert bag.import_errors == {}
            dags[name] = bag.get_dag(name)
    return request.param, dags


def test_micro_batch_dags_are_wired_watcher_load_transform(mode_dags):
    from airflow.triggers.base import BaseEventTrigger

    mode, dags = mode_dags
    load, transform = dags["events_microbatch"], dags["events_transform"]
    assert [t.task_id for t in load.tasks] == ["load_new_objects"]
    assert [a.uri for a in load.get_task("load_new_objects").outlets] == ["trackway://warehouse/raw/events_raw"]
    assert load.max_active_runs == transform.max_active_runs == 1  # one at a time; the next coalesces the rest
    if mode == "hourly":
        assert type(load.timetable).__name__ == "NullTimetable"  # no micro-batches
        assert "choose" not in transform.task_ids and "fresh_models" not in transform.task_ids
        return
    [asset] = load.timetable.asset_condition.objects
    assert asset.uri == "trackway://raw/objects"
    [watcher] = asset.watchers
    assert isinstance(watcher.trigger, BaseEventTrigger)
    assert type(watcher.trigger).__name__ == "NewRawObjectsTrigger"
    choose = transform.get_task("choose")
    roots = {t.task_id for t in transform.task_group_dict["dbt"].roots}
    assert choose.downstream_task_ids == {"fresh_models", *roots}  # "dbt" follows the group's roots
    leaves = {t.task_id for t in transform.task_group_dict["dbt"].leaves}
    assert transform.get_task("publish").upstream_task_ids == {"fresh_models", *leaves}
    assert transform.get_task("publish").trigger_rule == "none_failed_min_one_success"
    assert [a.uri for a in transform.timetable.asset_condition.objects] == ["trackway://warehouse/raw/events_raw"]


@pytest.mark.parametrize("mode", ["hourly", "micro_batch"])
def test_in_watcher_mode_one_build_runs_first_and_each_model_keeps_its_tasks(airflow_db, compiled_home, mode):
    """TRACKWAY_DBT_EXECUTION=watcher (adr/0040): one dbt build, then a run and a tests task per model after it."""
    from airflow.dag_processing.dagbag import DagBag

    with _home(compiled_home, mode, "watcher"):
        bag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "events_transform.py"))
    assert bag.import_errors == {}
    dag = bag.get_dag("events_transform")
    group = dag.task_group_dict["dbt"]
    producer = dag.get_task("dbt.dbt_producer_watcher")
    assert [t.task_id for t in group.roots] == [producer.task_id]  # micro-batch's branch picks the build
    assert producer.retries == 0 and producer.vars == {"test_scope": "new_rows"}
    # Not unit tests, the on-run-end hook's task or the plan's views (built by the DAG's own task).
    assert set(producer.exclude.split()) == {"resource_type:unit_test", "resource_type:operation", "path:models/plan"}
    models = ["stg_events", "events", "sessions", "identity_map", "daily_active_users", "stickiness"]
    for model in models:
        run, tests = dag.get_task(f"dbt.{model}.run"), dag.get_task(f"dbt.{model}.test")
        assert type(run).__name__ == "DbtRunWatcherOperator" and type(tests).__name__ == "DbtTestWatcherOperator"
        assert run.task_id in tests.upstream_task_ids and run.producer_task_id == producer.task_id
    assert "dbt.events.test" in dag.get_task("dbt.sessions.run").upstream_task_ids
    first = [t for t in group.iter_tasks() if t.upstream_task_ids == {producer.task_id}]
    assert {t.task_id for t in first} >= {"dbt.raw_events_raw.source", "dbt.dbt_producer_watcher_done"}
    assert all(t.trigger_rule == "one_done" for t in first if t.task_id != "dbt.dbt_producer_watcher_done")
    assert not any("build" in t.task_id for t in group.iter_tasks())
