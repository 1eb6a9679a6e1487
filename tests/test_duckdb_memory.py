"""DuckDB runs within a memory budget (TRACKWAY_DUCKDB_MEMORY_LIMIT), spilling beside the warehouse file.

dbt's DuckDB session and the loader's connection really report the budget; how a
`--full-refresh` behaves under it is measured in benchmarks/bench_transform.py.
"""

from __future__ import annotations

import pytest

from trackway.config import ConfigError, load_settings


def test_the_budget_is_a_size_and_defaults_to_half_the_memory(trackway_env, monkeypatch):
    from trackway.config.warehouse import machine_memory_bytes

    half = f"{machine_memory_bytes() // 2 // 2**20}MiB"
    assert load_settings().warehouse.dbt_env()["TRACKWAY_DBT_DUCKDB_MEMORY_LIMIT"] == half
    for value, mib in (("4GiB", 4096), ("1.5 GB", 1430), ("512mb", 488)):
        monkeypatch.setenv("TRACKWAY_DUCKDB_MEMORY_LIMIT", value)
        assert load_settings().warehouse.duckdb_memory() == f"{mib}MiB"
    for bad in ("lots", "80%", "4 G", "10MB"):  # 10 MB: too little for any query
        monkeypatch.setenv("TRACKWAY_DUCKDB_MEMORY_LIMIT", bad)
        with pytest.raises(ConfigError, match="TRACKWAY_DUCKDB_MEMORY_LIMIT"):
            load_settings().warehouse  # noqa: B018


def test_dbt_and_the_loader_use_the_budget_and_spill_beside_the_warehouse(trackway_env, monkeypatch):
    import duckdb
    from dbt.cli.main import dbtRunner

    from trackway.transform.dbt_runner import dbt_args, dbt_environment
    from trackway.warehouse import open_warehouse

    monkeypatch.setenv("TRACKWAY_DUCKDB_MEMORY_LIMIT", "300MiB")
    settings = load_settings()
    with open_warehouse(settings.warehouse) as wh:
        wh.ensure_raw_tables()
        assert wh.load_objects([]) == []  # what a load sets up: the lower of its own 512 MiB and the budget
        assert wh.query("select current_setting('memory_limit'), current_setting('temp_directory')") == [
            ("300.0 MiB", str(trackway_env.resolve() / "warehouse.duckdb.tmp"))
        ]
    for key, value in dbt_environment(settings).items():
        monkeypatch.setenv(key, value)
    sql = "select current_setting('memory_limit') as m, current_setting('temp_directory') as t"
    result = dbtRunner().invoke(dbt_args(settings, "show", "--inline", sql, "--quiet"))
    assert result.success, result.exception
    assert list(result.result.results[0].agate_table.rows[0]) == [
        "300.0 MiB",
        str(trackway_env.resolve() / "warehouse.duckdb.tmp"),
    ]
    # dbt-duckdb keeps its handle open in this process: Trackway's connections, and a plain one, share it.
    for read_only in (False, True):
        with open_warehouse(settings.warehouse, read_only=read_only) as wh:
            assert wh.query("select current_setting('memory_limit')") == [("300.0 MiB",)]
    duckdb.connect(str(settings.warehouse.duckdb_path)).close()
