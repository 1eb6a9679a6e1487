"""Turn the bytes of one raw object into raw.events_raw rows.

Nothing is dropped here: a line that is not a JSON object is kept with its
text and a ``parse_error``. Objects written by other systems may be plain or
gzip'd, truncated, or not UTF-8; each case yields rows plus a clear reason.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, cast

import orjson

from trackway.config import Source
from trackway.rawdata.gunzip import open_gzip
from trackway.rawdata.layouts import firehose_records, map_record
from trackway.rawdata.records import Judge, ObjectStats
from trackway.rawdata.schema import RAW_TEXT_FIELDS

GZIP_MAGIC = b"\x1f\x8b"
# Other compressions seen in exports from other systems: read what the stdlib can, refuse the rest loudly.
_READERS = {b"BZh": bz2.BZ2File, b"\xfd7zXZ\x00": lzma.LZMAFile}
_UNSUPPORTED = {
    b"\xff\x06\x00\x00sNaPpY": "Snappy",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"PK\x03\x04": "zip",
    b"\x04\x22\x4d\x18": "lz4",
    b"PAR1": "parquet",
}


class UnsupportedObject(ValueError):
    """The object is in a format the loader cannot read; the message names it."""


class ObjectReadError(RuntimeError):
    """Reading the object's bytes failed in transport (connection reset, timeout, a store error).

    Not damage: the object may be whole. The load of that object must fail and
    commit nothing, so a retry reads it again; it is never written to the ledger.
    Deliberately not an ``OSError``, so the content-error handler below cannot
    mistake it for a corrupt member.
    """


class _GuardedRaw(io.RawIOBase):
    """The object store's stream, with every transport failure raised as ``ObjectReadError``.

    Decompressors (gzip, bz2, xz) raise ``OSError`` subclasses for corrupt data, and
    s3fs/gcsfs/sockets raise ``OSError`` subclasses for a dropped connection: reading
    through this wrapper keeps the two apart.
    """

    def __init__(self, stream: IO[bytes], name: str) -> None:
        self._stream = stream
        self._name = name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        """Local files, s3fs and gcsfs seek: a damaged gzip member is read again by zlib (``gunzip``)."""
        try:
            return bool(self._stream.seekable())
        except Exception:
            return False

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return self._stream.seek(offset, whence)
        except Exception as exc:
            raise ObjectReadError(f"seeking in {self._name} failed: {type(exc).__name__}: {exc}") from exc

    def tell(self) -> int:
        try:
            return self._stream.tell()
        except Exception as exc:
            raise ObjectReadError(f"reading the position in {self._name} failed: {type(exc).__name__}: {exc}") from exc

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._stream.read(len(buffer))
        except Exception as exc:
            raise ObjectReadError(f"reading {self._name} failed: {type(exc).__name__}: {exc}") from exc
        n = len(data)
        buffer[:n] = data
        return n


def guarded(stream: IO[bytes], name: str) -> IO[bytes]:
    """``stream`` behind a buffer whose transport errors are ``ObjectReadError`` (peek and lines work on it)."""
    return cast(IO[bytes], io.BufferedReader(_GuardedRaw(stream, name), buffer_size=1024 * 1024))


# Escapes that PostgreSQL's JSON types refuse; flag them at load so one line cannot break dbt.
_RISKY_ESCAPE = re.compile(rb"\\u(0000|d[89a-f][0-9a-f]{2})", re.IGNORECASE)


@dataclass
class ParsedObject:
    rows: list[tuple] = field(default_factory=list)
    stats: ObjectStats = field(default_factory=ObjectStats)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _has_unstorable_string(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value or any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)
    if isinstance(value, dict):
        return any(_has_unstorable_string(k) or _has_unstorable_string(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_unstorable_string(v) for v in value)
    return False


def parse_line(line: bytes) -> tuple[str, str | None, dict | None]:
    """Return (text to store in ``raw``, parse error or None, parsed object or None)."""
    try:
        text = line.decode("utf-8")
        error = None
    except UnicodeDecodeError as exc:
        text = line.decode("utf-8", errors="backslashreplace")
        error = f"invalid UTF-8 at byte {exc.start}"
    if "\x00" in text:
        # Text columns cannot hold NUL; keep it visible as an escape.
        text = text.replace("\x00", "\\x00")
        error = error or "contains NUL bytes"
    if error:
        return text, error, None
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte-order mark (Windows exports) belongs to the file's encoding, not to the line
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return text, f"invalid JSON: {exc.msg} at column {exc.colno}", None
    except (ValueError, RecursionError) as exc:
        return text, f"invalid JSON: {exc}", None
    if not isinstance(obj, dict):
        return text, f"not a JSON object (got {type(obj).__name__})", None
    if _RISKY_ESCAPE.search(line) and _has_unstorable_string(obj):
        return text, "contains \\u0000 or an unpaired surrogate escape, which JSON columns cannot store", None
    return text, None, obj


def parse_line_fast(line: bytes) -> tuple[str, str | None, dict | None]:
    """``parse_line`` with orjson for the common case; anything unusual goes the exact, slower way.

    orjson refuses NaN, invalid UTF-8, lone surrogates and a BOM, so every line it
    cannot take is re-read by ``parse_line``, which words the reason.
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return parse_line(line)
    if not isinstance(obj, dict) or _RISKY_ESCAPE.search(line):
        return parse_line(line)
    return line.decode("utf-8"), None, obj


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    for line in stream:
        yield line.rstrip(b"\r\n")


def sniff_compression(head: bytes) -> str:
    """``gzip``, ``bz2``, ``xz`` or ``none`` from an object's first bytes; refuses what we cannot read."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    for magic, name in _UNSUPPORTED.items():
        if head.startswith(magic):
            raise UnsupportedObject(
                f"{name} objects are not supported; write gzip'd or plain NDJSON (Firehose: choose GZIP compression)"
            )
    for magic, reader in _READERS.items():
        if head.startswith(magic):
            return "bz2" if reader is bz2.BZ2File else "xz"
    return "none"


def read_head(stream: IO[bytes]) -> bytes:
    """The first bytes of a stream, leaving it where it was."""
    if hasattr(stream, "peek"):
        return stream.peek(10)[:10]
    head = stream.read(10)  # object-store files (s3fs, gcsfs) are seekable but have no peek
    stream.seek(0)
    return head


def open_decompressed(stream: IO[bytes]) -> IO[bytes]:
    """Gzip or plain, by content rather than by name: other systems name files freely."""
    kind = sniff_compression(read_head(stream))
    if kind == "gzip":
        return open_gzip(stream)
    if kind == "bz2":
        return cast(IO[bytes], bz2.BZ2File(stream, mode="rb"))
    if kind == "xz":
        return cast(IO[bytes], lzma.LZMAFile(stream, mode="rb"))
    return stream


#: What reading a decompressed body raises when its content is damaged (a truncated or corrupt member).
#: Transport failures cannot be among them: the guarded stream raises those as ObjectReadError.
CONTENT_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, lzma.LZMAError, OSError)


def open_body(stream: IO[bytes], source_object: str, stats: ObjectStats) -> IO[bytes] | None:
    """The object's decompressed body, transport errors guarded; None (and ``stats.object_error``) if unsupported."""
    try:
        return open_decompressed(guarded(stream, source_object))
    except UnsupportedObject as exc:
        stats.object_error = str(exc)
        return None


def row_values(obj: dict, text_fields: tuple[tuple[str, str], ...]) -> list[str | None]:
    get = obj.get
    # Most values are strings or absent: skip the call for them (this runs for every line on PostgreSQL).
    return [v if (v := get(key)) is None or type(v) is str else _as_text(v) for _, key in text_fields]


def iter_rows(
    stream: IO[bytes],
    stats: ObjectStats,
    *,
    source_object: str,
    load_id: str,
    loaded_at: datetime,
    text_fields: tuple[tuple[str, str], ...] = RAW_TEXT_FIELDS,
    source: Source | None = None,
    received_at: str | None = None,
    judge: Judge | None = None,
) -> Iterator[tuple]:
    """Yield one row per non-blank line, counting into ``stats`` as it goes; one line in memory at a time.

    A damaged object (bad gzip, truncated member, undecodable compression) yields what
    was readable and sets ``stats.object_error``. A transport failure raises
    ``ObjectReadError``: the caller must then commit nothing for this object.
    """
    body = open_body(stream, source_object, stats)
    if body is None:
        return
    empty: list[str | None] = [None] * len(text_fields)
    columns = [c for c, _ in text_fields]
    mapped = source is not None and text_fields == RAW_TEXT_FIELDS
    line_number = 0
    try:
        for line, split_error, parsed in _records(body, source):
            line_number += 1
            if split_error is None and not line.strip():
                stats.blank_lines += 1
                continue
            raw: str
            error: str | None
            obj: dict | None
            if split_error is not None:
                raw, error, obj = line.decode("utf-8", errors="backslashreplace"), split_error, None
            elif isinstance(parsed, dict) and not _RISKY_ESCAPE.search(line):
                raw, error, obj = line.decode("utf-8"), None, parsed  # the splitter parsed it already
            else:
                raw, error, obj = parse_line_fast(line)
            if error or obj is None:
                stats.parse_errors += 1
                values = empty
            else:
                values = row_values(obj, text_fields)
                if mapped and source is not None:
                    values = map_record(values, obj, raw, source, columns, received_at, _as_text, judge)
            stats.rows += 1
            yield (*values, raw, error, source_object, line_number, load_id, loaded_at)
    except CONTENT_ERRORS as exc:
        # A truncated or corrupt member: keep what was readable, say why the rest is missing.
        # Transport failures cannot land here: the guarded stream raises them as ObjectReadError.
        stats.object_error = f"object is truncated or corrupt after line {line_number}: {exc}"


def _records(body: IO[bytes], source: Source | None) -> Iterator[tuple[bytes, str | None, Any]]:
    """(record bytes, reason it could not be split out, parsed record if known): lines, or Firehose's JSON."""
    if source is not None and source.layout == "firehose":
        yield from firehose_records(body)
        return
    for line in _lines(body):
        yield line, None, None


def batched_rows(rows: Iterable[tuple], size: int) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def parse_object(
    stream: IO[bytes],
    *,
    source_object: str,
    load_id: str,
    loaded_at: datetime,
    text_fields: tuple[tuple[str, str], ...] = RAW_TEXT_FIELDS,
    source: Source | None = None,
    received_at: str | None = None,
    judge: Judge | None = None,
) -> ParsedObject:
    """Every row of one object, in memory: for small objects and tests; loads stream instead."""
    result = ParsedObject()
    result.rows = list(
        iter_rows(
            stream,
            result.stats,
            source_object=source_object,
            load_id=load_id,
            loaded_at=loaded_at,
            text_fields=text_fields,
            source=source,
            received_at=received_at,
            judge=judge,
        )
    )
    return result
