"""events_load's load step as an operator, so Airflow's OpenLineage provider can ask it what it read and wrote.

A TaskFlow ``@task`` cannot answer ``get_openlineage_facets_on_complete``; this
operator does the same work (``trackway.load.loader.load_interval`` over the
run's data interval) and answers with the raw prefixes it read and the raw
tables it wrote, with objects, bytes and rows (trackway.orchestration.lineage).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from trackway.orchestration.assets import EVENTS_RAW


class LoadRawObjectsOperator(BaseOperator):
    """Load the raw objects of the run's data interval into raw.events_raw; XCom: the LoadReport as a dict."""

    ui_color = "#e8f4ea"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(outlets=[EVENTS_RAW], **kwargs)
        self._report: dict | None = None

    def execute(self, context: Any) -> dict:
        from trackway.config import load_settings
        from trackway.load.loader import load_interval

        report = load_interval(
            load_settings(),
            context["data_interval_start"],
            context["data_interval_end"],
            triggered_by=f"airflow:{context['dag_run'].run_id}",
            reload=bool(context["params"].get("reload")),
        )
        # What the run did, on the asset event (Airflow's asset view answers "what did this load do").
        context["outlet_events"][EVENTS_RAW].extra = report.asset_extra()
        self._report = report.as_dict()
        return self._report

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Called by the OpenLineage provider after ``execute`` (also when it failed: then without counts)."""
        from trackway.config import load_settings
        from trackway.orchestration.lineage import load_lineage

        return load_lineage(load_settings(), self._report)
