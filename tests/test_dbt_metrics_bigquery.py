"""The metric marts on BigQuery too: the dataset of tests/test_dbt_metrics.py on bqemulator.

dbt-bigquery (the dbt environment, adr/0007) builds twice incrementally (the first load, then
the other two with the declarations changed, as an analyst editing metrics.yaml would) and
then with --full-refresh; the tables must be equal, and the funnel counts and the z-test the
same as on DuckDB and PostgreSQL. On BigQuery the incremental marts MERGE on a per-row key
and delete the rows of rewritten groups that the run did not write again
(macros/incremental.sql, macros/metrics.sql): a miss would leave a row the full refresh lacks.
"""

from __future__ import annotations

import json

import pytest

from bigquery_stack import bigquery_stack, insert_raw_rows
from dbt_helpers import raw_row
from test_dbt_incremental_bigquery import _snapshot
from test_dbt_metrics import BATCHES, CHECKOUT, DECLARED, LOADS, METRIC_MARTS, _z_test
from trackway.config import load_settings
from trackway.transform.dbt_runner import run_dbt
from trackway.warehouse import open_warehouse

pytestmark = [pytest.mark.slow, pytest.mark.bigquery]
# The metric marts, what they are built from and their data tests: each query is a job on the emulator.
SELECT = ("--select", "+path:models/marts/metrics", "events_rejected", "--exclude", "resource_type:unit_test")


def test_metric_marts_on_bigquery(tmp_path, trackway_env, monkeypatch):
    with bigquery_stack(tmp_path / "stack") as stack:
        for key, value in stack.env("metrics").items():
            monkeypatch.setenv(key, value)
        settings = load_settings()
        with open_warehouse(settings.warehouse) as wh:
            wh.ensure_raw_tables()
        for loads in ([0], [1, 2]):
            rows = [
                raw_row(line, f"gs://lake/metrics-{index}", n, f"load-{index}", LOADS[index])
                for index in loads
                for n, line in enumerate(BATCHES[index], 1)
            ]
            insert_raw_rows(settings.warehouse, rows)
            monkeypatch.setenv("TRACKWAY_DBT_METRICS", json.dumps(DECLARED[loads[-1]]))
            report = run_dbt(settings, "build", *SELECT)
            assert report.success and report.tests_failed == 0, report.summary() + "\n".join(report.errors)
        with open_warehouse(settings.warehouse) as wh:
            incremental = _snapshot(wh, METRIC_MARTS)
            funnel = wh.query(
                "SELECT first_touch_utm_source, step_number, reached_people FROM analytics.funnels "
                "WHERE funnel_name = 'activation' AND entry_date = DATE '2026-11-02' "
                "ORDER BY first_touch_utm_source, step_number"
            )
            checkout = wh.query(
                "SELECT exposed_people, converted_people, z_score, p_value FROM analytics.experiment_results "
                "WHERE experiment_id = 'checkout' AND variant = 'treatment'"
            )
            dropped = wh.query("SELECT count(*) FROM analytics.funnels WHERE funnel_name = 'dropped'")
        assert run_dbt(settings, "build", "--full-refresh", *SELECT).success
        with open_warehouse(settings.warehouse) as wh:
            full_refresh = _snapshot(wh, METRIC_MARTS)
    for table in METRIC_MARTS:
        assert incremental[table] == full_refresh[table], table
    assert [tuple(r) for r in funnel] == [
        ("(none)", 1, 2),
        ("(none)", 2, 2),
        ("(none)", 3, 2),
        ("(none)", 4, 1),
        ("facebook", 1, 1),
        ("facebook", 2, 1),
        ("facebook", 3, 0),
        ("facebook", 4, 0),
        ("google", 1, 1),
        ("google", 2, 1),
        ("google", 3, 0),
        ("google", 4, 0),
        ("newsletter", 1, 1),
        ("newsletter", 2, 1),
        ("newsletter", 3, 0),
        ("newsletter", 4, 0),
    ]
    assert dropped[0][0] == 0
    ((exposed, converted, z, p_value),) = checkout
    z_expected, p_expected = _z_test(*CHECKOUT["treatment"][::-1], *CHECKOUT["control"][::-1])
    assert (exposed, converted) == CHECKOUT["treatment"]
    assert z == pytest.approx(z_expected, abs=1e-9) and p_value == pytest.approx(p_expected, abs=2e-7)
