"""The Superset bundle (include/superset) and how `trackway bi` renders it: no Superset needed (docs/bi.md).

Its datasets also run against the plan pipeline's warehouse, on DuckDB and PostgreSQL, in
tests/test_plan_pipeline.py; Superset itself imports and shows it in tests/test_bi_server.py (`make test-bi`).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import duckdb
import pytest
import yaml

from trackway.bi.bundle import (
    DATABASE_FILE,
    DUCKDB_CONNECT_ARGS,
    BundleError,
    assets,
    read_bundle,
    reference_problems,
    render,
)
from trackway.config import load_settings

DASHBOARDS = {"product-overview", "funnels", "retention", "experiments", "marketplace", "tracking-plan-health"}


def test_every_uuid_reference_resolves_and_each_dashboard_is_there():
    bundle = read_bundle()
    assert reference_problems(bundle) == []
    assert {doc["slug"] for _, doc in assets(bundle, "dashboards")} == DASHBOARDS
    charts = {doc["uuid"] for _, doc in assets(bundle, "charts")}
    shown = {
        node["meta"]["uuid"]
        for _, doc in assets(bundle, "dashboards")
        for node in doc["position"].values()
        if isinstance(node, dict) and node.get("type") == "CHART"
    }
    assert shown == charts  # no chart left out of every dashboard
    for name, doc in assets(bundle, "charts"):  # the data API answers from the saved query context
        assert json.loads(doc["query_context"])["queries"], name


def test_a_broken_reference_is_named():
    bundle = copy.deepcopy(read_bundle())
    chart_name, chart = next(assets(bundle, "charts"))
    chart["dataset_uuid"] = "00000000-0000-0000-0000-000000000000"
    dashboard_name, dashboard = next(assets(bundle, "dashboards"))
    node = next(n for n in dashboard["position"].values() if isinstance(n, dict) and n.get("type") == "CHART")
    node["meta"]["uuid"] = "11111111-1111-1111-1111-111111111111"
    _, dataset = next(assets(bundle, "datasets"))
    dataset["uuid"] = bundle[DATABASE_FILE]["uuid"]
    problems = "\n".join(reference_problems(bundle))
    assert f"{chart_name}: dataset_uuid 00000000-0000-0000-0000-000000000000 is no dataset" in problems
    assert f"{dashboard_name}: chart 11111111-1111-1111-1111-111111111111" in problems
    assert f"uuid {dataset['uuid']} is also" in problems


def _manifest(path: Path) -> Path:
    """A manifest with one documented model, as dbt writes it (only the keys the bundle reads)."""
    node = {
        "resource_type": "model",
        "name": "stickiness",
        "alias": "stickiness",
        "schema": "analytics",
        "description": "analytics.stickiness: one row per UTC day.\n  DAU, WAU, MAU.",
        "columns": {"dau": {"description": "People active that day."}},
    }
    path.write_text(json.dumps({"nodes": {"model.trackway.stickiness": node}}))
    return path


def test_render_fills_in_the_read_only_snapshot_and_dbt_descriptions(trackway_env, tmp_path):
    rendered = render(load_settings(), tmp_path / "out", _manifest(tmp_path / "manifest.json"))
    assert rendered.password is None
    database = yaml.safe_load((tmp_path / "out" / DATABASE_FILE).read_text())
    assert database["sqlalchemy_uri"] == f"duckdb:///{trackway_env / 'bi' / 'warehouse.duckdb'}"
    assert database["extra"]["engine_params"]["connect_args"] == DUCKDB_CONNECT_ARGS
    assert (database["allow_dml"], database["allow_file_upload"], database["allow_ctas"]) == (False, False, False)
    stickiness = yaml.safe_load((tmp_path / "out" / "datasets" / "trackway_warehouse" / "stickiness.yaml").read_text())
    assert stickiness["description"] == "analytics.stickiness: one row per UTC day. DAU, WAU, MAU."
    columns = {c["column_name"]: c["description"] for c in stickiness["columns"]}
    assert columns["dau"] == "People active that day."
    assert rendered.counts == {"datasets": 10, "charts": 25, "dashboards": 6}


def test_postgres_is_read_as_the_read_only_role_and_its_password_never_lands_in_a_file(
    trackway_env, tmp_path, monkeypatch
):
    monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", "postgresql://admin:adm1n-secret@127.0.0.1:5432/trackway")
    with pytest.raises(BundleError, match="TRACKWAY_READ_WAREHOUSE_URL"):  # fail closed: never as the admin
        render(load_settings(), tmp_path / "out", _manifest(tmp_path / "manifest.json"))
    monkeypatch.setenv("TRACKWAY_READ_WAREHOUSE_URL", "postgresql://reader:r3ader-secret@127.0.0.1:5432/trackway")
    rendered = render(load_settings(), tmp_path / "out", _manifest(tmp_path / "manifest.json"))
    assert rendered.database_uri == "postgresql+psycopg2://reader:XXXXXXXXXX@127.0.0.1:5432/trackway"
    assert rendered.password == "r3ader-secret"
    written = "".join(p.read_text() for p in (tmp_path / "out").rglob("*.yaml"))
    assert "secret" not in written


def test_bigquery_is_refused_with_what_to_do(trackway_env, tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", "bigquery://project/trackway")
    with pytest.raises(BundleError, match="not supported yet"):
        render(load_settings(), tmp_path / "out", _manifest(tmp_path / "manifest.json"))


def test_superset_s_duckdb_connection_reads_the_snapshot_and_nothing_else(tmp_path):
    """The connect args Superset passes (through duckdb-engine) to duckdb.connect: SQL Lab cannot reach files."""
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA analytics; CREATE TABLE analytics.t AS SELECT 1 AS x")
    con.close()
    (tmp_path / "secret.csv").write_text("password\nhunter2\n")
    con = duckdb.connect(str(path), **copy.deepcopy(DUCKDB_CONNECT_ARGS))
    try:
        assert con.execute("SELECT x FROM analytics.t").fetchall() == [(1,)]
        for sql in (
            f"SELECT * FROM read_csv('{tmp_path / 'secret.csv'}')",
            f"ATTACH '{tmp_path / 'other.duckdb'}'",
            "SET enable_external_access = true",
            "INSTALL httpfs",
            "CREATE TABLE analytics.u AS SELECT 1 AS x",
        ):
            with pytest.raises(duckdb.Error):
                con.execute(sql)
    finally:
        con.close()
