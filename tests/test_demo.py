"""`trackway demo` (what `make demo` runs) works end to end and its counts add up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _count(output: str, label: str) -> int:
    match = re.search(rf"^\s*{re.escape(label)}\s+([\d,]+)\s*$", output, re.MULTILINE)
    assert match, f"{label!r} not in the demo output:\n{output}"
    return int(match.group(1).replace(",", ""))


def test_demo_runs_and_counts_add_up(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKWAY_", "AIRFLOW"))}
    env["TRACKWAY_HOME"] = str(tmp_path / "demo")
    command = [sys.executable, "-m", "trackway.cli", "demo", "--people", "12"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout

    sent = _count(out, "events sent (SDK calls)")
    assert sent > 100
    assert _count(out, "acknowledged by the collector") == sent
    assert _count(out, "lines in raw objects") == sent
    assert _count(out, "rows in raw.events_raw") == sent
    duplicates = _count(out, "duplicates removed")
    assert duplicates > 0  # the demo re-sends some calls, as a flaky client would
    assert _count(out, "rows in analytics.events") == sent - duplicates
    assert _count(out, "rejected (analytics.events_rejected)") == 0
    for heading in ("Daily active people", "Sessions per day", "Top events", "Page views by path", "Query it:"):
        assert heading in out
    # The product's own database beside the events: synced into app, joined in analytics_x (docs/app-data.md).
    assert re.search(
        r"app_sync: Nestful's own database \(app\.sqlite\) into schema app: \d+ hosts, \d+ listings", out
    ), out
    assert "Listing views by neighbourhood (analytics_x.listing_viewed" in out
    # Personal data as stored (docs/privacy.md): the demo's own keyring, truncated request addresses.
    stored = re.search(r"context\.ip truncated \(([^)]*)\); traits\.email pseudonymised \(h1:demo:[a-z2-7]{16}", out)
    assert stored and all(ip.endswith(".0") for ip in stored.group(1).split(", ")), out
    # The funnels the plan's metrics.yaml declares (analytics.funnels), entered by everyone who searched.
    assert "Funnels (analytics.funnels" in out and "renter_activation by first touch" in out
    assert re.search(r"^\s*renter_activation\s+1\s+Listings Searched\s+[\d,]+\s+100\.0\s*$", out, re.MULTILINE), out

    # The tracking plan: the three deliberate violations are flagged at the collector and found in the warehouse.
    assert re.search(r"tracking plan \(.*\): [\d,]+ events checked, 3 flagged, 0 blocked", out), out
    assert "Tracking plan violations (analytics.tracking_plan_violations)" in out
    for kind, event, prop in (
        ("unplanned_event", "Listing Shared", ""),
        ("wrong_type", "Listing Viewed", "price_per_night"),
        ("missing_required", "Listing Viewed", "city"),
    ):
        assert re.search(rf"^\s*{event}\s+demo\s+{kind}\s+{prop}\s+1\s*$", out, re.MULTILINE), (kind, out)
    assert re.search(r"Analyst queries of the plan .*: (\d+) of \1 passed", out), out  # CI runs them on the demo's data
    # A sample erasure: the busiest user asks to be forgotten; verification finds nothing left anywhere.
    erased = re.search(r"run: ([\d,]+) rows deleted from \d+ tables, .*; request finished", out)
    assert erased and int(erased.group(1).replace(",", "")) > 0, out
    assert re.search(r"verify: 0 rows in \d+ tables, 0 lines in 0 of \d+ raw objects — 0 everywhere", out), out
    dictionary = re.search(r"^Data dictionary: (\S+)", out, re.MULTILINE)
    assert dictionary and "Listing Viewed" in Path(dictionary.group(1)).read_text(encoding="utf-8")

    # The HTML report, written by events_transform's last task (TRACKWAY_REPORT_PATH, docs/report.md) from the
    # real marts: every section drawn, nothing it would fetch.
    from test_report import SECTIONS, external_references

    report = re.search(r"^\s*Report:\s+(\S+)", out, re.MULTILINE)
    assert report and "its last task wrote the report" in out, out
    html = Path(report.group(1)).read_text(encoding="utf-8")
    assert external_references(html) == [] and html.count("<svg ") >= 10
    assert all(f'<section id="{key}">' in html for key in SECTIONS)
    assert "Listing views by neighbourhood" in html and "Funnel renter_activation" in html

    # Lineage: no OpenLineage warning in the demo's output or its Airflow logs, and the load's lineage is there.
    home = Path(env["TRACKWAY_HOME"])
    logs = [first.stdout, first.stderr, *(p.read_text(errors="replace") for p in (home / "logs").glob("*.log"))]
    warnings = [line for text in logs for line in text.splitlines() if "warning" in line.lower()]
    assert not [w for w in warnings if "lineage" in w.lower()], [w for w in warnings if "lineage" in w.lower()]
    assert "events_load.load_raw_objects" in (home / "lineage" / "openlineage.ndjson").read_text()

    # The next run starts from nothing: it wipes the folder this run created (the rest of a run is the same
    # code on the same seeded events, so the test checks the wipe instead of paying for a second demo).
    from trackway.config import load_settings
    from trackway.demo.runner import DEMO_MARKER, _prepare_home

    assert (home / "warehouse.duckdb").exists()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRACKWAY_HOME", str(home))
        _prepare_home(load_settings())
    assert sorted(p.name for p in home.iterdir()) == sorted([DEMO_MARKER, "logs"]), list(home.iterdir())


def test_demo_refuses_to_wipe_a_folder_it_did_not_create(tmp_path):
    home = tmp_path / "precious"
    home.mkdir()
    (home / "warehouse.duckdb").write_bytes(b"not the demo's")
    env = {**os.environ, "TRACKWAY_HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-m", "trackway.cli", "demo"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "holds data the demo did not create" in result.stderr
    assert (home / "warehouse.duckdb").read_bytes() == b"not the demo's"


def test_the_demo_chooses_other_ports_when_one_was_taken(trackway_env, monkeypatch, capsys):
    """Another process can take a port between ``free_ports()`` and the collector's bind: the demo starts it on two
    others instead of failing (here the first pair's public port is held by a listener of the test's own)."""
    import socket

    from trackway.config import load_settings
    from trackway.demo import runner

    (trackway_env / "logs").mkdir(parents=True, exist_ok=True)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        real_free_ports = runner.free_ports
        pairs = iter([[taken, real_free_ports(1)[0]]])
        monkeypatch.setattr(runner, "free_ports", lambda count: next(pairs, None) or real_free_ports(count))
        env = {**os.environ, "TRACKWAY_HOME": str(trackway_env)}
        collector, port, admin_port = runner._start_collector_on_free_ports(load_settings(), env)
        try:
            assert taken not in (port, admin_port)
            assert runner._health(admin_port)["status"] == "ok"
        finally:
            collector.terminate()
            assert collector.wait(timeout=60) == 0
    assert f"port {taken} or" in capsys.readouterr().out
    assert f"cannot listen on 127.0.0.1:{taken}" in (trackway_env / "logs" / "collector.log").read_text()
