"""What a backfill of [start, end) would do, hour by hour, read from the object store and the ledger.

``trackway backfill --dry-run`` prints it before anything is loaded: the on-call
engineer sees how many objects each hour holds, how many are loaded already,
how many a backfill would load, and which the ledger marks as damaged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from trackway.config import Settings
from trackway.load.loader import current_fingerprint, list_interval_objects, object_url
from trackway.rawdata.partitions import hours_between
from trackway.rawdata.schema import LOADED_OBJECTS, RAW_SCHEMA
from trackway.warehouse import open_warehouse


@dataclass
class HourPlan:
    hour: str  # YYYY-MM-DDTHH, or "source <name>" for a sources-file source (no hour partitions)
    found: int = 0
    loaded: int = 0  # in the ledger with the same fingerprint: skipped
    changed: int = 0  # in the ledger with another fingerprint (rewritten since): loaded again
    to_load: int = 0  # not in the ledger
    damaged: int = 0  # in the ledger with an object_error

    @property
    def will_load(self) -> int:
        return self.changed + self.to_load


def backfill_plan(settings: Settings, start: datetime, end: datetime) -> list[HourPlan]:
    """Per hour of [start, end): objects found, already loaded, to load and damaged (nothing is written)."""
    plans = {f"{h:%Y-%m-%dT%H}": HourPlan(f"{h:%Y-%m-%dT%H}") for h in hours_between(start, end)}
    _, listed = list_interval_objects(settings, start, end)
    items = [item for item in listed if item.in_interval]
    urls = [object_url(item.path) for item in items]
    with open_warehouse(settings.read_warehouse, read_only=True) as wh:
        has_ledger = wh.table_exists(RAW_SCHEMA, LOADED_OBJECTS)
        known = wh.loaded_fingerprints(urls) if has_ledger else {}
        damaged = _damaged(wh, urls) if has_ledger else set()
    for item, url in zip(items, urls, strict=True):
        key = f"{item.hour:%Y-%m-%dT%H}" if item.hour else f"source {item.source.name if item.source else '?'}"
        plan = plans.setdefault(key, HourPlan(key))
        plan.found += 1
        if url not in known:
            plan.to_load += 1
        elif known[url] == current_fingerprint(item):
            plan.loaded += 1
        else:
            plan.changed += 1
        if url in damaged:
            plan.damaged += 1
    return list(plans.values())


def _damaged(wh, urls: Iterable[str]) -> set[str]:
    wanted = set(urls)
    if not wanted:
        return set()
    rows = wh.query(f"SELECT source_object FROM {RAW_SCHEMA}.{LOADED_OBJECTS} WHERE object_error IS NOT NULL")
    return {url for (url,) in rows if url in wanted}
