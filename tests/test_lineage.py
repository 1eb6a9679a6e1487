"""OpenLineage: events_load tells the provider's file transport what it read and wrote, with counts.

Real parts: the events_load DAG runs with ``dag.test()``, Airflow's OpenLineage
provider (its listener, extractor and file transport, as airflow_env configures
them) writes the events, and the test reads that file. Cosmos's model lineage is
checked where events_transform runs for real: tests/test_stack.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from raw_files import event, hour_dir, write_gz_lines
from trackway.config import load_settings
from trackway.orchestration.airflow_env import lineage_path
from trackway.orchestration.lineage import table_dataset, url_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _events_load():
    spec = importlib.util.spec_from_file_location("dag_events_load_lineage", REPO_ROOT / "dags" / "events_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.events_load()


def lineage_events(path: Path, job: str, run_id: str, event_type: str = "COMPLETE") -> list[dict]:
    """The events of ``job`` (namespace trackway) in Airflow DAG run ``run_id`` from an OpenLineage file."""
    found = []
    for line in path.read_text().splitlines():
        ol = json.loads(line)
        airflow = ol["run"]["facets"].get("airflow") or {}
        if (
            ol["eventType"] == event_type
            and ol["job"]["name"] == job
            and (airflow.get("dagRun") or {}).get("run_id") == run_id
        ):
            found.append(ol)
    return found


def test_events_load_emits_its_objects_and_rows_to_openlineage(trackway_env, airflow_db):
    raw = trackway_env / "raw"
    folder = hour_dir(raw, "2026-11-22", 10)
    write_gz_lines(folder / "a.ndjson.gz", [event(f"lin-a{i}") for i in range(5)])
    write_gz_lines(folder / "b.ndjson.gz", [event(f"lin-b{i}") for i in range(3)])
    quarantine = raw / "quarantine" / "dt=2026-11-22" / "hour=10"
    quarantine.mkdir(parents=True)
    bad = {"reason": "missing userId and anonymousId", "sourceId": "web", "receivedAt": "2026-11-22T10:15:01Z"}
    write_gz_lines(quarantine / "q.ndjson.gz", [{**bad, "event": {"messageId": "lin-q"}}])
    sizes = sum(p.stat().st_size for p in folder.iterdir())

    run = _events_load().test(logical_date=datetime(2026, 11, 22, 11, tzinfo=UTC))
    assert run.state == "success"

    transport = lineage_path(dict(os.environ))
    assert transport is not None and transport.exists(), "airflow_env configures the file transport"
    completes = lineage_events(transport, "events_load.load_raw_objects", run.run_id)
    assert len(completes) == 1, completes
    complete = completes[0]
    assert complete["job"]["namespace"] == "trackway"

    settings = load_settings()
    inputs = {(d["namespace"], d["name"]): d for d in complete["inputs"]}
    events_prefix, quarantine_prefix = url_dataset(settings.events_url), url_dataset(settings.quarantine_url)
    assert events_prefix == ("file", str(raw / "events"))
    assert set(inputs) == {events_prefix, quarantine_prefix}
    stats = inputs[events_prefix]["inputFacets"]["inputStatistics"]
    assert (stats["fileCount"], stats["rowCount"], stats["size"]) == (2, 8, sizes)
    assert inputs[quarantine_prefix]["inputFacets"]["inputStatistics"]["rowCount"] == 1

    outputs = {(d["namespace"], d["name"]): d for d in complete["outputs"]}
    events_raw = table_dataset(settings.warehouse, "raw", "events_raw")
    assert events_raw == (f"duckdb://{trackway_env / 'warehouse.duckdb'}", "warehouse.raw.events_raw")
    assert outputs[events_raw]["outputFacets"]["outputStatistics"]["rowCount"] == 8
    events_quarantine = table_dataset(settings.warehouse, "raw", "events_quarantine")
    assert outputs[events_quarantine]["outputFacets"]["outputStatistics"]["rowCount"] == 1
    # The load's COMPLETE event as a lineage backend receives it (pytest -s shows it), facets trimmed to the counts.
    shown = {
        "eventType": complete["eventType"],
        "job": complete["job"]["name"],
        "inputs": [(d["namespace"], d["name"], d["inputFacets"]["inputStatistics"]) for d in complete["inputs"]],
        "outputs": [(d["namespace"], d["name"], d["outputFacets"]["outputStatistics"]) for d in complete["outputs"]],
    }
    print("\n[lineage] " + json.dumps(shown, indent=1))


def test_dataset_names_follow_the_openlineage_spec_and_dbts_processor():
    """Object stores as the OpenLineage naming spec has them; tables exactly as dbt's processor names them,
    so a lineage backend joins the load's output to the models' input on every warehouse."""
    from trackway.config import WarehouseTarget

    assert url_dataset("s3://trackway-raw/segment/events") == ("s3://trackway-raw", "segment/events")
    assert url_dataset("gs://bucket/prefix/quarantine") == ("gs://bucket", "prefix/quarantine")
    assert url_dataset("file:///var/lib/trackway/raw/events") == ("file", "/var/lib/trackway/raw/events")
    postgres = WarehouseTarget.parse("postgresql://loader:secret@db.internal:5433/warehouse")
    assert table_dataset(postgres, "raw", "events_raw") == ("postgres://db.internal:5433", "warehouse.raw.events_raw")
    assert table_dataset(WarehouseTarget.parse("postgresql://u@db/wh"), "raw", "events_raw")[0] == "postgres://db:5432"
    bigquery = WarehouseTarget.parse("bigquery://my-project/trackway")
    assert table_dataset(bigquery, "raw", "events_raw") == ("bigquery", "my-project.trackway_raw.events_raw")
