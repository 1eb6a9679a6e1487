"""Rewrite raw objects line by line: verified, then atomically replaced, old versions removed.

Erasure blanks the lines of erased subjects; retention (next) will sanitise old lines the
same way. An edited line becomes what ``edit`` returns (``b""``: a blank line), so every
other line keeps its line number and the rows already in raw.events_raw still point at
the right line; the loader skips blank lines. Before the new object replaces the old one
it is read back whole (gzip integrity, CRC) and its line counts are checked.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, cast

import orjson

from trackway.objectstore import ObjectStore
from trackway.rawdata.lines import GZIP_MAGIC, guarded, read_head
from trackway.rawdata.records import object_fingerprint
from trackway.subjects.sets import SubjectMatcher

log = logging.getLogger(__name__)

#: The collector's own gzip level (collector/uploader.py): rewrites cost what uploads cost.
COMPRESS_LEVEL = 1
#: What an edit returns: the new line (b"" blanks it), or None to keep the line as it is.
Edit = Callable[[bytes], "bytes | None"]


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


def erasing(matcher: SubjectMatcher) -> Edit:
    """The edit that blanks every line of a filtered subject (events and quarantine records alike)."""

    def edit(line: bytes) -> bytes | None:
        if not line.strip():
            return None
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None  # not JSON: names nobody the loader could attribute
        return b"" if matcher.drops_event(obj) else None

    return edit


def rewrite_object(store: ObjectStore, key: str, edit: Edit, *, dry_run: bool = False) -> Rewritten:
    """Apply ``edit`` to every line of ``store``'s object ``key``; replace it only when a line changed."""
    started = time.perf_counter()
    result = Rewritten(key)
    with tempfile.TemporaryDirectory(prefix="trackway-rewrite-") as tmp:
        new_path = os.path.join(tmp, "new")
        with contextlib.closing(store.open(key)) as raw:
            source = guarded(cast(IO[bytes], raw), store.url_for(key))
            compressed = read_head(source).startswith(GZIP_MAGIC)
            reader = cast(IO[bytes], gzip.GzipFile(fileobj=source, mode="rb")) if compressed else source
            with open(new_path, "wb") as out_file:
                writer: IO[bytes] = (
                    cast(
                        IO[bytes],
                        gzip.GzipFile(filename="", mode="wb", fileobj=out_file, mtime=0, compresslevel=COMPRESS_LEVEL),
                    )
                    if compressed
                    else out_file
                )
                try:
                    blanks = _copy(reader, writer, edit, result)
                except (EOFError, OSError, zlib.error) as exc:
                    raise RewriteError(f"{store.url_for(key)} is damaged ({exc}); not rewritten") from exc
                finally:
                    if writer is not out_file:
                        writer.close()
        if result.edited and not dry_run:
            _verify(new_path, compressed, result, blanks)
            store.put_file(key, new_path)
            result.replaced = True
            result.fingerprint, result.size = object_fingerprint(store.stat(key))
            result.old_versions_removed = store.delete_old_versions(key)
    result.seconds = time.perf_counter() - started
    return result


def _copy(reader: IO[bytes], writer: IO[bytes], edit: Edit, result: Rewritten) -> int:
    """Copy lines through ``edit``; returns how many blank lines the new object has."""
    blanks = 0
    for line in reader:
        result.lines += 1
        result.bytes_read += len(line)
        ending = b"\n" if line.endswith(b"\n") else b""
        body = line[: len(line) - len(ending)]
        new = edit(body)
        if new is not None and new != body:
            result.edited += 1
            body = new
        if not body.strip():
            blanks += 1
        writer.write(body + ending)
    return blanks


def _verify(path: str, compressed: bool, result: Rewritten, blanks: int) -> None:
    """Read the new object back whole: readable to the end (gzip CRC), same line count, same blank lines."""
    lines = found_blanks = 0
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as body:
            for line in body:
                lines += 1
                found_blanks += not line.strip()
    except (EOFError, OSError, zlib.error) as exc:
        raise RewriteError(
            f"the rewritten copy of {result.key} does not read back ({exc}); the object is unchanged"
        ) from exc
    if lines != result.lines or found_blanks != blanks:
        raise RewriteError(
            f"the rewritten copy of {result.key} has {lines} lines ({found_blanks} blank), expected {result.lines} "
            f"({blanks} blank); the object is unchanged"
        )
