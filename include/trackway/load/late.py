"""Late objects: uploaded long after their partition's hour, found by the collector's pointers in ``late/``.

Every load sweeps the last ``TRACKWAY_LOAD_SWEEP_DAYS`` days of partitions, so a late
object within that horizon is loaded by the next ordinary run. One older than the
horizon would never be: the collector leaves a pointer for each late upload, and this
module finds the pointed-to objects the ledger still lacks, for the load's report, its
check task (an alert) and ``trackway status``. Reads as the loader does (the raw
connection for s3:// and gs://; no Airflow import for file://).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from trackway.config import Settings
from trackway.load.paths import storage_path
from trackway.rawdata.partitions import LATE_POINTER_SUFFIX, hour_floor, partition_of


def sweep_horizon(settings: Settings, now: datetime | None = None) -> datetime:
    """The oldest hour every load sweeps: objects of older partitions need an explicit backfill."""
    return hour_floor(now or datetime.now(UTC)) - timedelta(days=settings.load_sweep_days)


def late_objects(settings: Settings) -> list[tuple[str, datetime]]:
    """(object URL, partition hour) of every object the collector uploaded late, from its pointers.

    One listing of ``late/``: pointers exist only for uploads more than an hour after their
    partition (outages), so the prefix stays small.
    """
    late = storage_path(settings.late_url, settings.raw_conn_id)
    late.fs.invalidate_cache()
    base = late.path.rstrip("/")
    try:
        keys = late.fs.find(base + "/")
    except FileNotFoundError:
        return []
    raw_root = base.removesuffix("late").rstrip("/")
    found = []
    for key in sorted(keys):
        if not key.endswith(LATE_POINTER_SUFFIX) or not key.startswith(base + "/"):
            continue
        target = key[len(base) + 1 : -len(LATE_POINTER_SUFFIX)]
        where = partition_of(target)
        if where is not None:
            found.append((f"{late.protocol}://{raw_root}/{target}", where[0]))
    return found


def objects_beyond_sweep(
    settings: Settings, known: Callable[[list[str]], dict[str, str]], now: datetime | None = None
) -> list[tuple[str, str]]:
    """(object URL, its hour as ``YYYY-MM-DDTHH``) of late objects older than the sweep that the ledger lacks.

    No ordinary run will load them; the hour is what ``trackway load --hour`` takes.
    """
    horizon = sweep_horizon(settings, now)
    old = [(url, hour) for url, hour in late_objects(settings) if hour < horizon]
    if not old:
        return []
    loaded = known([url for url, _ in old])
    return [(url, f"{hour:%Y-%m-%dT%H}") for url, hour in old if url not in loaded]
