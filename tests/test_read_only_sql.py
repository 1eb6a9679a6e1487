"""People's SQL cannot write, nor reach outside the warehouse: `trackway query` and the plan's analyst queries.

Before the fix, PostgreSQL ran `SET TRANSACTION READ ONLY` and then the text through the
simple-query protocol, so `COMMIT; DROP SCHEMA analytics CASCADE` dropped the schema; DuckDB
opened the file read-write with file access on, so `COPY ... TO` wrote files and
`read_text('~/.aws/credentials')` printed them. Both warehouses are real: the DuckDB file,
and a database on the test PostgreSQL server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plan_fixtures import write_plan
from trackway.cli import main
from trackway.config import load_settings
from trackway.warehouse import ReadOnlyQueryError, open_warehouse
from trackway.warehouse.readonly import RULE, bigquery_separators

SECRET = "aws_secret_access_key = Read-Only-Leak-4242"
RULE_START = RULE.split(" (")[0]


@pytest.fixture
def seeded(warehouse_env, tmp_path, monkeypatch):
    """analytics.events with three rows, a fake ~/.aws/credentials, and the backend's name."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(f"[default]\n{SECRET}\n")
    monkeypatch.setenv("HOME", str(home))
    settings = load_settings()
    with open_warehouse(settings.warehouse) as wh:
        con = wh.con  # type: ignore[attr-defined]  # the backend's own connection, to seed a table
        con.execute("CREATE SCHEMA IF NOT EXISTS analytics")
        con.execute("CREATE TABLE analytics.events (event_id TEXT, event_name TEXT)")
        con.execute("INSERT INTO analytics.events VALUES ('e1', 'A'), ('e2', 'B'), ('e3', 'A')")
    return settings.warehouse.kind


def _intact(after: str = "") -> None:
    """The three rows are still there and nothing was created or written (checked before any message)."""
    with open_warehouse(load_settings().warehouse, read_only=True) as wh:
        assert wh.table_exists("analytics", "events"), after
        assert wh.query("SELECT count(*) FROM analytics.events") == [(3,)], after
        assert not wh.table_exists("analytics", "stolen"), after


def _escapes(tmp_path: Path) -> list[str]:
    out, other = tmp_path / "out.csv", tmp_path / "other.duckdb"
    return [
        "COMMIT; DROP SCHEMA analytics CASCADE",
        "SELECT 1; DROP TABLE analytics.events",
        "DROP SCHEMA analytics CASCADE",
        "DELETE FROM analytics.events",
        "CREATE TABLE analytics.stolen AS SELECT 1 AS x",
        "WITH d AS (DELETE FROM analytics.events RETURNING *) SELECT * FROM d",
        f"COPY analytics.events TO '{out}'",
        f"COPY (SELECT 1) TO '{out}'",
        "SET default_transaction_read_only = off",
        "SET enable_external_access = true",
        f"ATTACH '{other}' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        # Aimed at the subquery PostgreSQL and BigQuery wrap the text in.
        "SELECT 1) AS q; DROP SCHEMA analytics CASCADE; SELECT * FROM (SELECT 1",
    ]


def _file_reads(tmp_path: Path) -> list[str]:
    """SELECTs that would read a file: DuckDB's sandbox (file access off, configuration locked) refuses them."""
    creds = tmp_path / "home" / ".aws" / "credentials"
    return [
        "SELECT * FROM read_text('~/.aws/credentials')",
        f"SELECT * FROM read_text('{creds}')",
        f"SELECT * FROM read_csv('{creds}')",
        f"SELECT * FROM '{creds}'",
        f"SELECT * FROM glob('{creds.parent}/*')",
    ]


def test_trackway_query_refuses_every_escape(seeded, tmp_path, capsys):
    for sql in _escapes(tmp_path):
        code = main(["query", sql])
        err = capsys.readouterr().err
        _intact(after=sql)
        assert not (tmp_path / "out.csv").exists() and not (tmp_path / "other.duckdb").exists(), sql
        assert code == 1, sql
        assert "refused" in err and RULE_START in err, (sql, err)


def test_duckdb_queries_read_no_file(seeded, tmp_path, capsys):
    if seeded != "duckdb":
        pytest.skip("PostgreSQL reads files only as a superuser or pg_read_server_files: refused below")
    for sql in _file_reads(tmp_path):
        code = main(["query", sql])
        captured = capsys.readouterr()
        assert "Read-Only-Leak" not in captured.out + captured.err, sql
        assert code == 1, sql
        # SELECT * FROM 'path': with file access off DuckDB no longer takes a quoted path for a file.
        expected = "does not exist" if sql.startswith("SELECT * FROM '") else "file system operations are disabled"
        assert expected in captured.err, (sql, captured.err)
    with open_warehouse(load_settings().read_warehouse, read_only=True) as wh:
        assert wh.query_with_headers("SELECT current_setting('lock_configuration')", limit=1)[1] == [(True,)]


def test_plain_selects_still_work(seeded, capsys):
    queries = {
        "SELECT event_name, count(*) AS n FROM analytics.events GROUP BY 1 ORDER BY 1;": [("A", 2), ("B", 1)],
        "WITH a AS (SELECT * FROM analytics.events) SELECT count(*) AS n FROM a -- the count": [(3,)],
        "SELECT 'x;y' AS s, count(*) AS n FROM analytics.events WHERE event_name LIKE '%A%'": [("x;y", 2)],
        "VALUES (1)": [(1,)],
    }
    with open_warehouse(load_settings().read_warehouse, read_only=True) as wh:
        for sql, rows in queries.items():
            assert wh.query_with_headers(sql, limit=10)[1] == rows, sql
        headers, rows = wh.query_with_headers("SELECT event_id FROM analytics.events ORDER BY 1", limit=2)
        assert (headers, rows) == (["event_id"], [("e1",), ("e2",)])
    assert main(["query", "SELECT count(*) AS n FROM analytics.events", "--json"]) == 0
    assert '"rows": [[3]]' in capsys.readouterr().out


def test_plan_analyst_queries_cannot_write(seeded, tmp_path, capsys):
    escapes = _escapes(tmp_path) + (_file_reads(tmp_path) if seeded == "duckdb" else [])
    plan = write_plan(
        tmp_path / "plan",
        [
            {
                "name": "Listing Viewed",
                "type": "track",
                "version": "1-0-0",
                "properties": {"type": "object", "properties": {}},
                "queries": ["queries/fine.sql", *(f"queries/q{i:02d}.sql" for i in range(len(escapes)))],
            }
        ],
    )
    (plan / "queries").mkdir()
    (plan / "queries" / "fine.sql").write_text("SELECT * FROM analytics.events;\n")
    for i, sql in enumerate(escapes):
        (plan / "queries" / f"q{i:02d}.sql").write_text(sql + "\n")
    assert main(["plan", "test", str(plan)]) == 1
    out = capsys.readouterr().out
    _intact(after="plan test")
    assert not (tmp_path / "out.csv").exists()
    assert "Read-Only-Leak" not in out
    assert "ok   queries/fine.sql" in out
    for i, sql in enumerate(escapes):
        line = next(x for x in out.splitlines() if f"queries/q{i:02d}.sql" in x)
        assert line.startswith("FAIL") and ("ReadOnlyQueryError" in line or "does not exist" in line), (sql, line)


def test_postgres_a_query_cannot_make_the_next_one_read_write(seeded):
    """set_config() is a function, so a SELECT may call it: the rollback after each query undoes it."""
    if seeded != "postgres":
        pytest.skip("PostgreSQL sessions")
    with open_warehouse(load_settings().read_warehouse, read_only=True) as wh:
        off = "SELECT set_config('default_transaction_read_only', 'off', false)"
        assert wh.query_with_headers(off, limit=1)[1] == [("off",)]
        assert wh.query("SELECT current_setting('default_transaction_read_only')") == [("on",)]
        with pytest.raises(ReadOnlyQueryError, match="read-write mode must be set before any query"):
            wh.query_with_headers("SELECT set_config('transaction_read_only', 'off', true)", limit=1)
        assert wh.query("SELECT current_setting('transaction_read_only')") == [("on",)]


def test_postgres_superuser_runs_no_peoples_sql(seeded, monkeypatch, capsys):
    if seeded != "postgres":
        pytest.skip("PostgreSQL roles")
    from postgres_server import superuser_url

    url = load_settings().warehouse.url.get_secret_value()
    monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", superuser_url(url))
    assert main(["query", "SELECT pg_read_file('/etc/hostname')"]) == 1
    err = capsys.readouterr().err
    assert "superuser" in err and "TRACKWAY_READ_WAREHOUSE_URL" in err
    assert "postgres:***@" in err  # the URL is named with its password masked


def test_duckdb_open_for_writing_in_this_process_refuses_peoples_sql(seeded, capsys):
    """dbt-duckdb runs in-process and keeps the file open: status still reads, a query says to wait."""
    if seeded != "duckdb":
        pytest.skip("DuckDB's one process-wide handle")
    settings = load_settings()
    with open_warehouse(settings.warehouse) as writer:
        with open_warehouse(settings.read_warehouse, read_only=True) as wh:
            assert wh.query("SELECT count(*) FROM analytics.events") == [(3,)]  # Trackway's own reads
            with pytest.raises(ReadOnlyQueryError, match="open for writing in this process"):
                wh.query_with_headers("SELECT 1", limit=1)
        assert writer.query("SELECT count(*) FROM analytics.events") == [(3,)]


@pytest.mark.parametrize(
    ("sql", "separated"),
    [
        ("SELECT 1;", False),
        ("SELECT ';' AS a, \"b;\" AS b, `c;d` FROM t -- x;y", False),
        ("SELECT '''a;\n''' /* ; */ # ;\n", False),
        ("SELECT 'it\\'s;' AS a", False),
        ("SELECT 1; DROP TABLE t", True),
        ("SELECT '1'; SELECT 2", True),
        ("SELECT 1) ; DROP TABLE p_raw.t; SELECT (1", True),
    ],
)
def test_bigquery_statement_separators(sql, separated):
    """BigQuery's first check: a ';' between statements is refused before any job (bqemulator runs dry runs)."""
    assert bigquery_separators(sql) is separated


@pytest.fixture(scope="module")
def bigquery(tmp_path_factory):
    from bigquery_stack import bigquery_stack

    with bigquery_stack(tmp_path_factory.mktemp("bq")) as stack:
        yield stack


@pytest.mark.bigquery
def test_bigquery_runs_only_what_a_dry_run_calls_a_select(bigquery, trackway_env, monkeypatch, capsys):
    """No text reaches BigQuery unless it is one statement, wrapped as a subquery; the dry run must say SELECT.

    Before, a dry run of the text itself decided, and an unknown statement type (None) passed:
    bqemulator reports None for BEGIN TRANSACTION, and executes dry runs, so DROP ran there.
    """
    from google.cloud import bigquery as bq

    for key, value in bigquery.env("readonly").items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    with open_warehouse(settings.warehouse) as wh:
        client = wh.client  # type: ignore[attr-defined]
        client.create_dataset(f"{settings.warehouse.project}.readonly_analytics", exists_ok=True)
        table = bq.Table(
            f"{settings.warehouse.project}.readonly_analytics.events",
            schema=[bq.SchemaField("event_id", "STRING"), bq.SchemaField("event_name", "STRING")],
        )
        client.create_table(table, exists_ok=True)
        client.insert_rows_json(table, [{"event_id": f"e{i}", "event_name": "A"} for i in range(3)])
    escapes = [
        "SELECT 1; DROP TABLE analytics.events",
        "BEGIN TRANSACTION",
        "DROP TABLE analytics.events",
        "DELETE FROM analytics.events WHERE true",
        "SELECT 1) ; DROP TABLE analytics.events; SELECT (1",
        "CREATE TABLE analytics.stolen AS SELECT 1 AS x",
        "EXPORT DATA OPTIONS(uri='gs://lake/stolen-*.csv', format='CSV') AS SELECT * FROM analytics.events",
    ]
    for sql in escapes:
        code = main(["query", sql])
        err = capsys.readouterr().err
        with open_warehouse(load_settings().warehouse) as wh:
            assert wh.query("SELECT count(*) FROM analytics.events") == [(3,)], sql
        assert code == 1, sql
        # bqemulator reads the wrapped BEGIN TRANSACTION as a table named BEGIN (BigQuery: a syntax error).
        assert ("refused" in err and RULE_START in err) or "Table BEGIN was not found" in err, (sql, err)
    with open_warehouse(load_settings().read_warehouse, read_only=True) as wh:
        assert wh.query("SELECT count(*) FROM analytics.events") == [(3,)]
        assert not wh.table_exists("analytics", "stolen")
        assert wh.query_with_headers("SELECT event_name, count(*) AS n FROM analytics.events GROUP BY 1;", limit=5) == (
            ["event_name", "n"],
            [("A", 3)],
        )
