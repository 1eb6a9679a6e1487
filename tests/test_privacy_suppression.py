"""The collector drops suppressed subjects' events before storage, picks requests up without a restart, and fails closed.

A real collector process over real HTTP; requests go through `trackway privacy` as an
operator would run them (the embedded default: the ledger key is generated in TRACKWAY_HOME).
"""

from __future__ import annotations

import re
import time
import uuid

import requests

from collector_helpers import CollectorProcess, local_store, read_lines, wait_for, wait_for_events
from trackway.cli import main

POLL = "0.3"


def _post(collector: CollectorProcess, path: str, body: dict) -> requests.Response:
    return requests.post(collector.url + path, json=body, auth=("key-web", ""), timeout=10)


def _track(anonymous_id: str) -> dict:
    return {"type": "track", "event": "Clicked", "anonymousId": anonymous_id, "messageId": str(uuid.uuid4())}


def _suppressed(collector: CollectorProcess) -> float:
    text = collector.metrics()
    return sum(float(v) for v in re.findall(r'trackway_collector_events_suppressed_total\{source="web"\} (\S+)', text))


def test_suppression_is_picked_up_within_a_poll_without_a_restart_and_lifted_by_unsuppress(trackway_env, capsys):
    home = trackway_env
    collector = CollectorProcess(home, TRACKWAY_PRIVACY_POLL_SECONDS=POLL).start()
    store = local_store(home)
    try:
        assert main(["privacy", "request", "--type", "suppress_only", "--anonymous-id", "anon-quiet"]) == 0
        probe = _track("anon-quiet")
        wait_for(lambda: _post(collector, "/v1/track", probe) and _suppressed(collector) >= 1, "the suppression")
        time.sleep(3 * float(POLL))  # every worker has polled since (each polls on its own)
        quiet = []

        # Batches: suppressed events (and their quarantine records) vanish; the answer looks like any other.
        kept = _track("anon-loud")
        quiet = [_track("anon-quiet"), _track("anon-quiet")]
        batch = {"batch": [quiet[0], kept, {"type": "track", "anonymousId": "anon-quiet"}]}
        answer = _post(collector, "/v1/batch", batch)
        assert answer.status_code == 200 and answer.json()["success"] is True
        only_quiet = _post(collector, "/v1/batch", {"batch": [quiet[1]]})
        assert only_quiet.status_code == 200 and only_quiet.json()["success"] is True  # not "none is valid"
        assert _post(collector, "/v1/page", {"anonymousId": "anon-quiet", "name": "Home"}).json() == {"success": True}
        wait_for_events(store, [kept["messageId"]])
        assert _suppressed(collector) >= 5
        stored = repr(read_lines(store, "events/") + read_lines(store, "quarantine/"))
        assert not [m for m in quiet if m["messageId"] in stored]  # (probes sent before the pick-up may be stored)
        assert stored.count("anon-quiet") == stored.count(probe["messageId"])

        # unsuppress is its own audited request: events are accepted again, without a restart.
        assert main(["privacy", "request", "--type", "unsuppress", "--anonymous-id", "anon-quiet"]) == 0
        back = _track("anon-quiet")

        def accepted() -> bool:
            _post(collector, "/v1/track", {**back, "messageId": str(uuid.uuid4())})
            return any(r["anonymousId"] == "anon-quiet" for r in read_lines(store, "events/"))

        wait_for(accepted, "anon-quiet's events to be accepted again")
        capsys.readouterr()
        assert main(["privacy", "status"]) == 0
        assert re.findall(r"(suppress_only|unsuppress)\s+finished", capsys.readouterr().out) == [
            "suppress_only",
            "unsuppress",
        ]
    finally:
        collector.close()


def test_a_collector_that_cannot_match_suppressed_subjects_refuses_to_start(trackway_env, tmp_path, monkeypatch):
    home = trackway_env
    key = "b" * 64
    raw = (home / "raw").as_uri()
    monkeypatch.setenv("TRACKWAY_RAW_URL", raw)  # not the embedded default: the key must be given
    monkeypatch.setenv("TRACKWAY_PRIVACY_LEDGER_KEY", key)
    assert main(["privacy", "request", "--type", "suppress_only", "--user-id", "u-9"]) == 0

    keyless = CollectorProcess(home, TRACKWAY_RAW_URL=raw)
    try:
        keyless.start()
        raise AssertionError("a collector without the ledger key started")
    except AssertionError as exc:
        assert "exited with 2" in str(exc) and "has no ledger key" in keyless.stderr
    wrong = CollectorProcess(home, TRACKWAY_RAW_URL=raw, TRACKWAY_PRIVACY_LEDGER_KEY="c" * 64)
    try:
        wrong.start()
        raise AssertionError("a collector with another ledger key started")
    except AssertionError as exc:
        assert "exited with 2" in str(exc) and "written under key" in wrong.stderr
    assert key not in keyless.stderr + wrong.stderr

    # With the key it starts; a damaged published set later keeps the last one read in force.
    ok = CollectorProcess(
        home, TRACKWAY_RAW_URL=raw, TRACKWAY_PRIVACY_LEDGER_KEY=key, TRACKWAY_PRIVACY_POLL_SECONDS=POLL
    )
    ok.start()
    try:
        copies = [ok.spool_dir / f"w{n}" / ".suppressed-subjects.json" for n in range(2)]
        wait_for(lambda: all(p.exists() for p in copies), "both workers to read the set")
        (home / "raw" / "_privacy" / "subjects.json").write_text("{not json")
        wait_for(lambda: "previous set stays in force" in ok.stderr, "the damaged set to be noticed")
        _post(ok, "/v1/track", {"type": "track", "event": "E", "userId": "u-9"})
        wait_for(lambda: _suppressed(ok) >= 1, "u-9 to be suppressed still")
    finally:
        ok.close()
    # A damaged set and no earlier copy: the collector does not start (it could not tell whom to drop).
    fresh = CollectorProcess(tmp_path / "fresh", TRACKWAY_RAW_URL=raw, TRACKWAY_PRIVACY_LEDGER_KEY=key)
    try:
        fresh.start()
        raise AssertionError("a collector started with a damaged subject set")
    except AssertionError as exc:
        assert "exited with 2" in str(exc) and "damaged" in fresh.stderr
