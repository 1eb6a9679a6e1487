"""Micro-batch mode (TRACKWAY_PIPELINE_MODE=micro_batch; adr/0033-micro-batch-freshness.md).

* ``NewRawObjectsTrigger`` watches the raw store from Airflow's triggerer (an
  ``AssetWatcher``): each time objects appear in the last two hours' partitions,
  the ``raw.objects`` asset gets an event and events_microbatch runs;
* ``MicroBatchLoadOperator`` loads what the ledger lacks in those hours, without
  the 7-day sweep (events_load does it on the hour), and publishes
  ``raw.events_raw`` only when it loaded something;
* events_transform stays the only transform DAG (one run at a time, the next
  consuming every asset event that arrived meanwhile): a run triggered only by
  micro-batch loads builds the models behind analytics.events and
  analytics.sessions in one dbt invocation; any other run (the hourly load,
  a backfill, by hand) builds everything, task by task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from trackway.config import Settings
from trackway.orchestration.assets import EVENTS_RAW
from trackway.orchestration.load_operator import LoadRawObjectsOperator

log = logging.getLogger(__name__)

#: How often the triggerer lists the last two hours' partitions (two listings per stream).
POLL_SECONDS = 5.0
#: What a micro-batch transform builds: what analysts read first; the rest is built hourly.
FRESH_SELECT = ("+events", "+sessions")
#: The asset event's ``extra["mode"]`` of a micro-batch load.
MICRO_BATCH = "micro_batch"


class NewRawObjectsTrigger(BaseEventTrigger):
    """Fires whenever an object appears in the current or previous hour's partitions (runs in the triggerer).

    It starts with nothing seen, so the first listing after a (re)start fires once if
    the hours hold objects: a no-op load at worst (the ledger), never a missed object.
    """

    def __init__(self, poll_seconds: float = POLL_SECONDS) -> None:
        super().__init__()
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{__name__}.NewRawObjectsTrigger", {"poll_seconds": self.poll_seconds})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        seen: frozenset[tuple[str, int]] = frozenset()
        while True:
            try:
                found = await asyncio.to_thread(_list_recent)  # imports and listings off the triggerer's loop
            except Exception as exc:  # an object-store outage: keep watching; the hourly load sweeps anyway
                log.warning("micro-batch watcher: could not list the raw store (%s: %s)", type(exc).__name__, exc)
            else:
                new = found - seen
                if new:
                    yield TriggerEvent({"new_objects": len(new), "listed_at": datetime.now(UTC).isoformat()})
                seen = found
            await asyncio.sleep(self.poll_seconds)


def _list_recent() -> frozenset[tuple[str, int]]:
    from trackway.config import load_settings
    from trackway.load.recent import recent_objects

    return recent_objects(load_settings())


def raw_objects_asset() -> Any:
    """The collector's raw objects, watched from the triggerer: events_microbatch's schedule."""
    from airflow.sdk import Asset, AssetWatcher

    return Asset(
        name="raw.objects",
        uri="trackway://raw/objects",
        group="trackway",
        watchers=[AssetWatcher(name="new_raw_objects", trigger=NewRawObjectsTrigger())],
    )


class MicroBatchLoadOperator(LoadRawObjectsOperator):
    """Load the objects of the current and previous hour the ledger lacks; skipped when there were none."""

    def execute(self, context: Any) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from trackway.config import load_settings
        from trackway.load.loader import load_interval
        from trackway.rawdata.partitions import hour_floor

        hour = hour_floor(datetime.now(UTC))
        # The interval is this hour; TRACKWAY_LOAD_LOOKBACK_HOURS (1) adds the previous one, whose last
        # segments are uploaded just after the hour. No sweep: events_load sweeps 7 days on the hour.
        report = load_interval(
            load_settings(),
            hour,
            hour + timedelta(hours=1),
            triggered_by=f"airflow:{context['dag_run'].run_id}",
            sweep=False,
        )
        self._report = report.as_dict()
        if not report.objects_loaded:
            # No asset event, so no transform: the objects were loaded by an earlier run.
            raise AirflowSkipException("no object the ledger lacks: nothing to load or transform")
        context["outlet_events"][EVENTS_RAW].extra = {**report.asset_extra(), "mode": MICRO_BATCH}
        return self._report


def transform_scope(extras: Iterable[Mapping[str, Any]]) -> str:
    """``fresh`` when every triggering event is a micro-batch load's, else ``full`` (hourly, backfill, by hand)."""
    modes = [extra.get("mode") for extra in extras]
    return "fresh" if modes and all(mode == MICRO_BATCH for mode in modes) else "full"


def triggering_extras(context: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``extra`` of every asset event that triggered this run (none for a manual run)."""
    events = context.get("triggering_asset_events") or {}
    return [event.extra or {} for asset_events in events.values() for event in asset_events]


def build_fresh_models(settings: Settings) -> dict:
    """One ``dbt run`` of the models behind analytics.events and analytics.sessions (their tests run hourly).

    On DuckDB a reader (``trackway query``, health) may hold the file for a moment
    when dbt opens it: dbt is retried until TRACKWAY_DUCKDB_LOCK_WAIT_SECONDS, as
    the loader waits. Incremental models make a rerun safe.
    """
    from trackway.transform.dbt_runner import DbtBuildError, run_dbt

    args = ("--select", *FRESH_SELECT)
    deadline = time.monotonic() + settings.warehouse.duckdb_lock_wait_seconds
    while True:
        report = run_dbt(settings, "run", *args, raise_on_failure=False)
        locked = any("lock" in error.lower() for error in report.errors)
        if report.success:
            return report.as_dict()
        if not (locked and settings.transform_warehouse.kind == "duckdb" and time.monotonic() < deadline):
            raise DbtBuildError("dbt run of the fresh models failed:\n  " + "\n  ".join(report.errors))
        log.info("the DuckDB warehouse is held by another process; retrying the fresh models in 1 s")
        time.sleep(1)
