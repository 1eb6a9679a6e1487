"""The product's own database beside the events (docs/app-data.md, adr/0023).

dlt really syncs a SQLite file and a PostgreSQL database (tests/postgres_server.py) into
DuckDB, PostgreSQL and the BigQuery emulator: incremental on the cursor and merged on the
primary key, a column type change reported as dlt's variant column, deleted rows marked or
removed, hostile declarations refused with what to write, DuckDB's one writer respected,
and the app_sync DAG run with dag.test().
"""

from __future__ import annotations

import importlib.util
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from app_fixtures import T0, sources_yaml, write_app_db
from trackway.cli import main
from trackway.config import ConfigError, load_settings, parse_app_databases, parse_sources
from trackway.load.app_sync import DELETED_AT, AppSyncError, source_engine, sync_named
from trackway.warehouse import WarehouseBusy, open_warehouse

REPO_ROOT = Path(__file__).resolve().parents[1]


def rows(sql: str) -> list[tuple]:
    with open_warehouse(load_settings().warehouse) as wh:
        return wh.query(sql)


def declare(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "sources.yml").write_text(text)


def test_sqlite_synced_merged_evolved_and_deletes_applied(trackway_env):
    """Into DuckDB; SQLite into PostgreSQL is tests/test_plan_pipeline.py's (its analytics_x views read it)."""
    home = trackway_env
    db = write_app_db(home / "app.sqlite", ["l1", "l2", "l3"])
    declare(home, sources_yaml(f"sqlite:///{db}", bookings=", deletes: remove"))
    settings = load_settings()

    first = sync_named(settings, "product")
    assert {t.table: t.rows for t in first.tables} == {"hosts": 2, "listings": 3, "bookings": 2}
    assert rows("SELECT count(*) FROM app.listings") == [(3,)]

    # Incremental: only the row whose cursor grew is copied, and it replaces its older copy.
    with sqlite3.connect(db) as con:
        con.execute("UPDATE listings SET price = 120, updated_at = '2026-11-02 08:00:00' WHERE id = 'l1'")
    second = sync_named(settings, "product")
    assert {t.table: t.rows for t in second.tables} == {"hosts": 0, "listings": 1, "bookings": 0}
    assert rows("SELECT id, price FROM app.listings ORDER BY id") == [("l1", 120.0), ("l2", 101.0), ("l3", 102.0)]

    # Schema evolution: a new column, and a price that is no longer a number (SQLite: the table rebuilt).
    with sqlite3.connect(db) as con:
        con.executescript(
            """
            CREATE TABLE listings_new (id TEXT PRIMARY KEY, host_id TEXT, neighbourhood TEXT, latitude REAL,
                longitude REAL, price TEXT, updated_at TIMESTAMP, wifi INTEGER);
            INSERT INTO listings_new SELECT id, host_id, neighbourhood, latitude, longitude, price, updated_at, 1
                FROM listings;
            DROP TABLE listings;
            ALTER TABLE listings_new RENAME TO listings;
            UPDATE listings SET price = 'on request', updated_at = '2026-11-03 08:00:00' WHERE id = 'l2';
            """
        )
    third = sync_named(settings, "product")
    listings = next(t for t in third.tables if t.table == "listings")
    assert listings.rows == 1 and listings.new_columns == ["wifi"]
    assert listings.type_changes == ["price: values that do not fit its type now go to price__v_text (text)"]
    assert any("type change: price" in line for line in third.lines())
    assert rows("SELECT price, price__v_text, wifi FROM app.listings WHERE id = 'l2'") == [(None, "on request", 1)]

    # Deletes: listings are soft-deleted (the default), bookings removed; a further sync changes nothing.
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM listings WHERE id = 'l3'")
        con.execute("DELETE FROM bookings WHERE id = 2")
    fourth = sync_named(settings, "product")
    assert {t.table: t.deleted for t in fourth.tables} == {"hosts": 0, "listings": 1, "bookings": 1}
    marked = rows(f"SELECT id, {DELETED_AT} IS NOT NULL FROM app.listings ORDER BY id")
    assert marked == [("l1", False), ("l2", False), ("l3", True)]
    assert rows("SELECT id FROM app.bookings") == [(1,)]
    again = sync_named(settings, "product")
    assert sum(t.rows + t.deleted for t in again.tables) == 0


@pytest.mark.postgres
def test_postgresql_product_database_through_an_airflow_connection(trackway_env, postgres_url, monkeypatch):
    from postgres_server import create_database

    url = create_database(postgres_url, f"product_{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", create_database(postgres_url, f"wh_{uuid.uuid4().hex[:8]}"))
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(
            "CREATE TABLE hosts (id text PRIMARY KEY, name text, updated_at timestamptz);"
            "CREATE TABLE listings (id text PRIMARY KEY, host_id text, price numeric(8, 2), deleted_at timestamptz,"
            " updated_at timestamptz);"
            "CREATE TABLE bookings (id bigint PRIMARY KEY, listing_id text, updated_at timestamptz);"
            f"INSERT INTO hosts VALUES ('h1', 'Ana', '{T0}+00'), ('h2', 'Ben', '{T0}+00');"
            f"INSERT INTO listings VALUES ('l1', 'h1', 99.5, NULL, '{T0}+00'), ('l2', 'h2', 150, NULL, '{T0}+00');"
            f"INSERT INTO bookings VALUES (1, 'l1', '{T0}+00')"
        )
    monkeypatch.setenv("AIRFLOW_CONN_PRODUCT_DB", url)  # its password never reaches the sources file
    declare(trackway_env, sources_yaml("product_db", listings=", deletes: remove, delete_column: deleted_at"))
    settings = load_settings()

    report = sync_named(settings, "product")
    assert report.warehouse == "postgres" and report.rows == 5
    assert "@" not in str(report.as_dict())  # nothing of the connection's URL in what the task returns
    # The product soft-deletes l2 (and bumps its cursor) and changes l1: l2 goes, l1 is merged.
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("UPDATE listings SET deleted_at = now(), updated_at = now() WHERE id = 'l2'")
        con.execute("UPDATE listings SET price = 89.5, updated_at = now() WHERE id = 'l1'")
    sync_named(settings, "product")
    assert [(i, float(p)) for i, p in rows("SELECT id, price FROM app.listings")] == [("l1", 89.5)]
    # The sync reads the product database in read-only transactions: it could not write it.
    engine = source_engine(settings.app_database("product"))
    try:
        with pytest.raises(Exception, match="read-only transaction"), engine.begin() as con:
            con.exec_driver_sql("DELETE FROM bookings")
    finally:
        engine.dispose()


def test_bad_declarations_are_refused_with_what_to_write(trackway_env, tmp_path):
    def refused(text: str) -> str:
        with pytest.raises(ConfigError) as info:
            parse_app_databases(text, "sources.yml")
        return str(info.value)

    ok = sources_yaml("sqlite:////data/app.db")
    assert [t.name for t in parse_app_databases(ok, "s")[0].tables] == ["hosts", "listings", "bookings"]
    assert parse_sources(ok, "s") == []  # the loader's raw sources skip database entries
    assert "has no cursor" in refused(ok.replace("{name: hosts, cursor: updated_at}", "{name: hosts}"))
    secret = refused(ok.replace("sqlite:////data/app.db", "postgresql://app:Hunter2-Secret@db/app"))
    assert "keep credentials in an Airflow connection" in secret and "Hunter2" not in secret
    assert "not one of soft, remove, ignore" in refused(
        ok.replace("{name: bookings, cursor: updated_at}", "{name: bookings, cursor: updated_at, deletes: purge}")
    )
    assert "a table this entry does not sync" in refused(ok.replace("hosts.id", "owners.id"))
    doubled = ok + ok.split("sources:\n", 1)[1].replace("name: product", "name: other")
    assert "both write app.bookings" in refused(doubled)

    # What only the database can tell: a table without a primary key, a cursor that is not a column.
    db = tmp_path / "product.sqlite"
    with sqlite3.connect(db) as con:
        con.executescript(
            "CREATE TABLE events_log (at TIMESTAMP, what TEXT); CREATE TABLE hosts (id TEXT PRIMARY KEY, name TEXT)"
        )
    declare(
        trackway_env,
        f"sources:\n  - {{name: product, kind: database, url: 'sqlite:///{db}', tables: "
        "[{name: events_log, cursor: at}, {name: hosts, cursor: updated_at}, {name: gone, cursor: x}]}\n",
    )
    with pytest.raises(AppSyncError) as info:
        sync_named(load_settings(), "product")
    message = str(info.value)
    assert "table 'events_log' has no primary key and its entry names none: add primary_key: [column]" in message
    assert "table 'hosts': cursor 'updated_at' is not one of its columns (id, name)" in message
    assert "table 'gone' is not in the database" in message
    db.unlink()  # a missing file is not created empty by SQLite
    with pytest.raises(AppSyncError, match="no SQLite file at"):
        sync_named(load_settings(), "product")
    assert not db.exists()


def test_sync_waits_for_the_duckdb_writer_then_says_busy(trackway_env, monkeypatch, capsys):
    db = write_app_db(trackway_env / "app.sqlite", ["l1"])
    declare(trackway_env, sources_yaml(f"sqlite:///{db}"))
    monkeypatch.setenv("TRACKWAY_DUCKDB_LOCK_WAIT_SECONDS", "1")
    warehouse = trackway_env / "warehouse.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys, time; c = duckdb.connect({str(warehouse)!r}); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(WarehouseBusy, match="is busy"):
            sync_named(load_settings(), "product")  # what the DAG's task raises: Airflow retries it
    finally:
        holder.kill()
        holder.wait()
    assert main(["app-sync", "--database", "product"]) == 0
    assert "app.listings: 1 rows copied" in capsys.readouterr().out
    assert rows("SELECT count(*) FROM app.listings") == [(1,)]


def test_app_sync_dag_syncs_each_declared_database(trackway_env, airflow_db):
    db = write_app_db(trackway_env / "app.sqlite", ["l1", "l2"])
    declare(trackway_env, sources_yaml(f"sqlite:///{db}"))
    spec = importlib.util.spec_from_file_location("dag_app_sync", REPO_ROOT / "dags" / "app_sync.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    run = module.app_sync().test()
    assert run.state == "success"
    assert rows("SELECT id, host_id FROM app.listings ORDER BY id") == [("l1", "h1"), ("l2", "h2")]
    [sync] = [ti for ti in run.get_task_instances() if ti.task_id == "sync_database"]
    assert sync.state == "success" and sync.map_index == 0


@pytest.mark.slow
@pytest.mark.bigquery
def test_sync_into_bigquery_on_the_emulator(trackway_env, tmp_path, monkeypatch):
    """dlt's BigQuery destination against bqemulator. Patched, because only the emulator cannot do it:
    dlt builds its BigQuery client with no endpoint option (pointed here at the emulator, credentials
    anonymous), and the emulator does not gunzip uploaded load files (dlt writes them uncompressed here)."""
    import dlt.destinations.impl.bigquery.sql_client as bq_client
    import google.auth
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    from bigquery_stack import bigquery_stack
    from bq_emulator import PROJECT

    with bigquery_stack(tmp_path) as stack:
        base = bq_client.bigquery.Client

        class EmulatorClient(base):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **{**kwargs, "client_options": ClientOptions(api_endpoint=stack.bq.endpoint)})

        monkeypatch.setattr(bq_client.bigquery, "Client", EmulatorClient)
        monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), PROJECT))
        monkeypatch.setenv("NORMALIZE__DATA_WRITER__DISABLE_COMPRESSION", "true")
        monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", f"bigquery://{PROJECT}/appsync")
        db = write_app_db(trackway_env / "app.sqlite", ["l1", "l2"])
        declare(trackway_env, sources_yaml(f"sqlite:///{db}"))
        settings = load_settings()
        assert sync_named(settings, "product").schema == "appsync_app"
        with sqlite3.connect(db) as con:
            con.execute("UPDATE listings SET price = 250, updated_at = '2026-11-05 08:00:00' WHERE id = 'l2'")
        report = sync_named(settings, "product")
        assert {t.table: t.rows for t in report.tables}["listings"] == 1
        from google.cloud import bigquery

        client = bigquery.Client(
            PROJECT, credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=stack.bq.endpoint)
        )
        found = [tuple(r) for r in client.query("SELECT id, price FROM appsync_app.listings ORDER BY id").result()]
        assert found == [("l1", 100.0), ("l2", 250.0)]

        monkeypatch.setenv("TRACKWAY_BIGQUERY_API_ENDPOINT", stack.bq.endpoint)  # what dlt cannot honour
        with pytest.raises(AppSyncError, match="always calls Google's API"):
            sync_named(load_settings(), "product")


def test_plan_references_lint_and_what_analytics_x_generates(tmp_path, caplog):
    from plan_fixtures import write_plan
    from trackway.plan.dbtgen import generate
    from trackway.plan.lint import lint_findings
    from trackway.plan.model import load_plan
    from trackway.plan.xgen import app_links

    def event(name: str, **props: dict) -> dict:
        return {"name": name, "type": "track", "description": "d", "owner": "o", "properties": {"properties": props}}

    plan = load_plan(
        write_plan(
            tmp_path / "plan",
            [
                event("Listing Viewed", listing_id={"type": "string", "references": "app.listings.id"}),
                event("Review Posted", review_id={"type": "integer", "references": "app.reviews.id"}),
                event(
                    "Bad Ref",
                    a={"type": "string", "references": "listings"},
                    b={"type": "number", "references": "app.x.id"},
                ),
            ],
        )
    )
    found = [(f.where, f.message) for f in lint_findings(plan) if f.rule == "reference"]
    assert found == [
        (
            "event 'Bad Ref': property 'a'",
            "'listings' is not schema.table.column; write e.g. references: app.listings.id",
        ),
        (
            "event 'Bad Ref': property 'b'",
            "references a row, so its type must be string or integer (an id), not number",
        ),
    ]

    good = load_plan(
        write_plan(
            tmp_path / "good",
            [
                event("Listing Viewed", listing_id={"type": "string", "references": "app.listings.id"}),
                event("Review Posted", review_id={"type": "integer", "references": "app.reviews.id"}),
            ],
        )
    )
    assert not [k for k in generate(good) if k.startswith("x/")]  # no sources file: nothing is synced, no views
    databases = parse_app_databases(sources_yaml("sqlite:////data/app.db"), "sources.yml")
    files = generate(good, app_links=app_links(databases))
    assert sorted(k for k in files if k.startswith("x/")) == [
        "x/_x__models.yml",
        "x/x__listing_viewed.sql",
        "x/x_reference_health.sql",
    ]
    assert "app.reviews.id, a table no database of the sources file syncs" in caplog.text
    view = files["x/x__listing_viewed.sql"]
    assert "source('x_app', 'hosts')" in view and "'listing__host'" in view  # one hop along hosts.id
    assert "x_unresolved_share" in files["x/_x__models.yml"] and "x_relationships" in files["x/_x__models.yml"]
