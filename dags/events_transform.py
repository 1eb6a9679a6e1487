"""Build analytics.events (and what dbt builds on it) whenever raw.events_raw changes."""

from __future__ import annotations

from airflow.sdk import dag, task

from trackway.assets import ANALYTICS_EVENTS, EVENTS_RAW
from trackway.dag_defaults import dag_defaults


@dag(
    dag_id="events_transform",
    schedule=[EVENTS_RAW],
    tags=["trackway", "transform", "dbt"],
    doc_md=__doc__,
    **dag_defaults(),
)
def events_transform():
    @task(outlets=[ANALYTICS_EVENTS])
    def dbt_build():
        from trackway.config import load_settings
        from trackway.transform.dbt_runner import run_dbt

        return run_dbt(load_settings(), "build").as_dict()

    dbt_build()


events_transform()
