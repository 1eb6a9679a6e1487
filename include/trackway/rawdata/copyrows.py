"""One raw object as rows for PostgreSQL's binary ``COPY ... FROM STDIN`` (adr/0045).

The rows are those of ``trackway.rawdata.lines.iter_rows``, value for value (a test
compares them through a real load). What makes it fast:

- A line that is valid UTF-8 (checked first: msgspec does not check the values it skips,
  and the raw line goes out as its bytes), shallow, and holds no ``\\u0000``/surrogate
  escape is read by msgspec into the 14 keys the table keeps; the rest of the line is
  validated and skipped, not built into Python dicts (adr/0035). msgspec refuses what Python's json
  refuses (control characters, NaN, trailing text, non-objects); such lines, and every
  other line, take the exact path (``parse_line_fast``/``parse_line``), so the stored
  reasons are word for word those of the Python parser.
- The rows go out as binary COPY through psycopg's compiled ``write_row``: no escaping
  on either side, and the server reads each value by its length instead of scanning
  1 KB lines for tabs and backslashes (36% less server CPU than COPY text, measured in
  ``benchmarks/bench_pg_copy_format.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from itertools import count, repeat
from typing import IO, Any

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


def copy_types(
    text_fields: tuple[tuple[str, str], ...] = RAW_TEXT_FIELDS, *, raw_line_bytes: bool = False
) -> list[str]:
    """The types to send a landing table's columns as, in ``RawTable.columns`` order, for ``set_types``.

    ``raw_line_bytes``: the raw line comes as UTF-8 bytes (``copy_rows``) and goes out as it is,
    typed ``bytea`` for psycopg's dumper only. Binary COPY carries no types: the server reads
    the value with the column's (text) receive function, which verifies the encoding as it
    would a string's. The line is neither decoded nor encoded again on the client.
    """
    raw_line = "bytea" if raw_line_bytes else "text"
    return ["text"] * len(text_fields) + [raw_line, "text", "text", "int8", "text", "timestamptz"]


def _blocks(body: IO[bytes]) -> Iterator[tuple[bytes, list[bytes]]]:
    """The stream's lines (without their line end, as ``_lines`` gives them), a list per read, with the
    bytes they were split from.

    ``read1``: what was decompressed before a damaged stretch is returned before the error is
    raised, so a truncated object keeps every whole line, as reading line by line does.
    """
    carry = b""
    while chunk := body.read1(_CHUNK_BYTES):  # type: ignore[attr-defined]
        text = carry + chunk
        lines = text.split(b"\n")
        carry = lines.pop()
        yield text, [line.rstrip(b"\r") if line.endswith(b"\r") else line for line in lines]
    if carry:
        yield carry, [carry.rstrip(b"\r")]


def _decoder(text_fields: tuple[tuple[str, str], ...], value_type: Any = Any) -> msgspec.json.Decoder:
    keys = [key for _, key in text_fields]
    struct = msgspec.defstruct(
        "Kept",
        [(f"f{n}", value_type, None) for n in range(len(keys))],
        rename={f"f{n}": key for n, key in enumerate(keys)},
    )
    return msgspec.json.Decoder(struct)


def _utf8(data: bytes) -> bool:
    """Valid UTF-8: ASCII at once, anything else by CPython's decoder (C, no copy kept)."""
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _plain_block(text: bytes, lines: list[bytes]) -> bool:
    """Whether every line of a block may take the fast way, by checks over the whole block at once.

    Valid UTF-8, no risky escape, no blank line, nothing nested past ``_MAX_BRACKETS`` (the
    per-line fast way's conditions): each costs C over the block, no Python per line.
    """
    if not _utf8(text) or not all(lines) or (b"\\u" in text and _RISKY_ESCAPE.search(text)):
        return False
    return max(map(len, lines)) < _SHORT_LINE or all(
        line.count(b"{") + line.count(b"[") < _MAX_BRACKETS for line in lines if len(line) >= _SHORT_LINE
    )


def copy_rows(
    stream: IO[bytes],
    stats: ObjectStats,
    *,
    source_object: str,
    load_id: str,
    loaded_at: datetime,
    text_fields: tuple[tuple[str, str], ...] = RAW_TEXT_FIELDS,
) -> Iterator[tuple]:
    """The object's rows in ``RawTable.columns`` order, typed as ``copy_types(raw_line_bytes=True)``; counts into ``stats``.

    Collector lines only (no source mapping). As ``iter_rows``: a damaged object yields
    what was readable and sets ``stats.object_error``; a transport failure raises
    ``ObjectReadError``.

    A block (one read, about 64 KiB) whose lines all pass ``_plain_block`` and hold only
    strings among their kept values is decoded at once: the loop, the checks and the rows are
    C's, not Python's per line (adr/0046). A block that fails the decode goes line by line,
    and after two such blocks in a row so does the rest of the object: an object whose every
    block holds, say, a numeric userId pays for the attempt twice, not for every block.
    """
    body = open_body(stream, source_object, stats)
    if body is None:
        return
    decode = _decoder(text_fields).decode
    decode_texts = _decoder(text_fields, str | None).decode
    astuple = msgspec.structs.astuple
    empty = (None,) * len(text_fields)
    risky = _RISKY_ESCAPE.search
    texts = {str, type(None)}.issuperset  # every value a string or absent: the row needs no conversion
    line_number = 0
    block_misses = 0
    try:
        for text, lines in _blocks(body):
            if block_misses < 2 and _plain_block(text, lines):
                try:  # each line still decoded on its own: a value cannot run across lines
                    block: list[tuple] | None = list(map(astuple, map(decode_texts, lines)))
                except msgspec.DecodeError:  # ValidationError included: a number or an object among the values
                    block = None
                if block is not None:
                    block_misses = 0
                    yield from map(
                        tuple.__add__,
                        block,
                        zip(
                            lines,
                            repeat(None),
                            repeat(source_object),
                            count(line_number + 1),
                            repeat(load_id),
                            repeat(loaded_at),
                        ),
                    )
                    line_number += len(lines)
                    stats.rows += len(lines)
                    continue
                block_misses += 1
            for line in lines:
                line_number += 1
                values: tuple | None = None
                if (
                    _utf8(line)
                    and (len(line) < _SHORT_LINE or line.count(b"{") + line.count(b"[") < _MAX_BRACKETS)
                    and (b"\\u" not in line or not risky(line))
                ):
                    try:
                        values = astuple(decode(line))
                    except msgspec.DecodeError:
                        values = None
                    if values is not None:
                        if not texts(map(type, values)):
                            values = tuple([v if v is None or type(v) is str else _as_text(v) for v in values])
                        stats.rows += 1
                        yield (*values, line, None, source_object, line_number, load_id, loaded_at)
                        continue
                if not line.strip():
                    stats.blank_lines += 1
                    continue
                text_line, error, obj = parse_line_fast(line)
                if error or obj is None:
                    stats.parse_errors += 1
                    values = empty
                else:
                    values = tuple(row_values(obj, text_fields))
                stats.rows += 1
                yield (*values, text_line.encode(), error, source_object, line_number, load_id, loaded_at)
    except CONTENT_ERRORS as exc:
        stats.object_error = f"object is truncated or corrupt after line {line_number}: {exc}"
