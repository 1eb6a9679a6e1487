"""Erasure with one PostgreSQL role per job (`trackway warehouse grant`): loads filter as the loader, dbt's test
reads the erased subjects as the transform, and `trackway privacy` runs as the owner of both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from raw_files import event, hour_dir, write_gz_lines
from test_warehouse_roles import _refused, _set_job_urls, split_roles  # noqa: F401 (the fixture)
from trackway.cli import main
from trackway.config import load_settings
from trackway.load.loader import load_interval
from trackway.transform.dbt_runner import run_dbt
from trackway.warehouse import open_warehouse

pytestmark = pytest.mark.postgres
HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)


def test_loads_and_dbt_honour_requests_as_their_own_roles(split_roles, trackway_env, monkeypatch, capsys):  # noqa: F811
    admin, urls = split_roles
    monkeypatch.setenv("TRACKWAY_PRIVACY_LEDGER_KEY", "c" * 64)
    _set_job_urls(monkeypatch, urls)
    assert main(["warehouse", "grant"]) == 0
    folder = hour_dir(trackway_env / "raw", "2026-11-22", 10)
    write_gz_lines(folder / "a.ndjson.gz", [event("m-1", userId="u-gone"), event("m-2", userId="u-stays")])
    assert main(["privacy", "request", "--type", "delete_only", "--user-id", "u-gone"]) == 0  # as the owner

    report = load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1))  # as the loader
    assert (report.rows_loaded, report.erased_lines) == (1, 1)
    dbt = run_dbt(load_settings(), "build")  # as the transform: assert_no_erased_subject_in_any_mart reads privacy
    assert dbt.success and dbt.tests_failed == 0
    # The violations dbt just built, granted before they existed: health says so (it once said "no tracking plan").
    capsys.readouterr()
    assert main(["health", "--check", "violations"]) == 3
    assert "may not read intermediate.plan_violation_rows: run `trackway warehouse grant`" in capsys.readouterr().out
    assert main(["warehouse", "grant"]) == 0
    assert main(["health", "--check", "violations"]) == 0
    assert "no tracking plan" not in capsys.readouterr().out
    assert _refused(urls["READ"], "SELECT event_id FROM intermediate.plan_violation_rows") == "InsufficientPrivilege"
    assert _refused(urls["READ"], "SELECT count(*) FROM intermediate.int_events_validated") == "InsufficientPrivilege"
    # trackway health reads each request's deadline as the reader: those columns, never a subject hash.
    reader = urls["READ"]
    with psycopg.connect(reader) as con:
        [(request_id, kind, due)] = con.execute("SELECT request_id, request_type, due_at FROM privacy.requests")
        events = con.execute("SELECT request_id, seq, kind, store, status, event_at FROM privacy.request_events")
        assert kind == "delete_only" and {row[0] for row in events} == {request_id}
    for statement in (
        "SELECT subjects FROM privacy.requests",
        "SELECT * FROM privacy.requests",
        "SELECT detail FROM privacy.request_events",
        "SELECT count(*) FROM privacy.erased_subjects",
        "SELECT count(*) FROM privacy.id_hashes",
    ):
        assert _refused(reader, statement) == "InsufficientPrivilege", statement
    capsys.readouterr()
    assert main(["health", "--check", "privacy"]) == 0  # due in 30 days: listed, not yet a warning
    out = capsys.readouterr().out
    assert request_id in out and "delete_only, pending, due" in out and due.strftime("%Y-%m-%d") in out
    with psycopg.connect(admin, autocommit=True) as con:  # an installation upgraded without running the grant
        con.execute("REVOKE ALL ON privacy.requests, privacy.request_events FROM trackway_reader")
    assert main(["health", "--check", "privacy"]) == 3  # unknown, never "no erasure requests"
    assert "may not read privacy.requests: run `trackway warehouse grant`" in capsys.readouterr().out
    assert main(["warehouse", "grant"]) == 0
    assert main(["privacy", "run"]) == 0
    assert "1 finished, 0 failed" in capsys.readouterr().out
    assert main(["health", "--check", "privacy"]) == 0
    assert "1 erasure request, all finished" in capsys.readouterr().out
    with open_warehouse(load_settings().warehouse) as wh:
        assert wh.query("SELECT count(*) FROM analytics.events WHERE user_id = 'u-gone'") == [(0,)]
        assert wh.query("SELECT count(*) FROM analytics.events WHERE user_id = 'u-stays'") == [(1,)]
