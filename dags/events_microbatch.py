"""Micro-batch loads (TRACKWAY_PIPELINE_MODE=micro_batch): each new raw object, seconds after the collector uploads it.

Scheduled on the raw.objects asset, whose watcher lists the last two hours'
partitions from the triggerer. One run at a time; a run loads every object the
ledger lacks, so events that arrive meanwhile go to the next. No schedule in
hourly mode. events_load still runs on the hour (its 7-day sweep, backfills).
"""

from __future__ import annotations

from airflow.sdk import dag

from trackway.config import load_settings
from trackway.orchestration.dag_defaults import dag_defaults, deadline_alert
from trackway.orchestration.freshness import MicroBatchLoadOperator, raw_objects_asset


@dag(
    dag_id="events_microbatch",
    schedule=[raw_objects_asset()] if load_settings().micro_batch else None,
    tags=["trackway", "load", "micro-batch"],
    deadline=deadline_alert(),
    doc_md=__doc__,
    **dag_defaults(),
)
def events_microbatch():
    # Publishes raw.events_raw (extra mode=micro_batch) only when it loaded something: events_transform follows.
    MicroBatchLoadOperator(task_id="load_new_objects")


events_microbatch()
