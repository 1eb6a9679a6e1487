"""events_reprocess, and retries that match the error, run for real with dag.test() on DuckDB.

A busy warehouse (another process holds DuckDB's write lock) is retried; a schema error
(analytics.events no longer matches its model, dbt's on_schema_change: fail) fails at
once, with its runbook section in the alert, and the runbook's own commands fix it.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dbt_parse_reuse import module_home
from raw_files import event, hour_dir, write_gz_lines
from runbook_helpers import run_block, runbook_blocks
from trackway.config import load_settings
from trackway.load.loader import load_interval
from trackway.warehouse import open_warehouse

REPO_ROOT = Path(__file__).resolve().parents[1]


def _dag(name: str):
    spec = importlib.util.spec_from_file_location(
        f"dag_{name}_{uuid.uuid4().hex[:6]}", REPO_ROOT / "dags" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)()


def _write_hour(raw: Path, hour: datetime, n: int, name: str = "Listing Viewed") -> None:
    lines = [
        event(uuid.uuid4().hex, event=name, receivedAt=f"{hour + timedelta(seconds=10 + i):%Y-%m-%dT%H:%M:%S}.000Z")
        for i in range(n)
    ]
    write_gz_lines(hour_dir(raw, f"{hour:%Y-%m-%d}", hour.hour) / f"{uuid.uuid4().hex}.ndjson.gz", lines)


def _alerts(home: Path) -> list[dict]:
    path = home / "alerts.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _count(sql: str) -> int:
    with open_warehouse(load_settings().warehouse, read_only=True) as wh:
        return wh.query(sql)[0][0]


def _tries(run, task_id: str) -> tuple[str, int]:
    [ti] = [ti for ti in run.get_task_instances() if ti.task_id == task_id]
    return ti.state, ti.try_number


HOURS_AGO_OLD, HOURS_AGO_NEW = 10, 2


@pytest.fixture(scope="module")
def built_template(request, tmp_path_factory):
    """Two hours loaded and built once per module; the older hour's raw rows were loaded 10 hours ago (outside the
    transform's lookback). Each test works on a copy (``built``)."""
    home = module_home(request, tmp_path_factory.mktemp("reprocess") / "trackway")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    old, new = now - timedelta(hours=HOURS_AGO_OLD), now - timedelta(hours=HOURS_AGO_NEW)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRACKWAY_HOME", str(home))
        for var in ("TRACKWAY_RAW_URL", "TRACKWAY_WAREHOUSE_URL", "TRACKWAY_READ_WAREHOUSE_URL", "TRACKWAY_PLAN_DIR"):
            mp.delenv(var, raising=False)
        settings = load_settings()
        for hour, n in ((old, 20), (new, 10)):
            _write_hour(home / "raw", hour, n)
            load_interval(settings, hour, hour + timedelta(hours=1))
        with open_warehouse(settings.warehouse) as wh:
            wh.con.execute(
                "UPDATE raw.events_raw SET loaded_at = loaded_at - INTERVAL 10 HOUR WHERE received_at < ?",
                [f"{new:%Y-%m-%dT%H}"],
            )
        run_block("trackway transform build")  # dbt in a process of its own, as the scheduler's tasks run it
    return home, {"old": old, "new": new}


@pytest.fixture
def built(built_template, trackway_env, airflow_db, monkeypatch):
    template, hours = built_template
    # The template's dbt parse names its own DuckDB file: the one trackway_env brought (the worker's) is kept.
    shutil.copytree(template, trackway_env, dirs_exist_ok=True, ignore=shutil.ignore_patterns("partial_parse.msgpack"))
    monkeypatch.setenv("TRACKWAY_TASK_RETRIES", "2")  # a failure that is retried shows as try 3, not 1
    monkeypatch.setenv("TRACKWAY_TASK_RETRY_DELAY_SECONDS", "0")
    assert _count("SELECT count(*) FROM analytics.events") == 30
    return hours


def test_reprocess_a_window_reads_its_old_raw_rows_again(built, trackway_env):
    """Events of an hour lost from analytics.events come back from raw: the window widens the lookback."""
    old = built["old"]
    with open_warehouse(load_settings().warehouse) as wh:  # a bad hand-made "fix" deleted the older hour's events
        wh.con.execute("DELETE FROM analytics.events WHERE received_at < ?", [built["new"]])
    assert _count("SELECT count(*) FROM analytics.events") == 10

    run = _dag("events_reprocess").test(
        run_conf={
            "select": "+events events_rejected",
            "from_hour": f"{old:%Y-%m-%dT%H}",
            "to_hour": f"{old:%Y-%m-%dT%H}",
        }
    )
    assert run.state == "success", _alerts(trackway_env)
    assert _count("SELECT count(*) FROM analytics.events") == 30
    [ti] = run.get_task_instances()
    report = ti.xcom_pull(task_ids="reprocess")
    assert report["lookback_minutes"] >= HOURS_AGO_OLD * 60 - 60  # reached back to the old hour's load
    assert report["before"]["raw_rows"] == 20 and report["before"]["events"] == 0
    assert report["after"]["events"] == 20
    assert "--vars" in report["dbt_args"] and report["dbt"]["success"]


def test_a_full_refresh_is_refused_without_its_confirmation(built, trackway_env):
    run = _dag("events_reprocess").test(run_conf={"select": "events", "full_refresh": True})
    assert run.state == "failed"
    assert _tries(run, "reprocess") == ("failed", 1)  # refused at once, its retries untouched
    [alert] = _alerts(trackway_env)
    assert "confirm_full_refresh" in alert["error"] and "'FULL REFRESH'" in alert["error"]
    assert alert["runbook"].endswith("#reprocess-refused") and "at once" in alert["text"]
    assert _count("SELECT count(*) FROM analytics.events") == 30  # nothing was changed

    confirmed = _dag("events_reprocess").test(
        run_conf={"select": "events", "full_refresh": True, "confirm_full_refresh": "FULL REFRESH"}
    )
    assert confirmed.state == "success", _alerts(trackway_env)[-1]
    [ti] = confirmed.get_task_instances()
    assert "--full-refresh" in ti.xcom_pull(task_ids="reprocess")["dbt_args"]
    assert _count("SELECT count(*) FROM analytics.events") == 30


def test_a_schema_error_fails_at_once_and_the_runbook_fixes_it(built, trackway_env):
    """analytics.events gained a column by hand: dbt's on_schema_change: fail; retrying cannot help."""
    with open_warehouse(load_settings().warehouse) as wh:
        wh.con.execute("ALTER TABLE analytics.events ADD COLUMN added_by_hand VARCHAR")
    new = built["new"]
    run = _dag("events_reprocess").test(
        run_conf={"select": "+events", "from_hour": f"{new:%Y-%m-%dT%H}", "to_hour": f"{new:%Y-%m-%dT%H}"}
    )
    assert run.state == "failed"
    assert _tries(run, "reprocess") == ("failed", 1)  # TRACKWAY_TASK_RETRIES=2, none used
    [alert] = _alerts(trackway_env)
    assert alert["failure"] == "schema" and alert["runbook"].endswith("docs/runbook.md#schema-changed")
    assert "out of sync" in alert["error"] and "at once" in alert["text"]

    triage, fix, verify = runbook_blocks("Schema changed")
    assert "added_by_hand" in run_block(triage, MODEL="events").stdout
    run_block(fix, MODEL="events")
    run_block(verify, MODEL="events")
    assert _count("SELECT count(*) FROM analytics.events") == 30


def test_in_watcher_mode_a_failed_model_fails_its_own_task_and_its_retry_builds_it_alone(
    built, trackway_env, monkeypatch
):
    """TRACKWAY_DBT_EXECUTION=watcher (adr/0040, BigQuery's default): one dbt build for the whole run.

    analytics.events no longer matches its model: the build fails, but each model's tasks still report their
    own result. events' run task failed and was retried (the build's "status 'error'" says not why); the retry
    built events alone, which failed with the schema error itself: the alert names its runbook section.
    """
    from trackway.transform.manifest import compile_manifest

    monkeypatch.setenv("TRACKWAY_DBT_EXECUTION", "watcher")
    compile_manifest(load_settings())  # `trackway transform compile`, which the DAG only reads
    with open_warehouse(load_settings().warehouse) as wh:
        wh.con.execute("ALTER TABLE analytics.events ADD COLUMN added_by_hand VARCHAR")
    run = _dag("events_transform").test()
    assert run.state == "failed"
    assert _tries(run, "dbt.dbt_producer_watcher") == ("failed", 1)  # never retried: the model tasks are
    assert _tries(run, "dbt.events.run") == ("failed", 2)
    assert _tries(run, "dbt.events_rejected.run")[0] == _tries(run, "dbt.int_events_new.test")[0] == "success"
    assert _tries(run, "dbt.sessions.run")[0] == "upstream_failed"  # downstream of the failed model
    assert _tries(run, "publish")[0] == "upstream_failed"
    alerts = [a for a in _alerts(trackway_env) if a.get("task_id") == "dbt.events.run"]
    assert alerts and alerts[-1]["failure"] == "schema", _alerts(trackway_env)
    assert alerts[-1]["runbook"].endswith("docs/runbook.md#schema-changed")


def test_a_busy_warehouse_is_retried(trackway_env, airflow_db, monkeypatch):
    """Another process holds DuckDB's write lock: the load fails as busy, is retried, and loads once it is free."""
    monkeypatch.setenv("TRACKWAY_TASK_RETRIES", "2")
    monkeypatch.setenv("TRACKWAY_TASK_RETRY_DELAY_SECONDS", "0")
    monkeypatch.setenv("TRACKWAY_DUCKDB_LOCK_WAIT_SECONDS", "1")
    _write_hour(trackway_env / "raw", datetime(2026, 11, 22, 10, tzinfo=UTC), 5)
    path = load_settings().warehouse.duckdb_path
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        dag = _dag("events_load")
        # Observe the retry, not cause it: the first failure releases the lock, as the other writer finishing would.
        dag.get_task("load_raw_objects").on_retry_callback = [lambda context: holder.communicate("", timeout=60)]
        run = dag.test(logical_date=datetime(2026, 11, 22, 11, tzinfo=UTC))
    finally:
        if holder.poll() is None:
            holder.kill()
    assert _tries(run, "load_raw_objects") == ("success", 2)
    assert run.state == "success" and _alerts(trackway_env) == []
    # The retry was the policy's decision, for the reason it gives (kept on the first try's history row).
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        reasons = session.scalars(
            select(TaskInstanceHistory.retry_reason).where(
                TaskInstanceHistory.run_id == run.run_id, TaskInstanceHistory.task_id == "load_raw_objects"
            )
        ).all()
    assert any("the warehouse was busy: retried" in (r or "") for r in reasons), reasons
    assert _count("SELECT count(*) FROM raw.events_raw") == 5


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"select": "events --full-refresh", "from_hour": "2026-12-01T00"}, "not a dbt node selection"),
        ({"select": "events;rm -rf /", "from_hour": "2026-12-01T00"}, "not a dbt node selection"),
        ({"select": "tag:a,events", "from_hour": "2026-12-01T00"}, "intersections"),
        ({"select": "events"}, "from_hour is required"),
        ({"from_hour": "yesterday"}, "is not an hour"),
        ({"from_hour": "2026-12-01T10", "to_hour": "2026-12-01T09"}, "is before from_hour"),
        ({"from_hour": "2027-01-01T00"}, "in the future"),
        ({"full_refresh": True, "confirm_full_refresh": "full refresh"}, "'FULL REFRESH'"),
        ({"full_refresh": True, "confirm_full_refresh": "FULL REFRESH", "from_hour": "2026-12-01T00"}, "not a window"),
    ],
)
def test_reprocess_params_are_refused_with_what_to_change(params, says):
    from trackway.transform.reprocess import ReprocessRefused, parse_request

    with pytest.raises(ReprocessRefused, match=re.escape(says)):
        parse_request(**params, now=datetime(2026, 12, 2, 12, tzinfo=UTC))


def test_reprocess_builds_each_selected_model_with_what_it_reads():
    from trackway.transform.reprocess import parse_request

    window = parse_request(
        select="events  sessions+ +users 2+identity_map", from_hour="2026-12-01T06", to_hour="2026-12-01 08:30"
    )
    assert window.selection == "+events +sessions+ +users 2+identity_map"
    assert (window.start, window.end) == (datetime(2026, 12, 1, 6, tzinfo=UTC), datetime(2026, 12, 1, 9, tzinfo=UTC))
    assert window.dbt_args(600) == ["--select", window.selection, "--vars", '{"raw_lookback_minutes": 600}']
    assert window.dbt_args(None) == ["--select", window.selection]
    whole = parse_request(full_refresh=True, confirm_full_refresh=" FULL REFRESH ")
    assert whole.dbt_args(None) == ["--full-refresh"] and whole.start is None


def _errors() -> list[tuple[BaseException, str, bool | None]]:
    import psycopg
    from cosmos.exceptions import CosmosDbtRunError

    from trackway.config.errors import ConfigError
    from trackway.plan.model import PlanError
    from trackway.rawdata.lines import ObjectReadError
    from trackway.transform.dbt_runner import DbtBuildError
    from trackway.warehouse import WarehouseBusy

    return [
        (WarehouseBusy("warehouse x is busy"), "lock", True),
        (ObjectReadError("reading x failed: ConnectionResetError"), "transport", True),
        (ConnectionResetError(104, "Connection reset by peer"), "transport", True),
        (psycopg.OperationalError("connection refused"), "transport", True),
        (ConfigError("TRACKWAY_X is not a number"), "config", False),
        (PlanError("plan.yaml: unknown key"), "config", False),
        (
            DbtBuildError(
                "dbt build failed:\n  model events: error: The source and target schemas on this "
                "incremental model are out of sync!"
            ),
            "schema",
            False,
        ),
        (
            CosmosDbtRunError("dbt invocation completed with errors: t: Got 3 results, configured to fail if != 0"),
            "test",
            False,
        ),
        (
            CosmosDbtRunError("dbt invocation completed with errors: events: IO Error: Could not set lock on file"),
            "lock",
            True,
        ),
        (
            DbtBuildError("dbt build failed:\n  dbt raised CompilationError: Compilation Error in model x"),
            "model",
            False,
        ),
        (DbtBuildError("dbt build failed:\n  model events: error: Binder Error: no such column"), "unknown", None),
        (ValueError("something else"), "unknown", None),
    ]


def test_errors_are_classified_by_whether_a_retry_can_fix_them():
    from trackway.orchestration.retries import classify

    for error, kind, retry in _errors():
        failure = classify(error)
        assert (failure.kind, failure.retry) == (kind, retry), error
