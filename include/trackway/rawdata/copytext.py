"""One raw object as PostgreSQL ``COPY ... FROM STDIN`` text: bytes ready for ``copy.write``.

The rows are those of ``trackway.rawdata.lines.iter_rows``, value for value (a test
compares them). What makes it fast (adr/0009, "PostgreSQL"):

- A line that is pure ASCII, shallow, and holds no ``\\u0000``/surrogate escape is read
  by msgspec into the 14 keys the table keeps; the rest of the line is validated and
  skipped, not built into Python dicts. msgspec refuses what Python's json refuses
  (control characters, NaN, trailing text, non-objects); such lines, and every other
  line, take the exact path (``parse_line_fast``/``parse_line``), so the stored reasons
  are word for word those of the Python parser.
- Rows are written as COPY text, many to a chunk, instead of one ``write_row`` call per
  row; the raw line stays bytes and is escaped with ``bytes.replace``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from itertools import chain
from typing import IO, Any, cast

import msgspec

from trackway.rawdata.lines import (
    _RISKY_ESCAPE,
    CONTENT_ERRORS,
    _as_text,
    open_body,
    parse_line_fast,
    row_values,
)
from trackway.rawdata.records import ObjectStats
from trackway.rawdata.schema import RAW_TEXT_FIELDS

# Deeper than this (counting every '[' and '{', strings included) goes the exact way: Python's json and
# msgspec both stop near the recursion limit (1,000), not at exactly the same depth. A shorter line cannot
# nest that deep, so only long lines are counted.
_MAX_BRACKETS = 800
_SHORT_LINE = 2 * _MAX_BRACKETS
_CHUNK_BYTES = 1 << 20
_NULL = "\\N"
_SPECIALS = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_field(value: Any) -> str:
    """One value in COPY text format: ``\\N`` for NULL, backslash, tab, newline and CR escaped."""
    if value is None:
        return _NULL
    text = value if isinstance(value, str) else str(value)
    return text.translate(_SPECIALS)


def copy_row(row: tuple) -> bytes:
    """A row of ``iter_rows`` (or any values) as one COPY text line."""
    return ("\t".join([copy_field(v) for v in row]) + "\n").encode("utf-8", errors="surrogatepass")


def _raw_bytes(line: bytes) -> bytes:
    if b"\\" in line:
        line = line.replace(b"\\", b"\\\\")
    if b"\t" in line:
        line = line.replace(b"\t", b"\\t")
    if b"\r" in line:
        line = line.replace(b"\r", b"\\r")
    return line


def _blocks(body: IO[bytes]) -> Iterator[list[bytes]]:
    """The stream's lines (without their line end, as ``_lines`` gives them), a list per read.

    ``read1``: what was decompressed before a damaged stretch is returned before the error is
    raised, so a truncated object keeps every whole line, as reading line by line does.
    """
    carry = b""
    while chunk := body.read1(_CHUNK_BYTES):  # type: ignore[attr-defined]
        lines = (carry + chunk).split(b"\n")
        carry = lines.pop()
        yield [line.rstrip(b"\r") if line.endswith(b"\r") else line for line in lines]
    if carry:
        yield [carry.rstrip(b"\r")]


def _decoder(text_fields: tuple[tuple[str, str], ...]) -> msgspec.json.Decoder:
    keys = [key for _, key in text_fields]
    struct = msgspec.defstruct(
        "Kept", [(f"f{n}", Any, None) for n in range(len(keys))], rename={f"f{n}": key for n, key in enumerate(keys)}
    )
    return msgspec.json.Decoder(struct)


def copy_chunks(
    stream: IO[bytes],
    stats: ObjectStats,
    *,
    source_object: str,
    load_id: str,
    loaded_at: datetime,
    text_fields: tuple[tuple[str, str], ...] = RAW_TEXT_FIELDS,
) -> Iterator[bytes]:
    """COPY text of the object's rows, about a MiB at a time, in ``RawTable.columns`` order; counts into ``stats``.

    Collector lines only (no source mapping). As ``iter_rows``: a damaged object yields
    what was readable and sets ``stats.object_error``; a transport failure raises
    ``ObjectReadError``.
    """
    body = open_body(stream, source_object, stats)
    if body is None:
        return
    decode = _decoder(text_fields).decode
    astuple = msgspec.structs.astuple
    width = len(text_fields)
    empty = "\t".join([_NULL] * width).encode()
    source = copy_field(source_object)
    no_error = ("\t" + _NULL + "\t" + source + "\t").encode()
    tail = ("\t" + copy_field(load_id) + "\t" + copy_field(loaded_at.isoformat()) + "\n").encode()
    risky = _RISKY_ESCAPE.search
    out: list[bytes] = []
    size = 0
    line_number = 0
    try:
        for line in chain.from_iterable(_blocks(body)):
            line_number += 1
            error: str | None = None
            fields: bytes | None = None
            if (
                line.isascii()
                and (len(line) < _SHORT_LINE or line.count(b"{") + line.count(b"[") < _MAX_BRACKETS)
                and (b"\\u" not in line or not risky(line))
            ):
                try:
                    values = astuple(decode(line))
                except msgspec.DecodeError:
                    values = None
                if values is not None:
                    text = "\t".join(
                        ["\x00" if v is None else v if type(v) is str else cast(str, _as_text(v)) for v in values]
                    )
                    if text.count("\t") == width - 1 and "\\" not in text and "\n" not in text and "\r" not in text:
                        fields = (text.replace("\x00", _NULL) if "\x00" in text else text).encode()
                    else:
                        fields = "\t".join(
                            [copy_field(v if v is None or type(v) is str else _as_text(v)) for v in values]
                        ).encode("utf-8", errors="surrogatepass")
                    raw = _raw_bytes(line)
            if fields is None:
                if not line.strip():
                    stats.blank_lines += 1
                    continue
                text, error, obj = parse_line_fast(line)
                if error or obj is None:
                    stats.parse_errors += 1
                    fields = empty
                else:
                    fields = "\t".join([copy_field(v) for v in row_values(obj, text_fields)]).encode(
                        "utf-8", errors="surrogatepass"
                    )
                raw = copy_field(text).encode("utf-8", errors="surrogatepass")
            stats.rows += 1
            out += (
                fields,
                b"\t",
                raw,
                no_error if error is None else ("\t" + copy_field(error) + "\t" + source + "\t").encode(),
                b"%d" % line_number,
                tail,
            )
            size += len(raw)
            if size >= _CHUNK_BYTES:
                yield b"".join(out)
                out, size = [], 0
    except CONTENT_ERRORS as exc:
        stats.object_error = f"object is truncated or corrupt after line {line_number}: {exc}"
    if out:
        yield b"".join(out)
