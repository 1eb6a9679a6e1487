"""What the micro-batch watcher looks at: the objects of the current and the previous hour's partitions.

Two prefix listings per stream (events and quarantine) and no request per object,
so polling every few seconds stays cheap on S3 and GCS; older partitions are the
hourly load's sweep (adr/0018, adr/0033).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trackway.config import Settings
from trackway.load.paths import storage_path
from trackway.rawdata.partitions import hour_floor, is_data_object, partition_path


def recent_objects(settings: Settings, now: datetime | None = None) -> frozenset[tuple[str, int]]:
    """(key, size) of every data object under the last two hours' partitions of the collector's layout."""
    hour = hour_floor(now or datetime.now(UTC))
    found: set[tuple[str, int]] = set()
    for url in (settings.events_url, settings.quarantine_url):
        root = storage_path(url, settings.raw_conn_id)
        root.fs.invalidate_cache()  # fsspec caches listings forever (s3fs, gcsfs)
        base = root.path.rstrip("/")
        for h in (hour - timedelta(hours=1), hour):
            try:
                listing = root.fs.find(f"{base}/{partition_path(h)}/", detail=True)
            except FileNotFoundError:
                continue
            for key, info in listing.items():
                if info.get("type", "file") == "file" and is_data_object(key.rsplit("/", 1)[-1]):
                    found.add((key, int(info.get("size") or 0)))
    return frozenset(found)
