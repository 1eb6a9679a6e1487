"""A tracking plan names files only inside its own folder: no '..', no absolute path, no symlink leaving it.

Before the fix, `queries: [../../.env]` was read by `plan docs` (and published) and by
`plan test` (and run against the warehouse).
"""

from __future__ import annotations

import pytest

from plan_fixtures import write_plan
from trackway.cli import main
from trackway.plan.model import PlanError, load_plan

SECRET = "TRACKWAY_WAREHOUSE_URL=postgresql://u:Plan-Leak-Pw@db/x"


def _event(query: str) -> dict:
    return {
        "name": "Listing Viewed",
        "type": "track",
        "version": "1-0-0",
        "properties": {"type": "object", "properties": {"listing_id": {"type": "string"}}},
        "queries": [query],
    }


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / ".env"
    path.write_text(SECRET + "\n")
    return path


@pytest.mark.parametrize("query", ["../.env", "queries/../../.env", "/etc/passwd", "ABSOLUTE"])
def test_paths_outside_the_plan_are_refused(tmp_path, secret_file, query):
    query = str(secret_file) if query == "ABSOLUTE" else query
    plan = write_plan(tmp_path / "plan", [_event(query)])
    with pytest.raises(PlanError, match="inside the plan folder"):
        load_plan(plan)


def test_a_symlink_leaving_the_plan_is_refused(tmp_path, secret_file):
    plan = write_plan(tmp_path / "plan", [_event("queries/top.sql")])
    (plan / "queries").mkdir()
    (plan / "queries" / "top.sql").symlink_to(secret_file)
    with pytest.raises(PlanError, match="outside the plan folder"):
        load_plan(plan)


def test_an_event_file_symlinked_from_outside_is_refused(tmp_path, secret_file):
    plan = write_plan(tmp_path / "plan", [])
    (plan / "events" / "stolen.yaml").symlink_to(secret_file)
    with pytest.raises(PlanError, match="event file"):
        load_plan(plan)


def test_plan_docs_never_publish_a_file_from_outside(tmp_path, secret_file, trackway_env, capsys, monkeypatch):
    plan = write_plan(tmp_path / "plan", [_event("../.env")])
    monkeypatch.setenv("TRACKWAY_PLAN_DIR", str(plan))
    out = tmp_path / "site"
    code = main(["plan", "docs", str(plan), "--out", str(out)])
    captured = capsys.readouterr()
    assert code != 0 and "inside the plan folder" in captured.err + captured.out
    written = "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()) if out.exists() else ""
    assert "Plan-Leak-Pw" not in written + captured.out + captured.err


def test_queries_inside_the_plan_still_work(tmp_path):
    plan = write_plan(tmp_path / "plan", [_event("queries/top.sql")])
    (plan / "queries").mkdir()
    (plan / "queries" / "top.sql").write_text("SELECT 1")
    loaded = load_plan(plan)
    assert loaded.query_path("queries/top.sql").read_text() == "SELECT 1"
