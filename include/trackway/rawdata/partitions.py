"""Where the raw objects of an hour live: ``events/dt=YYYY-MM-DD/hour=HH/``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta


def hour_floor(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; Trackway partitions by UTC hour")
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    """UTC hours h with start <= h < end (partial hours at either end included)."""
    hours, current = [], hour_floor(start)
    end_utc = end.astimezone(UTC)
    while current < end_utc:
        hours.append(current)
        current += timedelta(hours=1)
    return hours


def partition_path(hour: datetime) -> str:
    hour = hour_floor(hour)
    return f"dt={hour:%Y-%m-%d}/hour={hour:%H}"


def is_data_object(name: str) -> bool:
    """Skip in-flight temp files and markers (``.tmp``, ``_SUCCESS``), as Hive-style readers do."""
    return bool(name) and not name.startswith((".", "_"))


_PARTITIONED = re.compile(r"dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/([^/]+)$")


def partition_of(relative_key: str) -> tuple[datetime, str] | None:
    """(hour, object name) of a key ending in ``dt=YYYY-MM-DD/hour=HH/<name>``; None for anything else."""
    match = _PARTITIONED.search(relative_key)
    if match is None or not is_data_object(match.group(3)):
        return None
    try:
        hour = datetime.strptime(f"{match.group(1)} {match.group(2)}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    except ValueError:
        return None
    return hour, match.group(3)


# An object uploaded this long after its hour ended is "late": the collector leaves a pointer to it.
LATE_AFTER = timedelta(hours=1)
LATE_POINTER_SUFFIX = ".late.json"


def late_pointer_key(object_key: str) -> str:
    """Key (under the raw store's ``late/``) of the pointer to a late object; derived from its key, so idempotent.

    The loader sweeps recent partitions; a pointer lets it (and ``trackway status``) find a late
    object in a partition older than the sweep, in one listing of ``late/``, without scanning history.
    """
    return object_key + LATE_POINTER_SUFFIX


def is_late(hour: datetime, uploaded_at: datetime) -> bool:
    return uploaded_at >= hour_floor(hour) + timedelta(hours=1) + LATE_AFTER
