"""OpenLineage for events_load: the raw prefixes it read and the raw tables it wrote, with counts.

Airflow's OpenLineage provider asks the load operator for this when the task
completes (``get_openlineage_facets_on_complete``). Dataset names follow the
OpenLineage naming spec, and the warehouse tables are named exactly as dbt's
OpenLineage processor names them (what Cosmos's tasks emit), so a lineage
backend joins "raw objects -> raw.events_raw" to "raw.events_raw -> the models".
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlparse

from trackway.config import Settings, WarehouseTarget
from trackway.rawdata.schema import EVENTS_QUARANTINE, EVENTS_RAW, RAW_SCHEMA


def url_dataset(url: str) -> tuple[str, str]:
    """(namespace, name) of an object-store prefix: file:///p -> ("file", "/p"), s3://b/k -> ("s3://b", "k")."""
    parsed = urlparse(url)
    path = unquote(parsed.path)
    if parsed.scheme == "file":
        return "file", path
    return f"{parsed.scheme}://{parsed.netloc}", path.lstrip("/")


def table_dataset(target: WarehouseTarget, schema: str, table: str) -> tuple[str, str]:
    """(namespace, name) of a warehouse table, as dbt's OpenLineage processor gives them for this target."""
    if target.kind == "duckdb":
        assert target.duckdb_path is not None
        return f"duckdb://{target.duckdb_path}", f"{target.duckdb_path.stem}.{schema}.{table}"
    if target.kind == "bigquery":
        return "bigquery", f"{target.project}.{target.dataset(schema)}.{table}"
    return f"postgres://{target.host or 'localhost'}:{target.port or 5432}", f"{target.database}.{schema}.{table}"


def load_lineage(settings: Settings, report: dict | None) -> Any:
    """The OperatorLineage of one load: inputs with their objects, bytes and rows; outputs with rows written.

    ``report`` is ``LoadReport.as_dict()``; None (the load failed before it had
    one) still names the datasets, without counts.
    """
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.generated.input_statistics_input_dataset import InputStatisticsInputDatasetFacet
    from openlineage.client.generated.output_statistics_output_dataset import OutputStatisticsOutputDatasetFacet

    tallies: dict[str, dict[str, int]] = (report or {}).get("inputs") or {settings.events_url: {}}
    inputs = []
    for root, tally in sorted(tallies.items()):
        namespace, name = url_dataset(root)
        facets: dict[str, Any] = {}
        if tally:
            facets["inputStatistics"] = InputStatisticsInputDatasetFacet(
                rowCount=tally["rows"], size=tally["bytes"], fileCount=tally["objects"]
            )
        inputs.append(InputDataset(namespace=namespace, name=name, inputFacets=facets))

    written = {EVENTS_RAW: (report or {}).get("rows_loaded")}
    if settings.quarantine_url in tallies:
        written[EVENTS_QUARANTINE] = (report or {}).get("quarantined_rows")
    outputs = []
    for table, rows in written.items():
        namespace, name = table_dataset(settings.warehouse, RAW_SCHEMA, table)
        written_facets: dict[str, Any] = {}
        if rows is not None:
            written_facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(rowCount=rows)
        outputs.append(OutputDataset(namespace=namespace, name=name, outputFacets=written_facets))
    return OperatorLineage(inputs=inputs, outputs=outputs)
