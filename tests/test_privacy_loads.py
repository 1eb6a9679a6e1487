"""Nothing comes back: loads filter erased subjects, raw objects are rewritten once, foreign objects never.

Raw objects as the collector writes them (events and quarantine) and as Kinesis Firehose
writes them (a source of another system, which Trackway never rewrites), loaded by the
real loader on DuckDB and PostgreSQL.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

from raw_files import event, hour_dir, write_gz_lines
from trackway.cli import main
from trackway.config import load_settings
from trackway.load.loader import load_interval
from trackway.warehouse import open_warehouse

HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)
S, S_DEVICE = "user-erase", "anon-erase"


def _lines(n: int, user: str | None, anonymous: str, prefix: str) -> list[dict]:
    return [event(f"{prefix}-{i}", userId=user, anonymousId=anonymous) for i in range(n)]


def _rows(sql: str) -> list[tuple]:
    with open_warehouse(load_settings().warehouse) as wh:
        return wh.query(sql)


def _privacy(capsys, *args: str) -> str:
    capsys.readouterr()
    assert main(["privacy", *args]) == 0
    return capsys.readouterr().out


def test_loads_filter_erased_subjects_until_rewritten_and_never_reload_a_rewrite(
    warehouse_env, tmp_path, monkeypatch, capsys
):
    home = warehouse_env
    monkeypatch.setenv("TRACKWAY_PRIVACY_LEDGER_KEY", "f" * 64)
    folder = hour_dir(home / "raw", "2026-11-22", 10)
    mixed = [*_lines(3, S, S_DEVICE, "s"), *_lines(4, "user-other", "anon-other", "o"), *_lines(2, None, S_DEVICE, "d")]
    write_gz_lines(folder / "part-1.ndjson.gz", mixed)
    quarantine = home / "raw" / "quarantine" / "dt=2026-11-22" / "hour=10"
    quarantine.mkdir(parents=True)
    record = {"reason": "no event name", "receivedAt": "2026-11-22T10:15:01.000Z", "sourceId": "web"}
    write_gz_lines(
        quarantine / "q-1.ndjson.gz",
        [{**record, "event": {"type": "track", "userId": S}}, {**record, "event": {"type": "track", "userId": "o"}}],
    )
    firehose = tmp_path / "firehose"
    (home / "sources.yml").write_text(
        f"sources:\n  - name: partner\n    url: {firehose.as_uri()}/\n    layout: firehose\n"
    )
    (firehose / "2026/11/22/10").mkdir(parents=True)
    foreign = firehose / "2026/11/22/10/stream-1.gz"
    foreign.write_bytes(gzip.compress("".join(json.dumps(e) for e in _lines(2, S, "x", "f")).encode()))

    first = load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1))
    assert (first.rows_loaded, first.quarantined_rows, first.erased_lines) == (11, 2, 0)

    # A pending deletion: a reload (and the Firehose objects, which are never rewritten) leaves the subject out.
    _privacy(capsys, "request", "--type", "delete_only", "--user-id", S)
    reload = load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1), reload=True)
    assert (reload.erased_lines, reload.rows_loaded, reload.quarantined_rows) == (3 + 2 + 2 + 1, 4, 1)
    assert _rows(f"SELECT count(*) FROM raw.events_raw WHERE user_id = '{S}' OR anonymous_id = '{S_DEVICE}'") == [(0,)]
    assert "lines of erased subjects or past retention left out" in reload.summary()

    dry = _privacy(capsys, "run", "--dry-run")  # says what it would do, changes nothing
    assert "(dry run: nothing changed)" in dry and "2 to rewrite, 6 line(s) to remove" in dry
    assert b"user-erase" in gzip.decompress((folder / "part-1.ndjson.gz").read_bytes())
    assert "pending" in _privacy(capsys, "status")
    out = _privacy(capsys, "run")
    assert "1 finished, 0 failed" in out and "2 rewritten, 6 line(s) removed" in out
    assert "1 object(s) of other systems hold filtered lines" in out
    # Rewritten: erased lines are blank lines, so every other line keeps its number; gzip reads to the end.
    lines = gzip.decompress((folder / "part-1.ndjson.gz").read_bytes()).split(b"\n")
    assert lines[:3] == [b""] * 3 and json.loads(lines[3])["messageId"] == "o-0" and lines[7:9] == [b"", b""]
    assert gzip.decompress(foreign.read_bytes()).count(S.encode()) == 2  # another system's object: untouched
    # The ledger knows the rewritten objects: an ordinary load does not take them for new data.
    again = load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1))
    assert (again.objects_loaded, again.objects_skipped) == (0, 3)
    rows = _rows("SELECT source_object, line_number FROM raw.events_raw WHERE user_id = 'user-other' ORDER BY 2")
    assert [r[1] for r in rows] == [4, 5, 6, 7]

    # Either store alone keeps the filter: the warehouse without its privacy schema, or the raw store without _privacy/.
    with open_warehouse(load_settings().warehouse) as wh:
        wh.execute("DROP SCHEMA privacy CASCADE")
    firehose_again = load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1), reload=True)
    assert firehose_again.erased_lines == 2
    _privacy(capsys, "status")  # rebuilds the warehouse's ledger from the object store
    (home / "raw" / "_privacy" / "subjects.json").unlink()
    assert load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1), reload=True).erased_lines == 2
    assert _rows(f"SELECT count(*) FROM raw.events_raw WHERE user_id = '{S}'") == [(0,)]

    # delete_only does not suppress: what arrives after the deletion finished is new data, and it loads.
    later = hour_dir(home / "raw", "2026-11-22", 11)
    write_gz_lines(later / "part-2.ndjson.gz", [event("new-1", userId=S, receivedAt=datetime.now(UTC).isoformat())])
    assert load_interval(load_settings(), HOUR + timedelta(hours=1), HOUR + timedelta(hours=2)).rows_loaded == 1
