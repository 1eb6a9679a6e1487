"""Late objects: every load sweeps recent partitions, so an outage longer than the lookback loses nothing.

Real parts: a collector process writing to moto's S3 server, which is stopped and
started again; the loader reading through ObjectStoragePath; DuckDB and PostgreSQL;
the collector's own uploader for a spool leftover older than the sweep.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from collector_helpers import WRITE_KEYS, CollectorProcess, free_port, s3_env, start_moto, wait_for
from raw_files import event, hour_dir, write_gz_lines
from trackway.cli import main
from trackway.collector.spool import SealedSegment
from trackway.collector.stats import Stats
from trackway.collector.uploader import Uploader
from trackway.config import load_settings
from trackway.load.loader import load_interval
from trackway.objectstore import open_object_store
from trackway.rawdata.partitions import hour_floor
from trackway.status import stage_counts
from trackway.warehouse import open_warehouse


def _counts(settings) -> tuple[int, int]:
    with open_warehouse(settings.warehouse) as wh:
        return wh.query("SELECT count(*), count(DISTINCT message_id) FROM raw.events_raw")[0]


def test_objects_in_partitions_older_than_the_lookback_are_loaded_once(warehouse_env):
    """The issue's measurement: objects 5 h and 30 h old beside the current hour's; 700 of 900 were never loaded."""
    now = hour_floor(datetime.now(UTC))
    for age, n in ((0, 200), (5, 300), (30, 400)):
        hour = now - timedelta(hours=age)
        folder = hour_dir(warehouse_env / "raw", f"{hour:%Y-%m-%d}", hour.hour)
        write_gz_lines(folder / f"part-{age}.ndjson.gz", [json.dumps(event(f"a{age}-{i}")) for i in range(n)])
    settings = load_settings()

    first = load_interval(settings, now, now + timedelta(hours=1))
    assert (first.rows_loaded, first.late_objects_loaded, first.needs_attention()) == (900, 2, None)
    assert _counts(settings) == (900, 900)
    second = load_interval(settings, now, now + timedelta(hours=1))
    assert (second.objects_loaded, second.rows_loaded) == (0, 0)
    assert _counts(settings) == (900, 900)


def _send(url: str, ids: list[str]) -> None:
    response = requests.post(
        url + "/v1/batch",
        json={"batch": [{"type": "track", "event": "Outage Test", "messageId": m, "anonymousId": "a"} for m in ids]},
        auth=(next(iter(WRITE_KEYS)), ""),
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_an_object_store_outage_longer_than_the_lookback_loses_no_acknowledged_event(trackway_env, monkeypatch):
    port = free_port()
    server, endpoint = start_moto(port)
    for key, value in s3_env(endpoint).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AIRFLOW_CONN_SWEEP_RAW", json.dumps({"conn_type": "aws", "extra": {"endpoint_url": endpoint}}))
    # A bucket of its own: moto keeps buckets for the whole process, and this test writes the current
    # hour, which every later load's sweep on a shared bucket would find.
    bucket = f"sweep-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("TRACKWAY_RAW_URL", f"s3://{bucket}/trackway")
    monkeypatch.setenv("TRACKWAY_RAW_CONN_ID", "sweep_raw")
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    proc = CollectorProcess(
        trackway_env / "collector",
        TRACKWAY_RAW_URL=f"s3://{bucket}/trackway",
        TRACKWAY_UPLOAD_BACKOFF_INITIAL_SECONDS="0.2",
        TRACKWAY_UPLOAD_BACKOFF_MAX_SECONDS="1",
        AWS_MAX_ATTEMPTS="1",
        **s3_env(endpoint),
    ).start()
    settings = load_settings()
    received = hour_floor(datetime.now(UTC))
    acked: list[str] = []
    try:
        before = [f"up-{i}" for i in range(200)]
        _send(proc.url, before)
        acked += before
        wait_for(lambda: proc.health()["spool_pending_bytes"] == 0, "uploads while the store is up")
        server.stop()  # the object store goes away; the collector keeps acknowledging into its spool
        during = [f"down-{i}" for i in range(300)]
        for start in range(0, len(during), 100):
            _send(proc.url, during[start : start + 100])
        acked += during
        with pytest.raises(Exception):  # noqa: B017 - any error: an hourly run during the outage fails (Airflow retries)
            load_interval(settings, received, received + timedelta(hours=1))
        server, _ = start_moto(port)  # back, same data
        wait_for(lambda: proc.health()["spool_pending_bytes"] == 0, "the spool to drain", deadline=120)
    finally:
        assert proc.stop() == 0
        proc.close()
    try:
        # The next ordinary run is for an hour past the lookback (the scheduler went on while the store was down).
        later = received + timedelta(hours=3)
        report = load_interval(settings, later, later + timedelta(hours=1))
        assert report.needs_attention() is None
        total, distinct = _counts(settings)
        with open_warehouse(settings.warehouse) as wh:
            loaded = {row[0] for row in wh.query("SELECT message_id FROM raw.events_raw")}
        lost = sorted(set(acked) - loaded)
        print(
            f"\noutage past the lookback: {len(acked)} acked, {distinct} loaded, {total - distinct} duplicates, {len(lost)} lost"
        )
        assert (len(lost), total - distinct, distinct) == (0, 0, len(acked))
    finally:
        server.stop()


def _leftover_segment(spool, hour: datetime, n: int) -> SealedSegment:
    """A spool segment of an old hour, as a collector finds it when it starts again after a long stop."""
    path = spool / f"events-{hour:%Y%m%dT%H}-leftover.ndjson"
    path.write_text("".join(json.dumps(event(f"old-{i}")) + "\n" for i in range(n)))
    return SealedSegment(
        path=path, stream="events", dt=f"{hour:%Y-%m-%d}", hour=f"{hour:%H}", segment_id=f"leftover-{hour:%H}"
    )


def test_a_late_object_older_than_the_sweep_is_reported_until_backfilled(trackway_env, capsys):
    settings = load_settings()
    now = hour_floor(datetime.now(UTC))
    old = now - timedelta(days=settings.load_sweep_days + 3)
    spool = trackway_env / "spool"
    spool.mkdir(parents=True)
    store = open_object_store(settings.raw_url)
    assert Uploader(store, spool, Stats()).upload(_leftover_segment(spool, old, 150))
    assert store.list("late/"), "the collector left no pointer for a late upload"

    report = load_interval(settings, now, now + timedelta(hours=1))
    assert report.rows_loaded == 0 and len(report.objects_beyond_sweep) == 1
    assert f"trackway load --hour H` for each of {old:%Y-%m-%dT%H}" in (report.needs_attention() or "")
    assert len(stage_counts(settings).objects_beyond_sweep) == 1
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["objects_beyond_sweep"] == 1
    assert main(["load", "--hour", f"{now:%Y-%m-%dT%H}"]) == 1  # the CLI says it needs attention
    assert "older than the sweep" in capsys.readouterr().err

    assert main(["load", "--hour", f"{old:%Y-%m-%dT%H}"]) == 0  # the backfill the message names
    assert _counts(settings) == (150, 150)
    assert stage_counts(settings).objects_beyond_sweep == []
