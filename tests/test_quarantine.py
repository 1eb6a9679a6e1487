"""Invalid events of a mixed batch: quarantined by the collector, then visible in SQL as raw.events_quarantine."""

from __future__ import annotations

import base64
import http.client
import json
from datetime import UTC, datetime, timedelta

import pytest

from collector_helpers import CollectorProcess, local_store, wait_for_events
from trackway.config import load_settings
from trackway.load.loader import load_interval
from trackway.rawdata.partitions import hour_floor
from trackway.warehouse import open_warehouse


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_quarantined_events_reach_the_warehouse(backend, trackway_env, request, monkeypatch):
    if backend == "postgres":
        from postgres_server import create_database

        monkeypatch.setenv(
            "TRACKWAY_WAREHOUSE_URL", create_database(request.getfixturevalue("postgres_url"), "quarantine")
        )
    started = hour_floor(datetime.now(UTC))
    collector = CollectorProcess(trackway_env).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=30)
        batch = {
            "batch": [
                {"type": "track", "event": "Kept", "userId": "u-1", "messageId": "ok-1"},
                {"type": "track", "event": "No Ids", "messageId": "bad-1", "properties": {"why": "no user"}},
                {"type": "bogus", "userId": "u-1", "messageId": "bad-2"},
            ]
        }
        auth = "Basic " + base64.b64encode(b"key-web:").decode()
        conn.request(
            "POST",
            "/v1/batch",
            body=json.dumps(batch),
            headers={"Authorization": auth, "Content-Type": "application/json"},
        )
        answer = json.loads(conn.getresponse().read())
        assert (answer["accepted"], answer["quarantined"]) == (1, 2)
    finally:
        assert collector.stop() == 0
    wait_for_events(local_store(trackway_env), ["ok-1"])

    report = load_interval(load_settings(), started, hour_floor(datetime.now(UTC)) + timedelta(hours=1))
    assert (report.rows_loaded, report.quarantined_rows) == (1, 2)
    with open_warehouse(load_settings().warehouse) as wh:
        rows = wh.query("SELECT reason, source_id, event, received_at FROM raw.events_quarantine ORDER BY line_number")
    events = {json.loads(r[2])["messageId"]: r for r in rows}
    assert set(events) == {"bad-1", "bad-2"}
    assert "userId" in events["bad-1"][0] and "anonymousId" in events["bad-1"][0]
    assert "bogus" in events["bad-2"][0]
    assert all(r[1] == "web" and r[3] for r in rows)
    assert json.loads(events["bad-1"][2])["properties"] == {"why": "no user"}
