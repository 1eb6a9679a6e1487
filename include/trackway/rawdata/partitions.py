"""Where the raw objects of an hour live: ``events/dt=YYYY-MM-DD/hour=HH/``."""

from __future__ import annotations

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
