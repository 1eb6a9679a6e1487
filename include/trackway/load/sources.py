"""Raw sources other systems already write: where their objects are, and how records become rows.

Layouts (see adr/0010-raw-source-layouts.md):

* ``trackway``   -- ``<url>events/dt=YYYY-MM-DD/hour=HH/``, the collector's own.
* ``firehose``   -- Kinesis Data Firehose's ``<url>YYYY/MM/DD/HH/``; records are JSON objects
  concatenated with no delimiter, or one per line, or both.
* ``segment-s3`` -- Segment's S3 destination, ``<url>segment-logs/<source-id>/<day-in-ms>/``,
  one folder per received day; each hourly run loads the day's objects the ledger lacks.
"""

from __future__ import annotations

from datetime import UTC, datetime

from trackway.config import Source
from trackway.load.paths import RawPath, storage_path
from trackway.rawdata.partitions import is_data_object, partition_path


def hour_folders(source: Source, hour: datetime) -> list[str]:
    """Folders (relative to the source URL) that hold the objects received in ``hour``."""
    if source.layout == "trackway":
        return [f"events/{partition_path(hour)}"]
    if source.layout == "firehose":
        return [f"{hour:%Y/%m/%d/%H}"]
    raise ValueError(f"layout {source.layout} has no hour folders")


def list_source_objects(
    source: Source, hours: list[datetime], interval_hours: set[datetime]
) -> list[tuple[RawPath, bool]]:
    """(object, in the interval) for every data object of ``hours``, in a stable order."""
    root = storage_path(source.url.rstrip("/") + "/", source.conn_id)
    found: list[tuple[RawPath, bool]] = []
    if source.layout == "segment-s3":
        days = sorted({h.replace(hour=0) for h in hours})
        interval_days = {h.replace(hour=0) for h in interval_hours}
        logs = root / "segment-logs"
        if not logs.exists():
            return []
        for source_dir in sorted((p for p in logs.iterdir() if p.is_dir()), key=str):
            for day in days:
                folder = source_dir / str(int(day.timestamp() * 1000))
                if folder.exists():
                    objects = sorted((p for p in folder.iterdir() if p.is_file() and is_data_object(p.name)), key=str)
                    found.extend((p, day in interval_days) for p in objects)
        return found
    for hour in hours:
        for relative in hour_folders(source, hour):
            folder = root / relative
            if folder.exists():
                objects = sorted((p for p in folder.iterdir() if p.is_file() and is_data_object(p.name)), key=str)
                found.extend((p, hour in interval_hours) for p in objects)
    return found


def arrival_time(stat: dict, fallback: datetime) -> str:
    """receivedAt for records without one: the object's LastModified, else its partition's hour."""
    moment = stat.get("LastModified") or stat.get("mtime") or stat.get("updated")
    if isinstance(moment, (int, float)):
        moment = datetime.fromtimestamp(moment, UTC)
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            moment = None
    if not isinstance(moment, datetime):
        moment = fallback
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
