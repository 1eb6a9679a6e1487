"""Copy the product's own databases into the warehouse's `app` schema, hourly (docs/app-data.md).

One task per database declared in the sources file (`kind: database`), read when the
run starts: new and changed rows are merged on each table's primary key (dlt, adr/0023),
deleted rows are marked or removed, and schema changes are reported in the task's log
and return value. On DuckDB the sync waits its turn for the warehouse file like a load.
"""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, dag, task

from trackway.orchestration.assets import APP_DATA
from trackway.orchestration.dag_defaults import dag_defaults, deadline_alert


@dag(
    dag_id="app_sync",
    # Between events_load's hour (it starts on the hour) and pipeline_health, away from both on DuckDB's one writer.
    schedule=CronTriggerTimetable("40 * * * *", timezone="UTC"),
    tags=["trackway", "load", "app"],
    deadline=deadline_alert(),  # a run still going TRACKWAY_DAG_DEADLINE_MINUTES after queued alerts
    doc_md=__doc__,
    **dag_defaults(),
)
def app_sync():
    @task
    def declared_databases() -> list[str]:
        from trackway.config import load_settings

        return [database.name for database in load_settings().app_databases()]

    @task(outlets=[APP_DATA])
    def sync_database(name: str, outlet_events=None) -> dict:
        from trackway.config import load_settings
        from trackway.load.app_sync import sync_named

        report = sync_named(load_settings(), name)
        outlet_events[APP_DATA].extra = {"database": name, "rows": report.rows, "changes": report.lines()}
        return report.as_dict()

    sync_database.expand(name=declared_databases())


app_sync()
