"""Gzip objects decompressed by ISA-L (python-isal), with the standard library's failure behaviour (adr/0046).

Gunzip was a quarter of a PostgreSQL load's client time (issue 20 §3); ISA-L's inflate is
about 3x zlib's. ``isal.igzip.IGzipFile`` is not a drop-in: on a truncated member it
drops up to a MiB of output that zlib's ``GzipFile`` returns before the error, and it reads
trailing garbage as a truncated member instead of stopping at the last whole one. This
reader drives ``isal_zlib.decompressobj`` member by member as ``gzip._GzipReader`` does, so:

- what was decompressed before a damaged stretch is returned before the error. ISA-L
  raises a bad checksum without the output of the call that met it (the last few hundred
  bytes of a member, or up to 64 KiB of a middle one): the reader then reads the stream
  again with zlib, when it can seek (local files, s3fs, gcsfs), and goes on from where it
  was, so a damaged object keeps exactly the lines the standard library keeps;
- the errors are the standard library's: ``EOFError`` for a truncated member,
  ``gzip.BadGzipFile`` for a bad header, checksum or trailing garbage (zero padding
  between or after members is skipped, as gzip does);
- output per read is bounded by the caller's buffer (``max_length``): a small
  object that inflates to gigabytes never sits in memory whole.
"""

from __future__ import annotations

import gzip
import io
from typing import IO, cast

from isal import isal_zlib

_GZIP_WBITS = 16 + 15  # a gzip header and trailer around a deflate stream
_INPUT_BYTES = 1 << 17
_TRAILER_BYTES = 8  # CRC-32 and size
_OUTPUT_BYTES = 1 << 16  # per call: what a checksum error in a middle member can take with it


class _IsalGzipReader(io.RawIOBase):
    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._inflate = isal_zlib.decompressobj(_GZIP_WBITS)
        self._pending = b""  # compressed input read from the stream but not given to the member yet
        self._member_started = False
        self._input_ended = False
        self._done = False
        self._start = stream.tell() if stream.seekable() else None
        self._returned = 0
        self._zlib: IO[bytes] | None = None  # after ISA-L raised, the standard library reads on

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._zlib is not None:
            return self._read_zlib(buffer)
        size = len(buffer)
        while not self._done and size:
            if self._inflate.eof:
                self._next_member()
                continue
            data = self._inflate.unconsumed_tail or self._next_input()
            if not data:
                if self._member_started:
                    raise EOFError("Compressed file ended before the end-of-stream marker was reached")
                self._done = True
                break
            self._member_started = True
            try:
                out = self._inflate.decompress(data, min(size, _OUTPUT_BYTES))
            except isal_zlib.error as exc:  # type: ignore[misc]  # the stub declares an instance, not the class
                return self._read_on_with_zlib(buffer, exc)
            if out:
                buffer[: len(out)] = out
                self._returned += len(out)
                return len(out)
        return 0

    def _read_on_with_zlib(self, buffer: memoryview, error: Exception) -> int:
        """The stream read again by ``gzip.GzipFile`` past what was returned; it raises where zlib raises."""
        if self._start is None:
            raise gzip.BadGzipFile(str(error)) from error
        self._stream.seek(self._start)
        self._zlib = cast(IO[bytes], gzip.GzipFile(fileobj=self._stream, mode="rb"))
        skip = self._returned
        while skip and (read := len(self._zlib.read1(min(skip, 1 << 20)))):  # type: ignore[attr-defined]
            skip -= read
        return self._read_zlib(buffer)

    def _read_zlib(self, buffer: memoryview) -> int:
        # read1: one read of the member, so what it returns before the error is not lost in a loop to fill ``buffer``
        assert self._zlib is not None
        data = self._zlib.read1(len(buffer))  # type: ignore[attr-defined]
        buffer[: len(data)] = data
        return len(data)

    def _next_input(self) -> bytes:
        """Compressed input for the member, keeping the stream's last 8 bytes back until the stream has ended.

        ISA-L raises a bad checksum without the output of the call that met it; the trailer fed
        on its own, that output has been returned already, as zlib returns it.
        """
        while len(self._pending) <= _TRAILER_BYTES and not self._input_ended:
            more = self._stream.read(_INPUT_BYTES)
            self._input_ended = not more
            self._pending += more
        if self._input_ended:
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:-_TRAILER_BYTES], self._pending[-_TRAILER_BYTES:]
        return data

    def _next_member(self) -> None:
        """After a member's trailer: zero padding is skipped; what follows must be another member."""
        rest = self._inflate.unused_data + self._pending
        self._pending = b""
        while True:
            rest = rest.lstrip(b"\0")
            if len(rest) >= 2:
                break
            more = b"" if self._input_ended else self._stream.read(_INPUT_BYTES)
            self._input_ended = not more
            if not more:
                if rest:
                    raise gzip.BadGzipFile(f"Not a gzipped file ({rest!r})")
                self._done = True
                return
            rest += more
        if not rest.startswith(b"\x1f\x8b"):
            raise gzip.BadGzipFile(f"Not a gzipped file ({rest[:2]!r})")
        self._inflate = isal_zlib.decompressobj(_GZIP_WBITS)
        self._pending = rest
        self._member_started = False


def open_gzip(stream: IO[bytes]) -> IO[bytes]:
    """A buffered, decompressed view of a gzip stream (one or more members)."""
    return io.BufferedReader(_IsalGzipReader(stream), buffer_size=1 << 20)
