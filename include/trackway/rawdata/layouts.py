"""How records of other systems' raw files become raw.events_raw rows (pure: no I/O of its own).

Firehose concatenates JSON records with no delimiter; a source's ``fields``
mapping and defaults fill Segment's columns for records that do not use its
names (see adr/0010-raw-source-layouts.md). The loader and every
warehouse backend read records through here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from typing import IO, Any

import orjson

from trackway.config import Source
from trackway.rawdata.records import Judge
from trackway.rawdata.schema import PLAN_VERDICT_COLUMN

# A record longer than this, or a corrupt stretch, is cut here so memory stays bounded.
MAX_RECORD_CHARS = 8 * 1024 * 1024
_CHUNK = 1024 * 1024
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


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


def firehose_lines(body: IO[bytes]) -> Iterator[bytes]:
    """Concatenated JSON records as NDJSON, a chunk at a time: each ``}{`` cut (whitespace between) becomes ``}\\n{``.

    A shortcut for engines that read lines (DuckDB's native load, adr/0010): it parses
    nothing. A cut that falls inside a string leaves a piece with an unterminated string,
    which is not valid JSON, and so does any other stretch this cannot split; the caller
    must then read the object with ``firehose_records``, which finds the true ends. If
    every piece is one valid JSON object, the cuts were the records' ends, because outside
    a string ``}`` followed by ``{`` occurs only between two top-level records.
    Leading and trailing whitespace of the object is dropped, as ``firehose_records`` does.
    """
    carry, started = b"", False
    while chunk := body.read(_CHUNK):
        data = carry + chunk
        if not started:
            data = data.lstrip(_SPACE)
            started = bool(data)
        last = data.rfind(b"}")
        if last != -1 and not data[last + 1 :].strip(_SPACE):
            # A '}' then only whitespace: the next chunk may begin with the '{' of a record.
            data, carry = data[:last], data[last:]
        else:
            carry = b""
        yield _BOUNDARY.sub(b"}\n{", data)
    tail = carry.rstrip(_SPACE)
    if tail:
        yield tail + b"\n"


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
    judge: Judge | None = None,
) -> list[str | None]:
    """Apply a source's field mapping and defaults to one row's text columns (events_raw only).

    The plan verdict column is the loader's: whatever the record carries under the
    collector's key is replaced by ``judge``'s verdict, or by nothing without a plan.
    """
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
    if PLAN_VERDICT_COLUMN in index:
        verdict = None
        if judge is not None:
            verdict = judge(record, values[index["type"]], values[index["event"]], values[index["source_id"]])
        values[index[PLAN_VERDICT_COLUMN]] = verdict
    return values
