"""What a load knows about one raw object: where it is, what reading it found, and its ledger row.

Shared by the loader, which decides what to load, and the warehouse backends,
which read and record it; neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from trackway.config import Source
from trackway.rawdata.schema import RawTable

Judge = Callable[[dict, str | None, str | None, str | None], str | None]


@dataclass(frozen=True)
class ObjectLoad:
    """One raw object's load, recorded in raw.loaded_objects: the exactly-once ledger."""

    source_object: str
    fingerprint: str
    size_bytes: int
    rows: int
    parse_errors: int
    blank_lines: int
    object_error: str | None
    load_id: str
    loaded_at: datetime
    #: Lines of erased subjects the load dropped (privacy.load_filtered); not in ``rows``.
    erased: int = 0


@dataclass(frozen=True)
class RawObject:
    """One raw object to load: where it is, how to read it, and the ledger facts about it.

    ``open`` returns a binary stream that supports ``seek`` (ObjectStoragePath and
    local files do). ``local_path`` is set when the object is a file on this machine,
    so an engine that reads files itself (DuckDB) can read it in place.
    """

    source_object: str
    fingerprint: str
    size_bytes: int
    load_id: str
    loaded_at: datetime
    open: Callable[[], IO[bytes]]
    local_path: Path | None = None
    #: An extra raw source (sources file): its layout, field mapping and defaults apply to each record.
    source: Source | None = None
    #: receivedAt for records that carry none (the object's arrival time).
    received_at: str | None = None
    #: For an extra source's records with a tracking plan: (record, type, event, source id) -> the plan's
    #: verdict as JSON text, or None (trackway.plan.verdict.record_judge).
    judge: Judge | None = None


@dataclass(frozen=True)
class LoadRun:
    load_id: str
    interval_start: datetime
    interval_end: datetime
    started_at: datetime
    finished_at: datetime
    triggered_by: str
    objects_found: int
    objects_loaded: int
    objects_skipped: int
    rows_loaded: int
    parse_errors: int


@dataclass
class ObjectStats:
    """What reading one object found: rows written, bad lines, blank lines, damage."""

    rows: int = 0
    parse_errors: int = 0
    blank_lines: int = 0
    object_error: str | None = None
    erased: int = 0  # lines of erased subjects dropped (trackway.warehouse.base.Warehouse.drop_erased)


def object_fingerprint(stat: dict) -> tuple[str, int]:
    """The load ledger's fingerprint of an object, from its listing or stat metadata, and its size.

    GCS: the content's md5 (its etag also changes on metadata-only updates); S3: the ETag;
    local files: size alone, as they are written once under unique names. The loader
    compares it with the ledger; an erasure rewrite records the rewritten object's.
    """
    size = int(stat.get("size") or 0)
    etag = stat.get("md5Hash") or stat.get("ETag") or stat.get("etag") or ""
    return f"size={size};etag={str(etag).strip(chr(34))}", size


def ledger_row(obj: RawObject, stats: ObjectStats) -> ObjectLoad:
    return ObjectLoad(
        source_object=obj.source_object,
        fingerprint=obj.fingerprint,
        size_bytes=obj.size_bytes,
        rows=stats.rows,
        parse_errors=stats.parse_errors,
        blank_lines=stats.blank_lines,
        object_error=stats.object_error,
        load_id=obj.load_id,
        loaded_at=obj.loaded_at,
        erased=stats.erased,
    )


@dataclass(frozen=True)
class PendingObject:
    """An object a warehouse loads in place (BigQuery from gs://): its URL, ledger fingerprint and target table."""

    url: str
    fingerprint: str
    size_bytes: int
    table: RawTable
    # A --reload of a version the ledger already has: loaded again. Otherwise the load is
    # skipped when, by the time it commits, the ledger has this version (a concurrent load's).
    replace: bool = False
