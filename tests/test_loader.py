"""raw.events_raw loads: exactly once per object, nothing lost to bad input.

Runs on DuckDB and on a real PostgreSQL server.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from datetime import UTC, datetime, timedelta

from raw_files import event, hour_dir, write_gz_lines
from trackway.config import load_settings
from trackway.load.loader import load_interval
from trackway.warehouse import open_warehouse

HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)


def _rows(
    settings,
    sql="SELECT message_id, parse_error, line_number, raw FROM raw.events_raw ORDER BY source_object, line_number",
):
    with open_warehouse(settings.warehouse) as wh:
        return wh.query(sql)


def test_bad_lines_are_kept_with_their_reason(warehouse_env):
    settings = load_settings()
    folder = hour_dir(warehouse_env / "raw", "2026-11-22", 10)
    good = event("m-good", properties={"city": "Zürich", "nested": {"a": [1, 2.5, None]}})
    write_gz_lines(
        folder / "a.ndjson.gz",
        [
            good,
            "this is not json {",
            "",
            "[1, 2, 3]",
            b'{"messageId": "m-latin1", "event": "caf\xe9"}',
            '{"messageId": "m-nan", "value": NaN}',
            '{"messageId": "m-nul", "event": "a\\u0000b"}',
            b'{"messageId": "m-rawnul"\x00}',
            json.dumps(event("m-crlf")) + "\r",
        ],
    )
    report = load_interval(settings, HOUR, HOUR + timedelta(hours=1))
    assert (report.objects_loaded, report.rows_loaded, report.parse_errors, report.blank_lines) == (1, 8, 6, 1)

    rows = _rows(settings)
    by_line = {r[2]: r for r in rows}
    assert by_line[1][0] == "m-good" and by_line[1][1] is None
    assert json.loads(by_line[1][3]) == good  # the whole original line, unchanged
    assert by_line[2][1].startswith("invalid JSON") and by_line[2][3] == "this is not json {"
    assert 3 not in by_line  # blank line: counted, not a row
    assert by_line[4][1] == "not a JSON object (got list)"
    assert by_line[5][1] == "invalid UTF-8 at byte 39" and "\\xe9" in by_line[5][3]
    assert "NaN" in by_line[6][1]
    assert "\\u0000" in by_line[7][1]
    assert by_line[8][1] == "contains NUL bytes" and "\\x00" in by_line[8][3]
    assert by_line[9][0] == "m-crlf" and by_line[9][1] is None


def test_rerun_of_the_same_hour_does_not_double_load(warehouse_env):
    settings = load_settings()
    folder = hour_dir(warehouse_env / "raw", "2026-11-22", 10)
    write_gz_lines(folder / "a.ndjson.gz", [event(f"m-{i}") for i in range(50)])
    write_gz_lines(folder / "b.ndjson.gz", [event(f"n-{i}") for i in range(25)])
    (folder / ".inflight.tmp").write_bytes(b"partial")
    (folder / "_SUCCESS").write_bytes(b"")

    first = load_interval(settings, HOUR, HOUR + timedelta(hours=1))
    second = load_interval(settings, HOUR, HOUR + timedelta(hours=1))
    assert (first.objects_loaded, first.rows_loaded) == (2, 75)
    assert (second.objects_loaded, second.objects_skipped, second.rows_loaded) == (0, 2, 0)
    assert _rows(settings, "SELECT count(*), count(DISTINCT message_id) FROM raw.events_raw") == [(75, 75)]

    forced = load_interval(settings, HOUR, HOUR + timedelta(hours=1), reload=True)
    assert (forced.objects_loaded, forced.rows_loaded) == (2, 75)
    assert _rows(settings, "SELECT count(*), count(DISTINCT load_id) FROM raw.events_raw") == [(75, 1)]
    assert _rows(settings, "SELECT count(*) FROM raw.load_runs") == [(3,)]


def test_a_changed_object_is_replaced_not_appended(warehouse_env):
    settings = load_settings()
    folder = hour_dir(warehouse_env / "raw", "2026-11-22", 10)
    write_gz_lines(folder / "a.ndjson.gz", [event("m-1"), event("m-2")])
    load_interval(settings, HOUR, HOUR + timedelta(hours=1))
    write_gz_lines(folder / "a.ndjson.gz", [event("m-1"), event("m-2"), event("m-3")])
    again = load_interval(settings, HOUR, HOUR + timedelta(hours=1))
    assert again.objects_loaded == 1
    assert _rows(settings, "SELECT count(*), count(DISTINCT message_id) FROM raw.events_raw") == [(3, 3)]


def test_late_objects_of_the_previous_hour_are_picked_up_once(warehouse_env):
    settings = load_settings()
    write_gz_lines(hour_dir(warehouse_env / "raw", "2026-11-22", 10) / "a.ndjson.gz", [event("m-1")])
    load_interval(settings, HOUR, HOUR + timedelta(hours=1))
    # A collector that was down uploads an hour-10 segment after the hour-10 run.
    write_gz_lines(hour_dir(warehouse_env / "raw", "2026-11-22", 10) / "late.ndjson.gz", [event("m-late")])
    write_gz_lines(hour_dir(warehouse_env / "raw", "2026-11-22", 11) / "b.ndjson.gz", [event("m-2")])
    next_hour = load_interval(settings, HOUR + timedelta(hours=1), HOUR + timedelta(hours=2))
    assert (next_hour.objects_loaded, next_hour.objects_skipped, next_hour.rows_loaded) == (2, 1, 2)
    assert sorted(r[0] for r in _rows(settings)) == ["m-1", "m-2", "m-late"]


def test_objects_written_by_other_systems(warehouse_env):
    """Plain, BOM'd, gzip (multi-member, truncated), bz2 and xz NDJSON load what they hold; zstd is refused loudly."""
    settings = load_settings()
    folder = hour_dir(warehouse_env / "raw", "2026-11-22", 10)
    (folder / "plain.json").write_text(json.dumps(event("p-1")) + "\n" + json.dumps(event("p-2")))  # no final newline
    (folder / "members.ndjson.gz").write_bytes(
        gzip.compress(json.dumps(event("g-1")).encode() + b"\n")
        + gzip.compress(json.dumps(event("g-2")).encode() + b"\n")
    )
    whole = gzip.compress(b"".join(json.dumps(event(f"t-{i}")).encode() + b"\n" for i in range(2000)))
    (folder / "truncated.ndjson.gz").write_bytes(whole[: len(whole) // 2])

    (folder / "windows.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(event("bom-1")).encode() + b"\r\n")
    (folder / "export.ndjson.bz2").write_bytes(bz2.compress(json.dumps(event("bz-1")).encode() + b"\n"))
    (folder / "export.ndjson.xz").write_bytes(lzma.compress(json.dumps(event("xz-1")).encode() + b"\n"))
    (folder / "export.ndjson.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 32)

    report = load_interval(settings, HOUR, HOUR + timedelta(hours=1))
    assert report.objects_loaded == 7
    assert len(report.object_errors) == 2
    assert any("truncated.ndjson.gz" in e for e in report.object_errors)
    assert any("export.ndjson.zst" in e and "zstd objects are not supported" in e for e in report.object_errors)
    ids = {r[0] for r in _rows(settings)}
    assert {"p-1", "p-2", "g-1", "g-2", "bom-1", "bz-1", "xz-1"} <= ids
    truncated = {i for i in ids if i and i.startswith("t-")}
    assert 0 < len(truncated) < 2000
    assert _rows(settings, "SELECT count(object_error) FROM raw.loaded_objects") == [(2,)]


def test_a_raw_table_of_an_older_version_gets_the_plan_verdict_column(warehouse_env):
    """adr/0029 added raw.events_raw.plan_verdict: a table created before it is altered at the next load."""
    settings = load_settings()
    with open_warehouse(settings.warehouse) as wh:
        wh.ensure_raw_tables()
        _drop_plan_verdict(wh)  # as an older version created it
    verdict = {"plan": "p1", "eventVersion": "1", "violations": [{"kind": "wrong_type", "property": "price"}]}
    write_gz_lines(
        hour_dir(warehouse_env / "raw", "2026-11-22", 10) / "v.ndjson.gz", [event("m-v", _trackwayPlan=verdict)]
    )
    assert load_interval(settings, HOUR, HOUR + timedelta(hours=1)).rows_loaded == 1
    (text,) = _rows(settings, "SELECT plan_verdict FROM raw.events_raw WHERE message_id = 'm-v'")[0]
    assert json.loads(text) == verdict  # the collector's key, copied like every other text field


def _drop_plan_verdict(wh) -> None:
    if wh.kind == "postgres":
        with wh.con.transaction(), wh.con.cursor() as cur:
            cur.execute("ALTER TABLE raw.events_raw DROP COLUMN plan_verdict")
    else:
        wh.con.execute("ALTER TABLE raw.events_raw DROP COLUMN plan_verdict")
