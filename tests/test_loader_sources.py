"""Raw sources other systems write (sources.yml): Firehose and Segment S3 layouts, field mapping.

Objects are written the way Kinesis Firehose and Segment's S3 destination write them; the
S3 case runs against moto in server mode, read through an Airflow connection.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta

import pytest

from raw_files import event
from trackway.config import ConfigError, load_settings
from trackway.load.loader import load_interval
from trackway.warehouse import open_warehouse

HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)


def _sources(home, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "sources.yml").write_text(text)


def _rows(sql: str) -> list[tuple]:
    with open_warehouse(load_settings().warehouse) as wh:
        return wh.query(sql)


def _firehose_dir(root, hour: datetime):
    folder = root / f"{hour:%Y/%m/%d/%H}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_firehose_concatenated_json(trackway_env, tmp_path):
    root = tmp_path / "firehose"
    _sources(trackway_env, f"sources:\n  - name: adgem\n    url: {root.as_uri()}/\n    layout: firehose\n")
    folder = _firehose_dir(root, HOUR)
    records = [
        json.dumps(event("f-1")),
        json.dumps(event("f-2", properties={"note": 'a "}{" b }{ c'})),  # }{ inside a string
        "\n" + json.dumps(event("f-3")) + "\n",  # newline-delimited stretch mixed in
        json.dumps({"type": "track", "event": "No Id", "userId": "u-9"}),  # no messageId, no receivedAt
        '{"messageId": "broken", "event": tru',  # a corrupt stretch...
        json.dumps(event("f-4")),  # ...after which the rest still loads
    ]
    body = "".join(records).encode()
    name = "stream-1-2026-11-22-10-05-00-0b5e0f3a-1c1a-4a5e-9c0b-1f0a2b3c4d5e"
    # gzip'd, with two members (Firehose may append), and the same records plain
    (folder / f"{name}.gz").write_bytes(gzip.compress(body[:200]) + gzip.compress(body[200:]))
    (folder / f"{name}-plain").write_bytes(body)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("records.json", body)
    (folder / f"{name}.zip").write_bytes(zipped.getvalue())
    (folder / f"{name}.snappy").write_bytes(b"\xff\x06\x00\x00sNaPpY" + b"\x00" * 16)

    report = load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1))
    assert report.objects_loaded == 4
    assert sorted(e.rsplit("/", 1)[1].split(":")[0] for e in report.object_errors) == [f"{name}.snappy", f"{name}.zip"]
    assert any("Snappy objects are not supported" in e for e in report.object_errors)
    assert (report.rows_loaded, report.parse_errors) == (12, 2)

    for suffix in (".gz", "-plain"):
        rows = _rows(
            "SELECT line_number, message_id, parse_error, raw, source_id, received_at FROM raw.events_raw "
            f"WHERE source_object LIKE '%{suffix}' ORDER BY line_number"
        )
        ids = [r[1] for r in rows]
        assert ids[:3] == ["f-1", "f-2", "f-3"] and ids[5] == "f-4"
        assert json.loads(rows[1][3])["properties"]["note"] == 'a "}{" b }{ c'
        assert ids[3].startswith("derived-") and rows[3][4] == "adgem"  # source name as source_id
        arrived = datetime.fromtimestamp(next(folder.glob(f"*{suffix}")).stat().st_mtime, UTC)
        assert rows[3][5] == arrived.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"  # the object's arrival time
        assert rows[4][2].startswith("invalid JSON") and rows[4][3] == '{"messageId": "broken", "event": tru'
    # The same record in both objects derives the same id: it dedups downstream.
    assert _rows("SELECT count(DISTINCT message_id) FROM raw.events_raw WHERE message_id LIKE 'derived-%'") == [(1,)]

    again = load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1))
    assert (again.objects_loaded, again.objects_skipped) == (0, 4)


def test_segment_s3_daily_folders_across_hourly_runs(trackway_env, tmp_path):
    root = tmp_path / "segment-bucket"
    _sources(trackway_env, f"sources:\n  - name: legacy\n    url: {root.as_uri()}\n    layout: segment-s3\n")
    day_ms = int(HOUR.replace(hour=0).timestamp() * 1000)
    folder = root / "segment-logs" / "src123" / str(day_ms)
    folder.mkdir(parents=True)
    (folder / "1763800000000.a.gz").write_bytes(gzip.compress(json.dumps(event("s-1")).encode() + b"\n"))

    first = load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1))
    (folder / "1763803600000.b.gz").write_bytes(gzip.compress(json.dumps(event("s-2")).encode() + b"\n"))
    second = load_interval(load_settings(), HOUR + timedelta(hours=1), HOUR + timedelta(hours=2))
    third = load_interval(load_settings(), HOUR + timedelta(hours=2), HOUR + timedelta(hours=3))
    assert (first.objects_loaded, second.objects_loaded, second.objects_skipped) == (1, 1, 1)
    assert (third.objects_loaded, third.objects_skipped) == (0, 2)
    assert _rows("SELECT message_id FROM raw.events_raw ORDER BY 1") == [("s-1",), ("s-2",)]
    from trackway.status import stage_counts

    assert stage_counts(load_settings()).sources == [("legacy", "segment-s3", 2, 2, 0)]  # trackway status


def test_field_mapping_flows_through_dbt_and_derived_ids_dedup(trackway_env, tmp_path):
    from trackway.transform.dbt_runner import run_dbt

    root = tmp_path / "fh"
    _sources(
        trackway_env,
        f"""sources:
  - name: games
    url: {root.as_uri()}
    layout: firehose
    type: track
    fields:
      message_id: $.event_uuid
      event: $.event_name
      user_id: $.user.id
      timestamp: $.created_at
""",
    )
    folder = _firehose_dir(root, HOUR)
    mapped = {
        "event_uuid": "g-1",
        "event_name": "Level Up",
        "user": {"id": "p-7"},
        "created_at": "2026-11-22T10:01:00Z",
    }
    no_id = {"event_name": "Coin", "user": {"id": "p-8"}, "created_at": "2026-11-22T10:02:00Z"}
    # Firehose delivered the id-less record twice (at-least-once), in two objects.
    (folder / "s-1-2026-11-22-10-01-00-a.gz").write_bytes(
        gzip.compress((json.dumps(mapped) + json.dumps(no_id)).encode())
    )
    (folder / "s-1-2026-11-22-10-02-00-b.gz").write_bytes(gzip.compress(json.dumps(no_id).encode()))

    report = load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1))
    assert (report.rows_loaded, report.parse_errors) == (3, 0)
    assert run_dbt(load_settings(), "build").success
    events = _rows("SELECT event_id, event_type, event_name, user_id FROM analytics.events ORDER BY event_name")
    assert len(events) == 2  # the re-delivered record is one event
    assert events[0][1:] == ("track", "Coin", "p-8") and events[0][0].startswith("derived-")
    assert events[1] == ("g-1", "track", "Level Up", "p-7")
    raw = _rows("SELECT raw FROM raw.events_raw WHERE message_id = 'g-1'")[0][0]
    assert json.loads(raw) == mapped  # the whole record is kept


def test_s3_source_read_through_its_connection(trackway_env, monkeypatch):
    import boto3

    from collector_helpers import s3_env, start_moto

    server, endpoint = start_moto()
    try:
        for key, value in s3_env(endpoint).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv(
            "AIRFLOW_CONN_FIREHOSE_S3", json.dumps({"conn_type": "aws", "extra": {"endpoint_url": endpoint}})
        )
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="company-lake")
        body = gzip.compress((json.dumps(event("s3-1")) + json.dumps(event("s3-2"))).encode())
        s3.put_object(
            Bucket="company-lake", Key="firehose/events/2026/11/22/10/ev-1-2026-11-22-10-00-00-x.gz", Body=body
        )
        _sources(
            trackway_env,
            "sources:\n  - name: lake\n    url: s3://company-lake/firehose/events/\n"
            "    conn_id: firehose_s3\n    layout: firehose\n",
        )
        first = load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1))
        second = load_interval(load_settings(), HOUR, HOUR + timedelta(hours=1))
    finally:
        server.stop()
    assert (first.objects_loaded, first.rows_loaded, second.objects_skipped) == (1, 2, 1)
    assert _rows("SELECT DISTINCT source_object FROM raw.events_raw") == [
        ("s3://company-lake/firehose/events/2026/11/22/10/ev-1-2026-11-22-10-00-00-x.gz",)
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources: {}", "top-level 'sources:' list"),
        ("sources:\n  - name: a\n    url: http://x/\n", "url must be"),
        ("sources:\n  - name: a\n    url: s3://b/\n    layout: kafka\n", "layout 'kafka'"),
        ("sources:\n  - name: a\n    url: s3://b/\n    fields: {user: $.u}\n", "fields.user is not one of"),
    ],
)
def test_sources_file_mistakes_are_named(trackway_env, text, message):
    _sources(trackway_env, text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_settings().sources()
