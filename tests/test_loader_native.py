"""DuckDB's native load path gives every line the same verdict and columns as the Python parser.

The Python parser (trackway.rawdata.lines) is the reference: it is what PostgreSQL
loads and what DuckDB falls back to. Here DuckDB reads the object itself, and each
row must match the reference exactly.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
from datetime import UTC, datetime
from functools import partial

import pytest

from raw_files import event
from trackway.config import Source
from trackway.rawdata.lines import parse_object
from trackway.rawdata.records import RawObject
from trackway.rawdata.schema import EVENTS_RAW_TABLE, QUARANTINE_TABLE
from trackway.warehouse.duckdb_warehouse import DuckDBWarehouse

LOADED_AT = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)

TRICKY_LINES = [
    json.dumps(event("m-plain")),
    json.dumps(event("m-unicode", properties={"city": "Zürich", "emoji": "🏠"})),  # escaped surrogate pair: fine
    json.dumps(event("m-raw-unicode"), ensure_ascii=False),
    '{"messageId": 123, "type": true, "event": {"b": [1, 2.5, null, "ü"]}, "userId": null, "name": 1e5}',
    "",
    "   ",
    "this is not json {",
    "[1, 2, 3]",
    '"just a string"',
    "42",
    '{"messageId": "m-nan", "value": NaN}',
    '{"messageId": "m-inf", "value": -Infinity}',
    '{"messageId": "m-inf2", "value": [1, inf]}',
    '{"messageId": "m-nan-in-text", "event": "NaN: Infinity and beyond"}',
    '{"messageId": "m-nan-case", "value": {"a": nAn, "b": [-INFINITY]}}',
    '{"messageId": "m-inf-spaced", "value": [1,\t+Inf ]}',
    '{"messageId": "m-nan-like-text", "event": "a,ian:Ina [nnf", "info": "Nantes, infinite"}',
    '{"messageId": "m-comma", "value": [1, 2,]}',
    '{"messageId": "m-comma2", "value": 1,}',
    '{"messageId": "m-nul", "event": "a\\u0000b"}',
    '{"messageId": "m-escaped-nul", "event": "a\\\\u0000b"}',
    '{"messageId": "m-lone", "event": "x\\ud800"}',
    '{"messageId": "m-pair", "event": "\\ud83c\\udfe0"}',
    '\ufeff{"messageId": "m-bom-mid"}',
    '{"messageId": "m-tab\tinside"}',
    '{"messageId": "m-rawnul"\x00}',
    '{"messageId": "m-ws"}   ',
    '{"messageId": "m-big", "value": 123456789012345678901234567890}',
    '{"a b": 1, "messageId": "m-key\\"quote", "event": "a,b\\"c"}',
    '{"messageId": "m-last"}',
]


def _load_native(tmp_path, data: bytes, table=EVENTS_RAW_TABLE, name="obj.ndjson.gz", source=None, received_at=None):
    path = tmp_path / name
    path.write_bytes(data)
    obj = RawObject(
        source_object=f"file://{path}",
        fingerprint="f",
        size_bytes=len(data),
        load_id="L1",
        loaded_at=LOADED_AT,
        open=partial(path.open, "rb"),
        local_path=path,
        source=source,
        received_at=received_at,
    )
    with DuckDBWarehouse(tmp_path / "wh.duckdb") as wh:
        wh.ensure_raw_tables()
        load = wh.load_object(obj, table)
        cols = ", ".join(f'"{c}"' for c in table.columns)
        rows = wh.query(f"SELECT {cols} FROM raw.{table.name} ORDER BY line_number")
    reference = parse_object(
        io.BufferedReader(io.BytesIO(data)),
        source_object=obj.source_object,
        load_id="L1",
        loaded_at=LOADED_AT,
        text_fields=table.text_fields,
        source=source,
        received_at=received_at,
    )
    return load, rows, reference


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "plain"])
def test_native_path_matches_the_python_parser(tmp_path, caplog, compress):
    body = "\n".join(TRICKY_LINES).encode() + b"\n\n"
    data = gzip.compress(body) if compress else body
    with caplog.at_level(logging.INFO, logger="trackway.warehouse.duckdb_warehouse"):
        load, rows, reference = _load_native(tmp_path, data, name="obj.ndjson.gz" if compress else "obj.json")
    assert "instead of DuckDB" not in caplog.text  # the native path really ran
    assert rows == [tuple(r) for r in reference.rows]
    stats = reference.stats
    assert (load.rows, load.parse_errors, load.blank_lines, load.object_error) == (
        stats.rows,
        stats.parse_errors,
        stats.blank_lines,
        None,
    )
    assert stats.parse_errors == 15 and stats.blank_lines == 3  # the reference itself flags what it should


def test_quarantine_table_columns_natively(tmp_path):
    line = {"reason": "missing userId", "receivedAt": "2026-11-22T10:00:00Z", "sourceId": "web", "event": "X"}
    load, rows, reference = _load_native(tmp_path, gzip.compress(json.dumps(line).encode()), QUARANTINE_TABLE)
    assert rows == [tuple(r) for r in reference.rows] and load.rows == 1


def test_hazards_fall_back_to_python_and_still_match(tmp_path, caplog):
    """CR line ends and invalid UTF-8 are read by Python: same rows, same line numbers."""
    body = b'{"messageId": "a"}\r\n{"messageId": "b\xe9"}\n{"x":\r1}\n{"messageId": "c"}\n'
    with caplog.at_level(logging.INFO, logger="trackway.warehouse.duckdb_warehouse"):
        load, rows, reference = _load_native(tmp_path, gzip.compress(body))
    assert "instead of DuckDB" in caplog.text
    assert rows == [tuple(r) for r in reference.rows]
    assert [r[-3] for r in rows] == [1, 2, 3, 4] and load.parse_errors == 1  # \r is JSON whitespace: line 3 is fine


FIREHOSE_RECORDS = [
    json.dumps(event("f-1")),
    json.dumps({"type": "track", "event": "No Id", "userId": "u-9"}),  # derived id; source id and arrival defaults
    json.dumps(event("f-2", properties={"city": "Zürich", "tab": "a\tb"}), ensure_ascii=False),
    "  \n " + json.dumps({"messageId": "f-3", "event": "ws", "_trackwayPlan": "not the loader's"}) + "\n\n",
    json.dumps({"messageId": None, "type": None, "sourceId": "other", "receivedAt": "2026-11-22T09:00:00Z"}),
    json.dumps({"messageId": 7, "event": {"nested": [1, "a}b{c"]}}),
]


@pytest.mark.parametrize("tricky", [False, True], ids=["native", "cut-inside-a-string"])
def test_firehose_natively_matches_the_python_parser(tmp_path, caplog, tricky):
    """Firehose objects without a field mapping are split into lines and read by DuckDB: the same rows as Python's.

    A ``}{`` inside a string makes the split cut a record in two; DuckDB then finds pieces that are
    not JSON, and the object is read by the Python parser instead (same rows again).
    """
    records = FIREHOSE_RECORDS + ([json.dumps(event("f-4", properties={"note": 'a "}{" b'}))] if tricky else [])
    body = " ".join(records).encode() + b"\n"
    source = Source(name="adgem", url="file:///firehose/", layout="firehose", type="track")
    with caplog.at_level(logging.INFO, logger="trackway.warehouse.duckdb_warehouse"):
        load, rows, reference = _load_native(
            tmp_path, gzip.compress(body), source=source, received_at="2026-11-22T10:05:00.000Z"
        )
    assert ("instead of DuckDB" in caplog.text) is tricky
    assert rows == [tuple(r) for r in reference.rows]
    assert (load.rows, load.parse_errors) == (len(records), 0)
    assert rows[1][0].startswith("derived-") and rows[1][8] == "adgem" and rows[1][12] == "2026-11-22T10:05:00.000Z"
    assert rows[3][13] is None  # the plan verdict column is the loader's: no plan, no verdict


def test_postgres_binary_copy_matches_the_python_parser(tmp_path, postgres_url):
    """PostgreSQL's load reads lines itself and sends binary COPY (trackway.rawdata.copyrows, adr/0045): the same
    rows as the Python parser, hostile lines included."""
    from postgres_server import create_database
    from trackway.config.warehouse import WarehouseTarget
    from trackway.warehouse.postgres_warehouse import PostgresWarehouse

    lines = [line for line in TRICKY_LINES if "m-big" not in line]  # msgspec keeps a big int exact, orjson does not
    lines += ['{"messageId": "m-tab", "event": "a\\tb\\\\c\\nd", "type": {"x": "y\\tz"}}', "\t", " \r"]
    # Bytes no str can carry: invalid UTF-8, a CRLF line end, a raw NUL inside a string.
    odd = b'{"messageId": "m-bad-utf8", "event": "\xff"}\r\n{"messageId": "m-crlf"}\r\n{"event": "a\x00b"}\n'
    data = gzip.compress("\n".join(lines).encode() + b"\n" + odd + b"\n")
    path = tmp_path / "obj.ndjson.gz"
    path.write_bytes(data)
    obj = RawObject(
        source_object=f"file://{path}\twith a tab",
        fingerprint="f",
        size_bytes=len(data),
        load_id="L1",
        loaded_at=LOADED_AT,
        open=partial(path.open, "rb"),
        local_path=path,
    )
    target = WarehouseTarget.parse(create_database(postgres_url, "copy_text"))
    with PostgresWarehouse(target) as wh:
        wh.ensure_raw_tables()
        load = wh.load_object(obj)
        cols = ", ".join(f'"{c}"' for c in EVENTS_RAW_TABLE.columns)
        rows = wh.query(f"SELECT {cols} FROM raw.events_raw ORDER BY line_number")
    reference = parse_object(
        io.BufferedReader(io.BytesIO(data)), source_object=obj.source_object, load_id="L1", loaded_at=LOADED_AT
    )
    assert rows == [tuple(r) for r in reference.rows]
    stats = reference.stats
    assert (load.rows, load.parse_errors, load.blank_lines) == (stats.rows, stats.parse_errors, stats.blank_lines)


def _plain_object(tmp_path, name: str, lines: int) -> RawObject:
    path = tmp_path / name
    body = "".join(json.dumps({"messageId": f"{name}-{n}", "type": "track", "event": "e"}) + "\n" for n in range(lines))
    path.write_bytes(gzip.compress(body.encode(), compresslevel=1))
    return RawObject(
        source_object=f"file://{path}",
        fingerprint="f",
        size_bytes=path.stat().st_size,
        load_id="L1",
        loaded_at=LOADED_AT,
        open=partial(path.open, "rb"),
        local_path=path,
    )


def test_a_load_that_fills_row_groups_skips_the_vacuum_and_every_row_reads_back(tmp_path):
    """adr/0039: past a row group's worth of rows the load's checkpoint keeps row groups as written."""
    warehouse = tmp_path / "wh.duckdb"
    vacuum = "SELECT current_setting('max_vacuum_tasks')"
    with DuckDBWarehouse(warehouse) as wh:
        wh.ensure_raw_tables()
        default = wh.query(vacuum)[0][0]
        assert wh.load_object(_plain_object(tmp_path, "small.ndjson.gz", 1_000)).rows == 1_000
        assert wh.query(vacuum)[0][0] == default > 0  # a micro-batch keeps the vacuum
        assert wh.load_object(_plain_object(tmp_path, "big.ndjson.gz", 130_000)).rows == 130_000
        assert wh.query(vacuum)[0][0] == 0
    with DuckDBWarehouse(warehouse, read_only=True) as wh:  # after the checkpoint at close
        assert wh.query("SELECT count(*), count(DISTINCT message_id) FROM raw.events_raw") == [(131_000, 131_000)]
        assert wh.query(vacuum)[0][0] == default  # a new process, or a reopened file, starts from the default


def test_copy_rows_block_by_block_matches_the_python_parser_line_for_line():
    """copy_rows takes clean blocks at once (adr/0046): each tricky line, wherever it falls between clean ones (invalid
    UTF-8 included), and a stretch of numeric userIds (two refused blocks: the rest goes line by line) give the
    Python parser's rows."""
    from trackway.rawdata.copyrows import copy_rows
    from trackway.rawdata.records import ObjectStats

    # Raw UTF-8 in kept and skipped values (a third of the lines) takes the block way too.
    clean = [
        json.dumps(
            event(f"m-{n}", userId=f"ユーザー{n}", properties={"city": "Zürich 🏠", "pad": "x" * (n % 700)}),
            ensure_ascii=False,
        )
        if n % 3 == 0
        else json.dumps(event(f"m-{n}", properties={"pad": "x" * (n % 700)}))
        for n in range(14_000)
    ]
    spanning = ['{"messageId": "m-open",', '"event": "spans"} {"messageId": "m-two"}']  # one value over two lines
    tricky = [line.encode() for line in TRICKY_LINES if "m-big" not in line] + [s.encode() for s in spanning]
    # Invalid UTF-8 where msgspec does not look (a skipped value) and where it does; a BOM; a raw NUL.
    tricky += [b'{"messageId": "m-bad-skipped", "x": "\xff"}', b'{"messageId": "m-bad-kept", "event": "\xed\xa0\x80"}']
    tricky += [b"\xef\xbb\xbf" + clean[3].encode(), b'{"event": "a\x00b"}', b"\f", b"{}"]
    lines = [line.encode() for line in clean]
    for n, line in enumerate(tricky):
        lines.insert(400 * n + 1, line)  # about four 64 KiB reads apart: clean blocks between
    lines += [json.dumps(event(f"m-num-{n}", userId=n)).encode() for n in range(300)]  # an int userId refuses the block
    lines += [*lines[:500], b"\r", b'{"messageId": "m-crlf"}\r']
    data = gzip.compress(b"\n".join(lines))
    where = {"source_object": "s3://b/o.ndjson.gz", "load_id": "L1", "loaded_at": LOADED_AT}
    stats = ObjectStats()
    rows = [(*r[:14], r[14].decode(), *r[15:]) for r in copy_rows(io.BytesIO(data), stats, **where)]  # valid UTF-8
    reference = parse_object(io.BufferedReader(io.BytesIO(data)), **where)
    assert rows == [tuple(r) for r in reference.rows]
    ref = reference.stats
    assert (stats.rows, stats.parse_errors, stats.blank_lines) == (ref.rows, ref.parse_errors, ref.blank_lines)
    assert ref.parse_errors >= 15 and ref.blank_lines >= 3
