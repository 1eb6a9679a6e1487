"""/metrics (all workers together, on the admin listener), JSON logs, and the shipped Prometheus config."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import requests
import yaml

from collector_helpers import CollectorProcess, wait_for
from trackway.config import default

OPS = Path(__file__).resolve().parent.parent / "ops" / "prometheus"
AUTH = {"Authorization": "Basic " + base64.b64encode(b"key-web:").decode()}


def _samples(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = out.get(name, 0.0) + float(value)
    return out


def test_metrics_cover_requests_events_spool_uploads_and_fsync_across_workers(tmp_path):
    proc = CollectorProcess(tmp_path)
    proc.args = ["--log-json"]
    proc.start()
    try:
        with requests.Session() as a, requests.Session() as b:  # two connections: likely both workers
            for session in (a, b) * 10:
                batch = [{"type": "track", "userId": "u", "event": "M"}, {"type": "track", "event": "no user"}]
                assert session.post(proc.url + "/v1/batch", json={"batch": batch}, headers=AUTH).status_code == 200
        assert requests.post(proc.url + "/v1/track", data=b"{", headers=AUTH).status_code == 400
        wait_for(lambda: proc.health()["objects_written"] >= 2, "segments to be uploaded (1 s max age)")
        text = proc.metrics()
    finally:
        assert proc.stop() == 0
        proc.close()
    s = _samples(text)
    assert s['trackway_collector_requests_total{route="/v1/batch",status="200"}'] == 20
    assert s['trackway_collector_requests_total{route="/v1/track",status="400"}'] == 1
    assert s['trackway_collector_events_accepted_total{source="web"}'] == 20
    assert s['trackway_collector_events_quarantined_total{source="web"}'] == 20
    assert s['trackway_collector_request_duration_seconds_count{route="/v1/batch"}'] == 20
    assert s["trackway_collector_fsync_duration_seconds_count"] >= 1
    assert s["trackway_collector_lines_per_fsync_sum"] == 40
    assert s["trackway_collector_objects_written_total"] >= 2
    for gauge in ("spool_pending_bytes", "spool_pending_segments", "upload_lag_seconds", "spool_pending_cap_bytes"):
        assert f"trackway_collector_{gauge}" in s, gauge
    assert "trackway_collector_upload_failures_total" in s and "trackway_collector_upload_retries_total" in s
    # --log-json / TRACKWAY_LOG_FORMAT=json: every log line is one JSON object.
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    assert {entry["worker"] for entry in lines} >= {"master", "w0", "w1"} and all("message" in e for e in lines)
    assert any("stopped cleanly" in e["message"] for e in lines)


def test_sample_scrape_config_and_alerts_use_metrics_that_exist(tmp_path):
    config = yaml.safe_load((OPS / "prometheus.yml").read_text())
    assert config["scrape_configs"][0]["metrics_path"] == "/metrics"
    # Scraped on the admin listener's port, never the public one.
    admin_port = default("TRACKWAY_COLLECTOR_ADMIN_PORT")
    targets = config["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets and all(t.endswith(f":{admin_port}") for t in targets)
    rules = yaml.safe_load((OPS / "trackway-alerts.yml").read_text())["groups"][0]["rules"]
    used = {m for rule in rules for m in re.findall(r"trackway_collector_\w+", rule["expr"])}
    proc = CollectorProcess(tmp_path).start()
    try:
        exposed = {line.split()[2] for line in proc.metrics().splitlines() if line.startswith("# TYPE")}
    finally:
        proc.close()
    assert used and used <= exposed | {m.removesuffix("_total") + "_total" for m in exposed}
    assert {"TrackwayUploadLag", "TrackwayHigh5xxRate", "TrackwaySpoolNearCap"} <= {r["alert"] for r in rules}
