"""trackway.rawdata.gunzip: ISA-L's inflate with the standard library's behaviour on damaged objects (adr/0046).

Each case reads the same bytes with ``gzip.GzipFile`` and with ``open_gzip`` and compares
what came out before the error, and the error's class: a truncated or damaged object must
keep exactly the lines the standard library kept.
"""

from __future__ import annotations

import gzip
import io
import random

import pytest

from trackway.rawdata.gunzip import open_gzip
from trackway.rawdata.lines import CONTENT_ERRORS


def _read(opener, blob: bytes) -> tuple[bytes, type | None]:
    body = opener(io.BytesIO(blob))
    out = []
    try:
        while chunk := body.read1(1 << 20):
            out.append(chunk)
    except CONTENT_ERRORS as exc:
        return b"".join(out), type(exc)
    return b"".join(out), None


def _standard(stream):
    return gzip.GzipFile(fileobj=stream)


def _member() -> bytes:
    rng = random.Random(7)
    lines = b"".join(b'{"n": %d, "pad": "%s"}\n' % (n, b"x" * rng.randint(0, 300)) for n in range(60_000))
    out = io.BytesIO()
    with gzip.GzipFile(filename="named.json", fileobj=out, mode="wb", mtime=1) as member:  # FNAME in the header
        member.write(lines)
    return out.getvalue()


FIRST = _member()
MULTI = FIRST + gzip.compress(b'{"b": 1}\n') + b"\0\0" + gzip.compress(b"") + gzip.compress(b'{"c": 1}\n')
CASES = {
    "one member": FIRST,
    "members, zero padding and an empty member": MULTI,
    "trailing zeros": MULTI + b"\0" * 10,
    "trailing garbage": MULTI + b"garbage",
    "one stray magic byte": MULTI + b"\x1f",
    "header only": MULTI[:12],
    "five bytes": MULTI[:5],
    "bad checksum in the last member": FIRST[:-8] + b"\0\0\0\0" + FIRST[-4:],
    "bad length in the last member": FIRST[:-4] + b"\0\0\0\0",
    "bytes zeroed in the middle": FIRST[:5000] + b"\0" * 100 + FIRST[5100:],
    **{f"cut at {cut}": MULTI[:cut] for cut in random.Random(1).sample(range(len(MULTI)), 12)},
}


@pytest.mark.parametrize("blob", CASES.values(), ids=CASES.keys())
def test_open_gzip_returns_what_the_standard_library_returns(blob):
    expected, expected_error = _read(_standard, blob)
    got, error = _read(open_gzip, blob)
    # A cut stream: the standard library may hand over one more byte of the line the cut broke.
    assert expected.startswith(got) and len(expected) - len(got) <= 1
    assert expected.count(b"\n") == got.count(b"\n")
    assert error == expected_error or (error, expected_error) == (gzip.BadGzipFile, gzip.BadGzipFile)


def test_a_bad_checksum_in_a_middle_member_of_a_stream_that_cannot_seek_costs_at_most_64_kib():
    """ISA-L raises without the output of the call that met the error; calls are capped at 64 KiB of output."""
    blob = FIRST[:-8] + b"\0\0\0\0" + FIRST[-4:] + gzip.compress(b'{"after": 1}\n')
    expected, _ = _read(_standard, blob)
    got, error = _read(lambda stream: open_gzip(_Unseekable(stream)), blob)
    assert error is gzip.BadGzipFile
    assert expected.startswith(got) and 0 < len(expected) - len(got) <= 1 << 16
    assert _read(open_gzip, blob) == (expected, gzip.BadGzipFile)  # a stream that seeks is read again by zlib


class _Unseekable(io.RawIOBase):
    def __init__(self, stream: io.BytesIO) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def test_a_small_object_that_inflates_to_a_lot_is_read_a_bounded_piece_at_a_time():
    body = open_gzip(io.BytesIO(gzip.compress(b"\0" * (64 << 20))))
    sizes = [len(body.read1(1 << 30)) for _ in range(20)]
    assert max(sizes) <= 1 << 20
    assert sum(len(chunk) for chunk in iter(lambda: body.read1(1 << 20), b"")) + sum(sizes) == 64 << 20
