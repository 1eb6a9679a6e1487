"""Shared pytest fixtures."""

from __future__ import annotations

import atexit
import gc
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dbt_parse_reuse import HOME_PARSE_FILES, ReusedFolder, worker_database, worker_folder
from trackway.orchestration.airflow_env import airflow_defaults, prepare_folders

# Airflow reads its configuration at import: point it at a throwaway SQLite
# metadata DB for the whole session before any test imports airflow. Each pytest-xdist worker
# has its own (its Cosmos cache and OpenLineage file too: airflow_defaults puts them under it).
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="trackway-test-airflow-"))
REPO_ROOT = Path(__file__).resolve().parents[1]
atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)
os.environ.update(airflow_defaults(_AIRFLOW_HOME))
prepare_folders(airflow_defaults(_AIRFLOW_HOME))  # the OpenLineage file transport writes under it
os.environ.update({"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"})
# dag.test() crashes after a successful run of a DAG with a deadline (apache/airflow#73428, Airflow 3.3.2):
# the tests run DAGs without them; tests/test_dag_integrity.py checks the deadlines with the setting on.
os.environ["TRACKWAY_DAG_DEADLINE_MINUTES"] = "0"
# Fixtures carry fixed arrival times (raw_files.event: 2026-11-22): under the default retention (90 days, then
# sanitize) they would be sanitised at load once the calendar passes them. Retention's own tests unset this.
os.environ["TRACKWAY_RETENTION_DEFAULT"] = "keep"
# GCS emulator tests (see tests/gcs_emulator.py): before anything imports gcsfs, and no metadata-server probe.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
os.environ.setdefault("NO_GCE_CHECK", "true")


# The longest files, longest first (worker-seconds inside `make test` on 2 cores, fresh clone, 2026-12-04; the
# BigQuery tier's own, `make test-bigquery`, 2026-12-02): started first, they overlap each other and everything
# else; a long file started last would leave the other workers idle.
LONGEST_FILES = (
    "test_end_to_end_bigquery.py",  # ~200 s (make test-bigquery)
    "test_reprocess_and_retries.py",  # ~143 s
    "test_gameday.py",  # ~139 s
    "test_dbt_metrics_bigquery.py",  # ~80-125 s (make test-bigquery)
    "test_dbt_incremental.py",  # ~124 s (DuckDB and PostgreSQL)
    "test_end_to_end.py",  # ~118 s
    "test_demo.py",  # ~99 s
    "test_dbt_incremental_bigquery.py",  # ~95 s (make test-bigquery)
    "test_end_to_end_postgres.py",  # ~88 s
    "test_dbt_metrics.py",  # ~73 s
    "test_plan_scale.py",  # ~69 s
    "test_collector_durability.py",  # ~65 s
    "test_privacy_end_to_end.py",  # ~59 s
    "test_dbt_source_dedup.py",  # ~57 s
    "test_airflow_page.py",  # ~51 s
    "test_plan_pipeline.py",  # ~48 s
)


@pytest.fixture(autouse=True)
def _restore_environ():
    """Each test leaves os.environ as it found it. dag.test() runs Cosmos tasks in this process, and Cosmos's
    OpenLineage step copies a task's env vars into os.environ for good (cosmos/operators/local.py): without
    this, events_transform's DBT_EXCLUDE_RESOURCE_TYPES=unit_test leaked into later tests on the same worker."""
    saved = dict(os.environ)
    yield
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _frozen_heap():
    """Each test starts with what earlier tests left frozen out of the garbage collector's reach.

    A pytest worker lives for hundreds of tests and its heap only grows (Airflow, dbt manifests,
    DuckDB results). dag.test() runs Cosmos tasks in this process, and Cosmos calls gc.collect()
    after every dbt command (cosmos/dbt/runner.py ``_cleanup_dbt_adapters``): a full scan of that
    heap, which made the end-to-end tests 2-3x slower late in a worker than alone (py-spy: a fifth
    of their time). An Airflow worker runs each task in a fresh process, where that scan is ~0.1 s.
    Reference counting still frees everything; only cycles left by earlier tests stay.
    """
    gc.collect()
    gc.freeze()
    yield


@pytest.fixture(scope="session", autouse=True)
def _fast_in_process_dbt():
    """What the DAG does when dbt runs in its process (trackway.orchestration.dbt_in_process), from the start:
    tests that run dbt without the DAG pay the same costs. In this long-lived process py-spy put a quarter of
    the end-to-end tests' time in dbt-common's inspect.stack() and a quarter (36 of 148 s) in Cosmos's
    gc.collect() after each dbt command, with only the per-test freeze above."""
    from trackway.orchestration.dbt_in_process import speed_up_in_process_dbt

    speed_up_in_process_dbt()


# The test being set up or run: tests/bigquery_stack.py refuses to start the emulator for one not marked bigquery.
RUNNING: dict[str, pytest.Item] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    RUNNING["item"] = item


def pytest_collection_modifyitems(config, items):
    """Longest files first, each file kept whole: `make test` runs files on parallel workers
    (pytest-xdist --dist loadfile --no-loadscope-reorder keeps this order)."""

    def rank(item) -> int:
        name = item.path.name
        if name in LONGEST_FILES:
            return LONGEST_FILES.index(name)
        return len(LONGEST_FILES) + (0 if item.get_closest_marker("slow") else 1)

    items.sort(key=rank)  # stable: the order inside a file is kept


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata DB (SQLite) for tests that run DAGs."""
    if not (_AIRFLOW_HOME / "airflow.db").exists():
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ.copy()
        )
    return _AIRFLOW_HOME


@pytest.fixture
def own_asset_events(airflow_db):
    """This test's asset events and queued runs only: the Airflow DB is shared by the session.

    Clears the asset events and events_transform's asset queue that earlier tests on this worker left
    (not every DAG test uses this fixture: test_lineage's loads do not), and removes the ones it made
    afterwards, so a test that counts them sees its own alone.
    """
    from airflow.models.asset import AssetDagRunQueue, AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import delete, func, select

    with create_session() as session:
        session.execute(delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == "events_transform"))
        session.execute(delete(AssetEvent))
        before = session.scalar(select(func.max(AssetEvent.id))) or 0
    yield
    with create_session() as session:
        session.execute(delete(AssetEvent).where(AssetEvent.id > before))
        session.execute(delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == "events_transform"))


# The warehouse URLs whose parse the next test can use: the home's DuckDB file (the default), the worker's database.
_REUSABLE_WAREHOUSES: dict[str, str] = {"": "duckdb"}


@pytest.fixture(scope="session")
def _worker_home(tmp_path_factory) -> ReusedFolder:
    return worker_folder(tmp_path_factory, "home", HOME_PARSE_FILES)


@pytest.fixture
def trackway_env(tmp_path, _worker_home, monkeypatch) -> Path:
    """A fresh embedded Trackway (raw folder + DuckDB) in an empty TRACKWAY_HOME; returns it.

    The home is the worker's one path, which carries dbt's parse to the next test (tests/dbt_parse_reuse.py);
    afterwards it moves to tmp_path/"trackway".
    """
    home = _worker_home.start("duckdb")
    monkeypatch.setenv("TRACKWAY_HOME", str(home))
    for var in (
        "TRACKWAY_RAW_URL",
        "TRACKWAY_WAREHOUSE_URL",
        "TRACKWAY_LOAD_WAREHOUSE_URL",
        "TRACKWAY_TRANSFORM_WAREHOUSE_URL",
        "TRACKWAY_READ_WAREHOUSE_URL",
        "TRACKWAY_SPOOL_DIR",
        "TRACKWAY_WRITE_KEYS",
    ):
        monkeypatch.delenv(var, raising=False)
    yield home
    # A parse made with a tracking plan (its metrics are dbt's settings) is not kept: the next test has none.
    same_home = os.environ.get("TRACKWAY_HOME") == str(home) and "TRACKWAY_PLAN_DIR" not in os.environ
    kind = _REUSABLE_WAREHOUSES.get(os.environ.get("TRACKWAY_WAREHOUSE_URL", "")) if same_home else None
    _worker_home.finish(kind, tmp_path / "trackway", home / "warehouse.duckdb")


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_env(request, trackway_env, _worker_home, monkeypatch) -> Path:
    """``trackway_env`` on each warehouse: the embedded DuckDB, then an empty database on the test PostgreSQL
    (the worker's own database name, dropped and created again: tests/dbt_parse_reuse.py)."""
    if request.param == "postgres":
        from postgres_server import create_database

        url = create_database(request.getfixturevalue("postgres_url"), worker_database(request, "wh"))
        _REUSABLE_WAREHOUSES[url] = "postgres"
        monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", url)
        _worker_home.bring_parse("postgres")
    return trackway_env


@pytest.fixture(scope="session")
def postgres_url():
    """URL of a throwaway PostgreSQL server shared by the whole session.

    Tests that need isolation create their own database on it
    (see ``postgres_server.create_database``).
    """
    from postgres_server import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    """A real collector process shared by one test module (SDK tests send to it), with a keyring
    (``proc.keyring``), so the personal traits are stored as pseudonyms (docs/privacy.md)."""
    from collector_helpers import CollectorProcess, make_keyring

    home = tmp_path_factory.mktemp("collector")
    keyring = make_keyring(home / "keys.yaml")
    proc = CollectorProcess(home, TRACKWAY_PSEUDONYM_KEYS=str(home / "keys.yaml")).start()
    proc.keyring = keyring
    yield proc
    proc.close()


@pytest.fixture(scope="module")
def store(collector):
    """The collector's raw object store."""
    from collector_helpers import local_store

    return local_store(collector.home)
