"""fake-gcs-server + bqemulator wired together, and the Trackway settings that point at them."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bq_emulator import PROJECT, BigQueryEmulator
from dbt_helpers import INSERT_RAW
from gcs_emulator import FakeGCS


@dataclass
class BigQueryStack:
    gcs: FakeGCS
    bq: BigQueryEmulator

    def env(self, prefix: str, bucket: str = "lake") -> dict[str, str]:
        """TRACKWAY_* and connection variables for one isolated pipeline on the emulators."""
        # One connection id per emulator: ObjectStoragePath caches its filesystem per (protocol, conn_id)
        # for the life of the process, so a reused id would keep talking to an earlier, stopped server.
        conn_id = f"trackway_gcs_{self.gcs.port}"
        return {
            "TRACKWAY_RAW_URL": f"gs://{bucket}/{prefix}",
            "TRACKWAY_RAW_CONN_ID": conn_id,
            # Anonymous: the emulator checks no credentials. Production gives a key or uses ADC.
            f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(
                {
                    "conn_type": "google_cloud_platform",
                    "extra": {"gcs.endpoint": self.gcs.endpoint, "project": PROJECT, "is_anonymous": True},
                }
            ),
            "TRACKWAY_WAREHOUSE_URL": f"bigquery://{PROJECT}/{prefix}",
            "TRACKWAY_BIGQUERY_API_ENDPOINT": self.bq.endpoint,
            "STORAGE_EMULATOR_HOST": self.gcs.endpoint,
            "GOOGLE_CLOUD_PROJECT": PROJECT,
        }


@contextlib.contextmanager
def bigquery_stack(workdir: Path) -> Iterator[BigQueryStack]:
    _require_the_bigquery_marker()
    gcs = FakeGCS(root=workdir / "gcs").start()
    bq = None
    try:
        gcs.create_bucket("lake")
        bq = BigQueryEmulator(gcs.root, workdir / "bqemulator.log").start()
        yield BigQueryStack(gcs, bq)
    finally:
        if bq is not None:
            bq.stop()
        gcs.stop()


def _require_the_bigquery_marker() -> None:
    """Tests on the emulator run in `make test-bigquery`, not `make test`: one left unmarked fails, not drifts."""
    item = getattr(sys.modules.get("conftest"), "RUNNING", {}).get("item")
    if item is not None and item.get_closest_marker("bigquery") is None:
        raise RuntimeError(
            f"{item.nodeid} starts the BigQuery emulator but is not marked bigquery: add @pytest.mark.bigquery "
            "(or pytest.param(..., marks=pytest.mark.bigquery)), so that it runs in `make test-bigquery`"
        )


def insert_raw_rows(target, rows: list[tuple]) -> None:
    """raw.events_raw rows (dbt_helpers.raw_row) in one INSERT: each query is a job on BigQuery."""
    from trackway.warehouse import open_warehouse

    head, values = INSERT_RAW.split(" values ")
    placeholders = ", ".join([values.replace("%s", "?")] * len(rows))
    with open_warehouse(target) as wh:
        wh.query(f"{head} values {placeholders}", [value for row in rows for value in row])
