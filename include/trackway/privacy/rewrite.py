"""Rewrite raw objects line by line: verified, then atomically replaced, old versions removed.

Erasure blanks the lines of erased subjects; retention (next) will sanitise old lines the
same way. An edited line becomes what its ``LineEdit`` returns (``b""``: a blank line), so
every other line keeps its line number and the rows already in raw.events_raw still point
at the right line; the loader skips blank lines. Before the new object replaces the old
one it is read back whole: gzip integrity (its CRC), the same number of lines, and the bytes
intended (CRC-32 of what was written against what reads back).

An edit may name the lines it could change (``LineEdit.candidates``) so the rest of the
object is copied without being parsed: the erasure edit finds the ids of a whole object
with one regular expression, and only lines holding a filtered subject's id are parsed.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import re
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, cast

import orjson
from isal import igzip

from trackway.objectstore import ObjectStore
from trackway.rawdata.gunzip import open_gzip
from trackway.rawdata.lines import GZIP_MAGIC, guarded, read_head
from trackway.rawdata.records import object_fingerprint
from trackway.subjects.sets import SubjectMatcher, id_text

log = logging.getLogger(__name__)

#: The collector's own gzip (ISA-L, level 1; collector/uploader.py): rewrites cost what uploads cost.
COMPRESS_LEVEL = 1
_CHUNK = 1 << 20
#: Objects up to this size (decompressed) are edited in memory; larger ones line by line as a stream.
IN_MEMORY_BYTES = 512 * 1024 * 1024
# The prefilter's expressions: each id key as JSON writers put it (compact like the collector's, or with a
# space after the colon), with its scalar value (a string with its escapes, a number, null, true, false). Every occurrence of a key must be
# one of these, or the object is read line by line.
_KEYS = (b'"userId"', b'"anonymousId"', b'"previousId"')
_ID_VALUE = re.compile(
    rb'"(?:userId|anonymousId|previousId)"[ \t]*:[ \t]*("(?:[^"\\\n]|\\.)*"|-?[0-9][0-9.eE+-]*|null|true|false)'
)
#: Up to this many filtered ids in one object, their lines are found with bytes.find; beyond, by one regex pass.
_FIND_AT_MOST = 16


#: What a rewrite does to each line: the new line (``b""`` blanks it), or None to keep it. It may also
#: have ``candidates(data) -> list[(start, end)] | None``: the only lines it could change (None: all).
LineEdit = Callable[[bytes], "bytes | None"]


class RewriteError(RuntimeError):
    """An object could not be rewritten safely (damaged, or the new copy failed its checks); it is left as it was."""


@dataclass
class Rewritten:
    key: str
    lines: int = 0
    edited: int = 0
    bytes_read: int = 0  # decompressed
    size: int = 0  # stored size of the new object
    fingerprint: str | None = None  # the load ledger's fingerprint of the new object
    old_versions_removed: int = 0
    replaced: bool = False
    seconds: float = 0.0


class Erasing:
    """The edit that blanks every line of a filtered subject (events and quarantine records alike)."""

    def __init__(self, matcher: SubjectMatcher) -> None:
        self.matcher = matcher
        self._positive: set[bytes] = set()  # ids as written (JSON strings) of filtered subjects
        self._negative: set[bytes] = set()  # ... of everybody else

    def __call__(self, line: bytes) -> bytes | None:
        if not line or line.isspace():
            return None
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None  # not JSON: names nobody the loader could attribute
        return b"" if self.matcher.drops_event(obj) else None

    def candidates(self, data: bytes) -> list[tuple[int, int]] | None:
        """Lines holding the id of a filtered subject; None when the object needs every line parsed.

        Exact as a prefilter: every occurrence of an id key must be a compact ``"key":"value"`` the
        expressions read (else None: a space, a number, the key as a value...), and a ``\\u``
        escape anywhere could spell a key (``"user\\u0049d"``), so such objects are read line by line.
        """
        if b"\\u" in data:
            return None
        found = _ID_VALUE.findall(data)
        if len(found) != sum(data.count(key) for key in _KEYS):
            return None
        raws = set(found)
        if len(self._negative) + len(self._positive) > 1_000_000:
            self._negative.clear()
            self._positive.clear()
        for raw in raws - self._negative - self._positive:  # set arithmetic in C: Python sees new ids only
            (self._positive if self._filtered(raw) else self._negative).add(raw)
        named = raws & self._positive
        if not named:
            return []
        lines: dict[int, int] = {}
        for position in _positions(data, named):
            start = data.rfind(b"\n", 0, position) + 1
            if start not in lines:
                end = data.find(b"\n", position)
                lines[start] = len(data) if end < 0 else end
        return sorted(lines.items())

    def _filtered(self, raw: bytes) -> bool:
        try:
            plain = raw[:1] == b'"' and b"\\" not in raw
            text = id_text(raw[1:-1].decode("utf-8") if plain else orjson.loads(raw))
        except (orjson.JSONDecodeError, UnicodeDecodeError):
            return False  # not text the loader would store as an id either
        return text is not None and self.matcher.filtered(text) is not None


def _positions(data: bytes, named: set[bytes]) -> Iterator[int]:
    """Where the named ids occur in ``data``: their lines (and only theirs) are parsed."""
    if len(named) <= _FIND_AT_MOST:
        for raw in named:
            at = data.find(raw)
            while at >= 0:
                yield at
                at = data.find(raw, at + len(raw))
        return
    for match in _ID_VALUE.finditer(data):
        if match.group(1) in named:
            yield match.start()


def erasing(matcher: SubjectMatcher) -> Erasing:
    return Erasing(matcher)


def all_lines(data: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of every line of ``data``, line breaks excluded."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        yield start, end
        start = end + 1


def _edited(data: bytes, edit: LineEdit, result: Rewritten) -> Iterator[bytes | memoryview]:
    """The object's bytes with its edited lines replaced, as views (untouched stretches are not copied)."""
    candidates = getattr(edit, "candidates", None)
    spans = candidates(data) if candidates is not None else None
    view = memoryview(data)
    previous = 0
    for start, end in all_lines(data) if spans is None else spans:
        new = edit(data[start:end])
        if new is None or new == data[start:end]:
            continue
        if b"\n" in new:
            raise RewriteError(f"the edit of line at byte {start} of {result.key} adds a line break")
        result.edited += 1
        yield view[previous:start]
        yield new
        previous = end
    yield view[previous:]


def rewrite_object(store: ObjectStore, key: str, edit: LineEdit, *, dry_run: bool = False) -> Rewritten:
    """Apply ``edit`` to the lines of ``store``'s object ``key``; replace the object only when a line changed."""
    started = time.perf_counter()
    result = Rewritten(key)
    with tempfile.TemporaryDirectory(prefix="trackway-rewrite-") as tmp:
        new_path = os.path.join(tmp, "new")
        with contextlib.closing(store.open(key)) as raw:
            source = guarded(cast(IO[bytes], raw), store.url_for(key))
            compressed = read_head(source).startswith(GZIP_MAGIC)
            reader = open_gzip(source) if compressed else source
            try:
                data = reader.read(IN_MEMORY_BYTES + 1)
                if len(data) > IN_MEMORY_BYTES:
                    raise RewriteError(f"{store.url_for(key)} is over {IN_MEMORY_BYTES} bytes decompressed")
            except (EOFError, OSError, zlib.error) as exc:
                raise RewriteError(f"{store.url_for(key)} is damaged ({exc}); not rewritten") from exc
        result.bytes_read = len(data)
        result.lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
        pieces = list(_edited(data, edit, result))  # slices of ``data`` and the edited lines: no copy
        if not result.edited or dry_run:
            result.seconds = time.perf_counter() - started
            return result
        crc = 0
        with open(new_path, "wb") as out_file:
            writer: IO[bytes] = (
                cast(
                    IO[bytes],
                    igzip.IGzipFile(filename="", mode="wb", fileobj=out_file, mtime=0, compresslevel=COMPRESS_LEVEL),
                )
                if compressed
                else out_file
            )
            try:
                for piece in pieces:
                    writer.write(piece)
                    crc = zlib.crc32(piece, crc)
            finally:
                if writer is not out_file:
                    writer.close()
        if result.edited:
            _verify(new_path, compressed, result, crc)
            store.put_file(key, new_path)
            result.replaced = True
            result.fingerprint, result.size = object_fingerprint(store.stat(key))
            result.old_versions_removed = store.delete_old_versions(key)
    result.seconds = time.perf_counter() - started
    return result


def _verify(path: str, compressed: bool, result: Rewritten, expected: int) -> None:
    """Read the new object back whole: readable to the end (gzip CRC), same lines, the intended bytes (CRC-32).

    Read by zlib (``gzip``), not by ISA-L, which wrote it: a second implementation checks the first.
    """
    crc = 0
    lines = 0
    last = b""
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as body:
            while chunk := body.read(_CHUNK):
                crc = zlib.crc32(chunk, crc)
                lines += chunk.count(b"\n")
                last = chunk
    except (EOFError, OSError, zlib.error) as exc:
        raise RewriteError(
            f"the rewritten copy of {result.key} does not read back ({exc}); the object is unchanged"
        ) from exc
    lines += 1 if last and not last.endswith(b"\n") else 0
    if lines != result.lines or crc != expected:
        raise RewriteError(
            f"the rewritten copy of {result.key} reads back as {lines} lines (expected {result.lines}) or other bytes; "
            "the object is unchanged"
        )
