"""The production shape as real processes: `trackway up` with PostgreSQL under Airflow, LocalExecutor and Celery.

Everything is real and runs on loopback: `trackway up` starts the collector and
Airflow's API server, scheduler, DAG processor and triggerer (and a Celery worker
on Redis from Debian's redis-server) with Airflow's metadata database and the
warehouse on the test PostgreSQL. Events go to the collector over HTTP; the
scheduler runs an hour of events_load (triggered through the REST API, so the test
does not wait for the clock) and events_transform on its asset; the events are
then read from analytics.events. `trackway backfill` then creates and completes an
Airflow backfill of an hour the scheduler never ran, through the same API.

Bounded: every wait has a deadline, and the stack is stopped (and checked to be
gone) whatever happens. `make test-stack` runs this file (CI runs it after `make test`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from collector_helpers import local_store, wait_for_events
from postgres_server import create_database
from raw_files import event, hour_dir, write_gz_lines
from test_lineage import lineage_events
from trackway.orchestration.airflow_api import AirflowApi, AirflowUnavailable
from trackway.ports import free_ports
from trackway.rawdata.partitions import hour_floor
from trackway.stack.up import collector_healthy

pytestmark = [pytest.mark.stack, pytest.mark.postgres, pytest.mark.slow]
REPO_ROOT = Path(__file__).resolve().parents[1]
TRACKWAY = str(Path(sys.executable).parent / "trackway")
READY_SECONDS = 300  # all deadlines are generous: only waited out when something is broken
RUN_SECONDS = 900  # a whole events_transform run took 4 minutes on two cores shared with another test suite


@pytest.fixture(scope="module")
def redis_url():
    from redis_server import redis_server

    with redis_server() as url:
        yield url


class Stack:
    """A `trackway up` process of its own home, ports and databases."""

    def __init__(self, home: Path, env: dict[str, str]):
        self.home, self.env = home, env
        self.output = home.parent / "up.out"
        self.proc: subprocess.Popen | None = None
        self.collector_url = f"http://127.0.0.1:{env['TRACKWAY_COLLECTOR_PORT']}"
        self.airflow_url = f"http://127.0.0.1:{env['TRACKWAY_AIRFLOW_PORT']}"

    def start(self) -> Stack:
        self.home.mkdir(parents=True)
        with open(self.output, "wb") as out:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([TRACKWAY, "up"], env=self.env, stdout=out, stderr=subprocess.STDOUT)
        return self

    def log(self, lines: int = 60) -> str:
        return "\n".join(self.output.read_text(errors="replace").splitlines()[-lines:])

    def wait(self, what: str, predicate, deadline: float = RUN_SECONDS, interval: float = 2.0):
        end = time.monotonic() + deadline
        while True:
            try:
                value = predicate()
            except AirflowUnavailable:  # an API server slow to answer on two busy cores: ask again
                value = None
            if value:
                return value
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"trackway up exited ({self.proc.returncode}) waiting for {what}:\n{self.log()}")
            if time.monotonic() > end:
                raise AssertionError(f"timed out after {deadline:.0f}s waiting for {what}:\n{self.log()}")
            time.sleep(interval)

    def api(self) -> AirflowApi:
        from pydantic import SecretStr

        passwords = json.loads((self.home / "airflow" / "simple_auth_manager_passwords.json.generated").read_text())
        return AirflowApi(self.airflow_url, "admin", SecretStr(passwords["admin"]))

    def trackway(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [TRACKWAY, *args], env={**self.env, **env}, capture_output=True, text=True, timeout=RUN_SECONDS
        )

    def stop(self) -> int:
        """SIGTERM, as `trackway down` and Ctrl-C do; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=150)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def _stack_env(home: Path, postgres_url: str, executor: str, redis_url: str | None) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    airflow_db = create_database(postgres_url, f"stack_airflow_{tag}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TRACKWAY_"))}
    collector, admin, airflow = free_ports(3)  # all three ports its own: stacks side by side
    env.update(
        {
            "TRACKWAY_HOME": str(home),
            "TRACKWAY_COLLECTOR_PORT": str(collector),
            "TRACKWAY_COLLECTOR_ADMIN_PORT": str(admin),
            "TRACKWAY_AIRFLOW_PORT": str(airflow),
            "TRACKWAY_COLLECTOR_WORKERS": "1",
            "TRACKWAY_SPOOL_MAX_AGE_SECONDS": "1",
            "TRACKWAY_TASK_RETRIES": "0",  # a failure shows at once
            "TRACKWAY_PIPELINE_MODE": "hourly",  # the production default (micro-batches: the test below)
            "TRACKWAY_WAREHOUSE_URL": create_database(postgres_url, f"stack_wh_{tag}"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db.replace("postgresql://", "postgresql+psycopg2://", 1),
            "AIRFLOW__CORE__EXECUTOR": executor,
        }
    )
    if executor == "CeleryExecutor":
        env.update(
            {
                "AIRFLOW__CELERY__BROKER_URL": redis_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            }
        )
    return env


def _send(stack: Stack, ids: list[str]) -> None:
    batch = {
        "batch": [
            {"type": "track", "event": "Stack Tested", "userId": f"u-{i}", "messageId": m} for i, m in enumerate(ids)
        ]
    }
    auth = "Basic " + base64.b64encode(b"trackway-demo-key:").decode()  # the demo key: the collector is on loopback
    answer = requests.post(f"{stack.collector_url}/v1/batch", json=batch, headers={"Authorization": auth}, timeout=30)
    assert answer.status_code == 200, answer.text


def _query(stack: Stack, sql: str) -> list:
    import psycopg

    with psycopg.connect(stack.env["TRACKWAY_WAREHOUSE_URL"]) as conn:
        try:
            return conn.execute(sql).fetchall()
        except psycopg.errors.UndefinedTable:
            return []


def _run_state(api: AirflowApi, dag_id: str, run_id: str) -> str | None:
    state = api.get(f"dags/{dag_id}/dagRuns/{run_id}")["state"]
    assert state != "failed", f"{dag_id} {run_id} failed"
    return state if state == "success" else None


@pytest.mark.parametrize("executor", ["LocalExecutor", "CeleryExecutor"])
def test_the_stack_runs_the_pipeline_and_backfills_through_airflow(executor, tmp_path, postgres_url, request):
    started, timings = time.monotonic(), {}
    redis_url = request.getfixturevalue("redis_url") if executor == "CeleryExecutor" else None
    stack = Stack(tmp_path / "home", _stack_env(tmp_path / "home", postgres_url, executor, redis_url)).start()
    try:
        # Events over HTTP as soon as the collector answers (the scheduler is still starting: its first run
        # usually sweeps them in, so the transform it triggers already has them and the test waits for one).
        stack.wait("the collector", lambda: collector_healthy(stack.collector_url), READY_SECONDS)
        hour = hour_floor(datetime.now(UTC))
        ids = [f"stack-{uuid.uuid4().hex[:12]}" for _ in range(20)]
        _send(stack, ids)
        wait_for_events(local_store(stack.home), ids, deadline=60)
        last_hour = hour_floor(datetime.now(UTC))

        stack.wait("the stack to be ready", lambda: "Trackway is up in" in stack.output.read_text(), READY_SECONDS)
        timings["ready"] = time.monotonic() - started
        banner = stack.output.read_text()
        assert f"Collector   {stack.collector_url}" in banner and "write key trackway-demo-key" in banner
        assert re.search(rf"Airflow     {re.escape(stack.airflow_url)}   login admin / \S+", banner)
        assert f"Metrics     http://127.0.0.1:{stack.env['TRACKWAY_COLLECTOR_ADMIN_PORT']}/metrics" in banner
        # One stack per home: a second `trackway up` there refuses, and starts nothing.
        second = stack.trackway("up")
        assert second.returncode == 1 and "already running for TRACKWAY_HOME" in second.stderr, second

        # The scheduler's own first run (the last complete hour: catchup is off) comes right after the start.
        api = stack.api()

        def scheduled_load():
            runs = api.get("dags/events_load/dagRuns?run_type=scheduled")["dag_runs"]
            assert all(r["state"] != "failed" for r in runs), runs
            return any(r["state"] == "success" for r in runs)

        stack.wait("the first scheduled events_load", scheduled_load)
        timings["first scheduled load"] = time.monotonic() - started

        # The hour the events were received, as a run the scheduler executes (triggered: no waiting for 13:00).
        run_id = f"stack_test_{uuid.uuid4().hex[:8]}"
        api.post(
            "dags/events_load/dagRuns",
            {
                "dag_run_id": run_id,
                "logical_date": datetime.now(UTC).isoformat(),  # unique; the interval is the hour received
                "data_interval_start": hour.isoformat(),
                "data_interval_end": (last_hour + timedelta(hours=1)).isoformat(),
            },
        )
        stack.wait("events_load to succeed", lambda: _run_state(api, "events_load", run_id))
        timings["hour loaded"] = time.monotonic() - started
        # The transform runs on the asset event of the load that wrote the rows (whichever run swept them in).
        [(loaded_at,)] = _query(stack, "SELECT min(finished_at) FROM raw.load_runs WHERE rows_loaded > 0")
        loaded_at = loaded_at if loaded_at.tzinfo else loaded_at.replace(tzinfo=UTC)

        def transformed() -> bool:
            runs = api.get("dags/events_transform/dagRuns?order_by=-run_after&limit=10")["dag_runs"]
            after = [r for r in runs if datetime.fromisoformat(r["run_after"]) >= loaded_at]
            assert not [r for r in after if r["state"] == "failed"], f"events_transform failed: {after}"
            query = "SELECT count(*) FROM analytics.events WHERE event_name = 'Stack Tested'"
            return any(r["state"] == "success" for r in after) and _query(stack, query) == [(len(ids),)]

        stack.wait("events_transform to build analytics.events", transformed)
        timings["transformed"] = time.monotonic() - started
        found = {r[0] for r in _query(stack, "SELECT event_id FROM analytics.events WHERE event_name = 'Stack Tested'")}
        assert found == set(ids)

        # Lineage: each load says how many rows it wrote (our run wrote them, unless an hourly run that started
        # meanwhile swept them in first), and the load's output is the dbt staging model's input, under one name.
        lineage = stack.home / "lineage" / "openlineage.ndjson"
        [load] = lineage_events(lineage, "events_load.load_raw_objects", run_id)
        raw_table = load["outputs"][0]
        assert raw_table["name"].endswith(".raw.events_raw") and raw_table["namespace"].startswith("postgres://")
        loads = [
            json.loads(line) for line in lineage.read_text().splitlines() if '"events_load.load_raw_objects"' in line
        ]
        written = [
            d["outputFacets"]["outputStatistics"]["rowCount"]
            for ol in loads
            if ol["eventType"] == "COMPLETE"
            for d in ol["outputs"]
            if d["name"] == raw_table["name"]
        ]
        assert sum(written) == len(ids), written
        staging = [
            json.loads(line)
            for line in lineage.read_text().splitlines()
            if '"events_transform.dbt.stg_events_model_build"' in line and '"COMPLETE"' in line
        ]
        assert any(
            (d["namespace"], d["name"]) == (raw_table["namespace"], raw_table["name"])
            for ol in staging
            for d in ol["inputs"]
        ), staging

        # trackway backfill through Airflow: an hour the scheduler never ran (objects written late, as after an
        # outage), then the current hour, which Airflow refuses (not over yet): nothing is loaded behind it.
        late = hour - timedelta(hours=2)
        late_ids = [f"late-{uuid.uuid4().hex[:12]}" for _ in range(3)]
        folder = hour_dir(stack.home / "raw", f"{late:%Y-%m-%d}", late.hour)
        write_gz_lines(folder / "late.ndjson.gz", [event(m, receivedAt=f"{late:%Y-%m-%dT%H}:30:00Z") for m in late_ids])
        current = (
            f"{hour_floor(datetime.now(UTC)):%Y-%m-%dT%H}"  # now, not when the events came: an hour may have passed
        )
        refused = stack.trackway("backfill", "--from", current, "--to", current)
        assert refused.returncode == 1 and "Airflow refused the backfill" in refused.stderr, refused
        assert "No runs to create" in refused.stderr
        # Local: found through the running stack of this home; Celery: named by the settings.
        settings = {}
        if executor == "CeleryExecutor":
            settings = {
                "TRACKWAY_AIRFLOW_API_URL": stack.airflow_url,
                "TRACKWAY_AIRFLOW_USERNAME": "admin",
                "TRACKWAY_AIRFLOW_PASSWORD": api.password.get_secret_value(),
            }
        backfill = stack.trackway(
            "backfill", "--from", f"{late:%Y-%m-%dT%H}", "--to", f"{late:%Y-%m-%dT%H}", **settings
        )
        assert backfill.returncode == 0, backfill
        created = re.search(r"Airflow backfill (\d+) created for events_load", backfill.stdout)
        assert created, backfill.stdout
        backfill_id = created.group(1)
        stack.wait("the backfill to complete", lambda: api.get(f"backfills/{backfill_id}")["completed_at"] is not None)
        timings["backfilled"] = time.monotonic() - started
        runs = api.get("dags/events_load/dagRuns?run_type=backfill")["dag_runs"]
        assert [(r["logical_date"][:13], r["state"]) for r in runs] == [(f"{late:%Y-%m-%dT%H}", "success")]
        loaded = _query(stack, "SELECT message_id FROM raw.events_raw WHERE message_id LIKE 'late-%'")
        assert {r[0] for r in loaded} == set(late_ids)
    finally:
        code = stack.stop()
        timings["total"] = time.monotonic() - started
        print(f"{executor}: {', '.join(f'{k} {v:.0f}s' for k, v in timings.items())}")
    assert code == 0, stack.log()
    out = stack.output.read_text()
    for name in ("collector", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert re.search(rf"supervisor\s+\| {name} stopped \(exit code", out), name
    if executor == "CeleryExecutor":
        assert re.search(r"supervisor\s+\| airflow-worker stopped", out)
    assert not (stack.home / "stack" / "up.pid").exists()


def test_make_up_runs_micro_batches_events_are_queryable_without_waiting_for_the_hour(tmp_path):
    """`trackway up` as `make up` runs it (DuckDB, SQLite, LocalExecutor): micro-batch mode is its default.

    Once the scheduler's first hourly load and full transform are done, events sent
    now reach analytics.events through the watcher, events_microbatch and a fresh
    events_transform run, read with `trackway query` (which waits its turn on DuckDB)
    while the hour is still running; events_load gets no new run for them.
    """
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TRACKWAY_"))}
    collector, airflow = free_ports(2)
    env.update(
        {
            "TRACKWAY_HOME": str(home),
            "TRACKWAY_COLLECTOR_PORT": str(collector),
            "TRACKWAY_AIRFLOW_PORT": str(airflow),
            "TRACKWAY_COLLECTOR_WORKERS": "1",
            "TRACKWAY_TASK_RETRIES": "0",  # a failure shows at once
        }
    )
    stack = Stack(home, env).start()
    started, timings = time.monotonic(), {}
    try:
        stack.wait("the stack to be ready", lambda: "Trackway is up in" in stack.output.read_text(), READY_SECONDS)
        assert "Pipeline    micro-batches" in stack.output.read_text()
        api = stack.api()

        def settled() -> bool:
            # (On a fresh home the first run's freshness check fails: raw.events_raw is still empty.)
            runs = api.get("dags/events_transform/dagRuns?limit=50")["dag_runs"]
            return bool(runs) and all(r["state"] in ("success", "failed") for r in runs)

        stack.wait("the first full transform", settled)
        timings["settled"] = time.monotonic() - started
        hourly_before = api.get("dags/events_load/dagRuns")["total_entries"]
        hour = hour_floor(datetime.now(UTC))
        ids = [f"micro-{uuid.uuid4().hex[:12]}" for _ in range(20)]
        _send(stack, ids)
        query = f"SELECT count(*) AS n FROM analytics.events WHERE event_id IN ({', '.join(repr(i) for i in ids)})"

        def visible() -> bool:
            result = stack.trackway("query", "--json", query)
            assert "busy" not in result.stderr, result.stderr  # readers wait their turn, never a lock error
            if result.returncode != 0 and "does not exist" in result.stderr:
                return False  # the first fresh run has not built analytics.events yet (fresh home)
            assert result.returncode == 0, result.stderr
            return json.loads(result.stdout)["rows"] == [[len(ids)]]

        stack.wait("the events in analytics.events", visible)
        timings["visible"] = time.monotonic() - started
        if hour_floor(datetime.now(UTC)) == hour:  # (an hour boundary in between would start an hourly run)
            assert api.get("dags/events_load/dagRuns")["total_entries"] == hourly_before
        micro = api.get("dags/events_microbatch/dagRuns?state=success")["dag_runs"]
        assert micro, "no events_microbatch run succeeded"

        def fresh_run_succeeded() -> bool:
            """The run that built them ends with publish (it may still be running when the rows are visible)."""
            runs = api.get("dags/events_transform/dagRuns?state=success&order_by=-run_after&limit=5")["dag_runs"]
            return any(
                ti["task_id"] == "fresh_models" and ti["state"] == "success"
                for r in runs
                for ti in api.get(f"dags/events_transform/dagRuns/{r['dag_run_id']}/taskInstances")["task_instances"]
            )

        stack.wait("an events_transform run of the fresh models to succeed", fresh_run_succeeded)
    finally:
        code = stack.stop()
        print(f"micro-batch: {', '.join(f'{k} {v:.0f}s' for k, v in timings.items())}")
    assert code == 0, stack.log()
