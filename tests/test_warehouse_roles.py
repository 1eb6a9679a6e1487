"""One PostgreSQL role per job (`trackway warehouse grant`), on the real test server.

The operator runs the grant as the database's superuser (the stack's POSTGRES_USER); then
the loader writes raw and nothing else, dbt reads raw and builds its schemas, and the
reader selects and cannot write anything, not even through `trackway query`. The setup
starts as a single-role one (a first load as the admin) to show existing tables are handed over.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest

from raw_files import event, hour_dir, write_gz_lines
from trackway.cli import main
from trackway.config import ConfigError, load_settings
from trackway.load.loader import load_interval
from trackway.status import stage_counts
from trackway.transform.dbt_runner import run_dbt

HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)
ROLES = {"LOAD": "trackway_loader", "TRANSFORM": "trackway_transform", "READ": "trackway_reader"}


def _as(url: str, user: str, password: str) -> str:
    parsed = urlparse(url)
    return urlunparse(parsed._replace(netloc=f"{user}:{password}@{parsed.hostname}:{parsed.port}"))


@pytest.fixture
def split_roles(trackway_env, postgres_url, monkeypatch):
    """A fresh database; TRACKWAY_WAREHOUSE_URL is its superuser, each job URL its own role."""
    from postgres_server import create_database, superuser_url

    admin = superuser_url(create_database(postgres_url, "roles"))
    monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", admin)
    urls = {job: _as(admin, role, f"pw-{role}-Roles-Secret") for job, role in ROLES.items()}
    return admin, urls


def _set_job_urls(monkeypatch, urls: dict[str, str]) -> None:
    for job, url in urls.items():
        monkeypatch.setenv(f"TRACKWAY_{job}_WAREHOUSE_URL", url)


def _refused(url: str, statement: str) -> str:
    """The error PostgreSQL gives ``statement`` run as the URL's role, outside any Trackway code."""
    with psycopg.connect(url, autocommit=True) as con:
        try:
            con.execute(statement)
        except psycopg.Error as exc:
            return type(exc).__name__
    raise AssertionError(f"{urlparse(url).username} could run: {statement}")


def test_each_job_runs_as_its_own_role_with_only_what_it_needs(split_roles, trackway_env, monkeypatch, capsys):
    admin, urls = split_roles
    folder = hour_dir(trackway_env / "raw", "2026-11-22", 10)
    write_gz_lines(folder / "a.ndjson.gz", [event(f"m-{i}") for i in range(5)] + ["{garbage"])
    # A single-role setup first: the admin's first load creates raw's tables.
    assert load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1)).rows_loaded == 6

    _set_job_urls(monkeypatch, urls)
    assert main(["warehouse", "grant"]) == 0
    assert main(["warehouse", "grant"]) == 0  # idempotent
    out = capsys.readouterr().out
    assert "trackway_reader" in out and "Roles-Secret" not in out

    write_gz_lines(folder / "b.ndjson.gz", [event("m-9")])
    report = load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1))
    assert (report.objects_loaded, report.rows_loaded) == (1, 1)
    dbt = run_dbt(load_settings(), "run")
    assert dbt.success and dbt.models >= 4
    counts = stage_counts(load_settings())  # as the reader
    assert (counts.raw_rows, counts.events, counts.rejected) == (7, 6, 1)

    with psycopg.connect(admin) as con:
        owners = dict(
            con.execute(
                "SELECT n.nspname || '.' || c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'v') "
                "AND n.nspname IN ('raw', 'analytics')"
            ).fetchall()
        )
        supers = con.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s) AND rolsuper", [list(ROLES.values())]
        )
        assert supers.fetchone() == (0,)
    assert owners["raw.events_raw"] == owners["raw.loaded_objects"] == "trackway_loader"  # handed over
    assert owners["analytics.events"] == "trackway_transform"

    loader, transform, reader = urls["LOAD"], urls["TRANSFORM"], urls["READ"]
    for statement in (
        "INSERT INTO analytics.events (event_id) VALUES ('forged')",
        "DELETE FROM analytics.events",
        "CREATE TABLE analytics.loader_was_here (x int)",
        "CREATE SCHEMA loader_was_here",
        "SELECT count(*) FROM analytics.events",
    ):
        assert _refused(loader, statement) == "InsufficientPrivilege", statement
    for statement in (
        "DELETE FROM raw.events_raw",
        "INSERT INTO raw.loaded_objects (source_object) VALUES ('x')",
        "DROP TABLE raw.events_raw",
    ):
        assert _refused(transform, statement) == "InsufficientPrivilege", statement
    # The reader, even when it asks for a read-write transaction: its privileges are what hold.
    for statement in (
        "BEGIN READ WRITE; DELETE FROM analytics.events",
        "BEGIN READ WRITE; DROP SCHEMA analytics CASCADE",
        "BEGIN READ WRITE; CREATE TABLE analytics.reader_was_here (x int)",
        "BEGIN READ WRITE; INSERT INTO raw.events_raw (raw) VALUES ('x')",
        "BEGIN READ WRITE; CREATE SCHEMA reader_was_here",
        "SELECT raw FROM raw.events_raw",  # lineage and counts, never a raw line
        "SELECT count(*) FROM staging.stg_events",
    ):
        assert _refused(reader, statement) == "InsufficientPrivilege", statement
    assert _refused(reader, "DELETE FROM analytics.events") == "ReadOnlySqlTransaction"  # sessions start read-only
    assert main(["query", "COMMIT; DROP SCHEMA analytics CASCADE"]) == 1
    assert "one read-only SELECT" in capsys.readouterr().err
    assert main(["query", "SELECT count(*) AS n FROM analytics.events"]) == 0
    assert "(1 rows)" in capsys.readouterr().out
    assert stage_counts(load_settings()).events == 6


def test_app_sync_writes_app_as_the_loader_and_dbt_and_the_reader_only_read_it(split_roles, trackway_env, monkeypatch):
    from app_fixtures import sources_yaml, write_app_db
    from trackway.load.app_sync import sync_named

    admin, urls = split_roles
    _set_job_urls(monkeypatch, urls)
    assert main(["warehouse", "grant"]) == 0
    db = write_app_db(trackway_env / "app.sqlite", ["l1"], bookings=1)
    (trackway_env / "sources.yml").write_text(sources_yaml(f"sqlite:///{db}"))
    assert sync_named(load_settings(), "product").rows == 4  # as trackway_loader, into the schemas grant made

    with psycopg.connect(admin) as con:
        owner = con.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'app' AND tablename = 'listings'")
        assert owner.fetchone() == ("trackway_loader",)
    for job in ("TRANSFORM", "READ"):  # dbt builds analytics_x on app; the reader and BI tools read it
        with psycopg.connect(urls[job]) as con:
            assert con.execute("SELECT id FROM app.listings").fetchall() == [("l1",)]
    assert _refused(urls["TRANSFORM"], "DELETE FROM app.listings") == "InsufficientPrivilege"
    assert _refused(urls["READ"], "BEGIN READ WRITE; DELETE FROM app.listings") == "InsufficientPrivilege"
    assert _refused(urls["LOAD"], "SELECT count(*) FROM analytics.events") == "InsufficientPrivilege"


def test_grant_needs_the_three_roles_and_a_superuser(split_roles, postgres_url, monkeypatch, capsys):
    admin, urls = split_roles
    assert main(["warehouse", "grant"]) == 2  # no job URLs: each job would run as the admin
    assert "TRACKWAY_LOAD_WAREHOUSE_URL is unset or names the role of TRACKWAY_WAREHOUSE_URL" in capsys.readouterr().err
    _set_job_urls(monkeypatch, {**urls, "READ": urls["LOAD"]})
    assert main(["warehouse", "grant"]) == 2
    assert "share a role" in capsys.readouterr().err

    _set_job_urls(monkeypatch, urls)
    assert main(["warehouse", "grant", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert 'ALTER SCHEMA "raw" OWNER TO "trackway_loader";' in printed and "PASSWORD '***'" in printed
    assert "Roles-Secret" not in printed

    # As the database's owner without superuser rights: refused, nothing changed, no password shown.
    owner = _as(admin, "trackway", urlparse(postgres_url).password or "")
    monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", owner)
    assert main(["warehouse", "grant"]) == 1
    err = capsys.readouterr().err
    assert "superuser" in err and "nothing was changed" in err and "Roles-Secret" not in err


def test_job_urls_name_the_same_postgresql_database(trackway_env, monkeypatch):
    monkeypatch.setenv("TRACKWAY_READ_WAREHOUSE_URL", "postgresql://reader:pw@db:5432/warehouse")
    with pytest.raises(ConfigError, match="TRACKWAY_READ_WAREHOUSE_URL is for PostgreSQL"):
        load_settings().read_warehouse  # noqa: B018  (the default warehouse is DuckDB)
    monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", "postgresql://admin:pw@db:5432/warehouse")
    monkeypatch.setenv("TRACKWAY_LOAD_WAREHOUSE_URL", "postgresql://loader:Other-Db-Pw@db:5432/elsewhere")
    with pytest.raises(ConfigError, match="must name the database of TRACKWAY_WAREHOUSE_URL") as err:
        load_settings().load_warehouse  # noqa: B018
    assert "Other-Db-Pw" not in str(err.value)
    settings = load_settings()
    assert settings.read_warehouse.user == "reader" and settings.transform_warehouse is settings.warehouse
