"""Raw sources other systems already write: where their objects are, and how records become rows.

Layouts (see adr/0010-issue6-raw-source-layouts.md):

* ``trackway``   -- ``<url>events/dt=YYYY-MM-DD/hour=HH/``, the collector's own.
* ``firehose``   -- Kinesis Data Firehose's ``<url>YYYY/MM/DD/HH/``; records are JSON objects
  concatenated with no delimiter, or one per line, or both.
* ``segment-s3`` -- Segment's S3 destination, ``<url>segment-logs/<source-id>/<day-in-ms>/``,
  one folder per received day; each hourly run loads the day's objects the ledger lacks.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

import orjson

from trackway.config import Source
from trackway.load.partitions import is_data_object, partition_path

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

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
    # Imported here: the record parsers below (used by the warehouses and plan replay) need no Airflow.
    from airflow.sdk import ObjectStoragePath

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


_BOUNDARY = re.compile(rb"\}\s*\{")
_SPACE = b" \t\r\n"


def firehose_records(body: IO[bytes]) -> Iterator[tuple[bytes, str | None, Any]]:
    """Split concatenated (and/or newline-delimited) JSON into (record, None, parsed or None) or (stretch, reason, None).

    Fast path: cut at each ``}{`` (whitespace allowed between) and let orjson confirm the
    piece is one record. When it does not (``}{`` inside a string, NaN, a corrupt
    stretch), Python's decoder finds where the record really ends; a stretch that does
    not parse becomes one item with a reason, and splitting resumes at the next ``{``
    that starts a valid object. Memory is bounded by MAX_RECORD_CHARS.
    """
    buf, pos, eof = b"", 0, False

    def fill() -> None:
        nonlocal buf, pos, eof
        chunk = body.read(_CHUNK)
        eof = not chunk
        buf, pos = buf[pos:] + chunk, 0

    while True:
        while pos < len(buf) and buf[pos] in _SPACE:
            pos += 1
        if pos >= len(buf):
            if eof:
                return
            fill()
            continue
        end, parsed = _orjson_record_end(buf, pos, eof)
        if end is None:  # the slow way: decode, then find the end (or a corrupt stretch)
            text = buf[pos:].decode("utf-8", errors="surrogateescape")
            decoder = json.JSONDecoder()
            try:
                _, chars = decoder.raw_decode(text)
                end = pos + len(text[:chars].encode("utf-8", errors="surrogateescape"))
            except json.JSONDecodeError as exc:
                if not eof and len(buf) - pos < MAX_RECORD_CHARS:
                    fill()  # perhaps the record goes on in the next chunk
                    continue
                resume = _next_record_start(decoder, text, 1)
                stop = pos + len(text[:resume].encode("utf-8", errors="surrogateescape"))
                yield buf[pos:stop], f"invalid JSON: {exc.msg} (a stretch of {stop - pos} bytes)", None
                pos = stop
                continue
            if end >= len(buf) and not eof:
                fill()
                continue
        yield buf[pos:end], None, parsed
        pos = end


def _orjson_record_end(buf: bytes, pos: int, eof: bool) -> tuple[int | None, Any]:
    """(end, parsed) of the record at ``pos`` if a ``}{`` cut (or the data's end) gives one orjson accepts."""
    match = _BOUNDARY.search(buf, pos)
    if match is not None:
        end = match.start() + 1
    elif eof:
        end = len(buf.rstrip(_SPACE))
    else:
        return None, None  # the record may go on past this chunk
    try:
        return end, orjson.loads(buf[pos:end])
    except orjson.JSONDecodeError:
        return None, None


def _next_record_start(decoder: json.JSONDecoder, text: str, start: int) -> int:
    """The first position after ``start`` where a '{' begins an object that parses; the end if none."""
    candidate = text.find("{", start)
    while candidate != -1:
        try:
            decoder.raw_decode(text, candidate)
            return candidate
        except json.JSONDecodeError:
            candidate = text.find("{", candidate + 1)
    return len(text)


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
