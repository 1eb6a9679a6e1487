"""Raw sources other systems already write: where their objects are, and how records become rows.

Layouts (see adr/0008-issue6-raw-source-layouts.md):

* ``trackway``   -- ``<url>events/dt=YYYY-MM-DD/hour=HH/``, the collector's own.
* ``firehose``   -- Kinesis Data Firehose's ``<url>YYYY/MM/DD/HH/``; records are JSON objects
  concatenated with no delimiter, or one per line, or both.
* ``segment-s3`` -- Segment's S3 destination, ``<url>segment-logs/<source-id>/<day-in-ms>/``,
  one folder per received day; each hourly run loads the day's objects the ledger lacks.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any

from airflow.sdk import ObjectStoragePath

from trackway.config import Source
from trackway.load.partitions import is_data_object, partition_path

# A record longer than this, or a corrupt stretch, is cut here so memory stays bounded.
MAX_RECORD_CHARS = 8 * 1024 * 1024
_CHUNK = 1024 * 1024
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def hour_folders(source: Source, hour: datetime) -> list[str]:
    """Folders (relative to the source URL) that hold the objects received in ``hour``."""
    if source.layout == "trackway":
        return [f"events/{partition_path(hour)}"]
    if source.layout == "firehose":
        return [f"{hour:%Y/%m/%d/%H}"]
    raise ValueError(f"layout {source.layout} has no hour folders")


def list_source_objects(
    source: Source, hours: list[datetime], interval_hours: set[datetime]
) -> list[tuple[ObjectStoragePath, bool]]:
    """(object, in the interval) for every data object of ``hours``, in a stable order."""
    root = ObjectStoragePath(source.url.rstrip("/") + "/", conn_id=source.conn_id)
    found: list[tuple[ObjectStoragePath, bool]] = []
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


def json_path(record: dict, path: str) -> Any:
    """The value at a simple JSONPath (``$.user.id``, ``$.items[0].sku``), or None."""
    value: Any = record
    for name, index in _PATH_PART.findall(path[2:]):
        if name and isinstance(value, dict):
            value = value.get(name)
        elif index and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            return None
    return value


def derived_message_id(source: Source, raw: str) -> str:
    """Deterministic: the same record delivered twice (Firehose is at-least-once) gets the same id."""
    return "derived-" + hashlib.sha256(f"{source.name}\n{raw}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


def firehose_records(body: IO[bytes]) -> Iterator[tuple[str, str | None]]:
    """Split concatenated (and/or newline-delimited) JSON into (text, None) records.

    The decoder finds each record's end, so ``}{`` inside a string is harmless. A stretch
    that does not parse becomes one record with a reason, and splitting resumes at the
    next ``{`` that starts a valid object.
    """
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")
    buf, pos, eof = "", 0, False

    def fill() -> bool:
        nonlocal buf, pos, eof
        chunk = body.read(_CHUNK)
        if not chunk:
            eof = True
            buf, pos = buf[pos:] + utf8.decode(b"", final=True), 0
            return False
        buf, pos = buf[pos:] + utf8.decode(chunk), 0
        return True

    while True:
        while pos < len(buf) and buf[pos] in " \t\r\n":
            pos += 1
        if pos >= len(buf):
            if eof:
                return
            fill()
            continue
        try:
            _, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as exc:
            if not eof and len(buf) - pos < MAX_RECORD_CHARS:
                fill()  # perhaps the record goes on in the next chunk
                continue
            resume = _next_record_start(decoder, buf, pos + 1)
            yield buf[pos:resume], f"invalid JSON: {exc.msg} (a stretch of {resume - pos} characters)"
            pos = resume
            continue
        if end >= len(buf) and not eof:
            fill()  # a bare number or literal could go on; objects end at '}' anyway
            continue
        yield buf[pos:end], None
        pos = end


def _next_record_start(decoder: json.JSONDecoder, buf: str, start: int) -> int:
    """The first position after ``start`` where a '{' begins an object that parses; the end if none."""
    candidate = buf.find("{", start)
    while candidate != -1:
        try:
            decoder.raw_decode(buf, candidate)
            return candidate
        except json.JSONDecodeError:
            candidate = buf.find("{", candidate + 1)
    return len(buf)


def map_record(
    values: list[str | None],
    record: dict | None,
    raw: str,
    source: Source,
    columns: list[str],
    received_at: str | None,
    as_text: Any,
) -> list[str | None]:
    """Apply a source's field mapping and defaults to one row's text columns (events_raw only)."""
    index = {c: n for n, c in enumerate(columns)}
    if record is not None:
        for column, path in source.fields:
            values[index[column]] = as_text(json_path(record, path))
    else:
        return values
    if "message_id" in index and values[index["message_id"]] is None:
        values[index["message_id"]] = derived_message_id(source, raw)
    if "type" in index and values[index["type"]] is None and source.type:
        values[index["type"]] = source.type
    if "source_id" in index and values[index["source_id"]] is None:
        values[index["source_id"]] = source.name
    if "received_at" in index and values[index["received_at"]] is None and received_at:
        values[index["received_at"]] = received_at
    return values
