"""Build chosen dbt models again, over a window of raw hours or (confirmed) from all of raw.

Triggered by hand (Trigger with params). ``select`` is a dbt node selection (empty:
the whole project); ``from_hour``..``to_hour`` (UTC, both included) are the hours
whose raw rows the incremental models read again; ``full_refresh`` rebuilds the
selected models from all of raw and needs ``confirm_full_refresh`` set to
"FULL REFRESH". See docs/operations.md#reprocess-the-models.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from trackway.orchestration.assets import ANALYTICS_EVENTS
from trackway.orchestration.dag_defaults import dag_defaults, deadline_alert

HOUR = r"^$|^\d{4}-\d{2}-\d{2}[T ]\d{2}(:\d{2}(:\d{2})?)?(Z|[+-]\d{2}:?\d{2})?$"


@dag(
    dag_id="events_reprocess",
    schedule=None,
    params={
        "select": Param(
            "",
            type="string",
            title="dbt models",
            description="dbt node selection, e.g. +events (events and what it reads) or events+ sessions; "
            "empty: the whole project",
        ),
        "from_hour": Param(
            "",
            type="string",
            pattern=HOUR,
            title="From hour (UTC)",
            description="First hour whose raw rows are read again, e.g. 2026-12-02T06; empty only with full refresh",
        ),
        "to_hour": Param(
            "", type="string", pattern=HOUR, title="To hour (UTC)", description="Last hour, included; empty: now"
        ),
        "full_refresh": Param(
            False, type="boolean", title="Full refresh", description="Rebuild the selected models from all of raw"
        ),
        "confirm_full_refresh": Param(
            "",
            type="string",
            title="Confirm full refresh",
            description="Type FULL REFRESH: the tables are replaced, and are empty or partial while it runs",
        ),
    },
    tags=["trackway", "transform", "dbt"],
    deadline=deadline_alert(),  # a run still going TRACKWAY_DAG_DEADLINE_MINUTES after queued alerts
    doc_md=__doc__,
    **dag_defaults(),
)
def events_reprocess():
    @task(outlets=[ANALYTICS_EVENTS])
    def reprocess(params=None) -> dict:
        from trackway.orchestration.reprocess import run_from_params

        return run_from_params(params)

    reprocess()


events_reprocess()
