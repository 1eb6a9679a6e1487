"""The erasure request ledger: keyed subject hashes, the CLI, both stores and the rebuild of either from the other."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from datetime import UTC, datetime, timedelta

import pytest

from trackway.cli import main
from trackway.config import ConfigError, load_settings
from trackway.subjects.keys import SubjectKey, ledger_key
from trackway.subjects.ledger import FINISHED, LINKED, Request, RequestEvent, RequestState, Subject
from trackway.subjects.sets import SubjectFilter, subject_filter
from trackway.warehouse import open_warehouse

REQUEST_ID = re.compile(r"rq-\d{8}T\d{6}-[0-9a-f]{8}")
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["privacy", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_subject_hashes_are_keyed_stable_and_never_show_the_key():
    key, other = SubjectKey(b"k" * 32), SubjectKey(b"j" * 32)
    assert key.hash("user-1") == key.hash("user-1") != other.hash("user-1")
    assert len(key.hash("user-1")) == 64 and "user-1" not in key.hash("user-1")
    assert key.key_id != other.key_id and key.key_id.startswith("k")
    assert "kkkk" not in repr(key) and "kkkk" not in key.key_id


def test_the_embedded_default_generates_a_private_key_and_elsewhere_a_missing_key_fails_closed(
    trackway_env, monkeypatch, capsys
):
    settings = load_settings()
    key = ledger_key(settings)
    path = trackway_env / "privacy" / "ledger.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ledger_key(load_settings()) == key  # generated once, then read
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        ledger_key(load_settings())
    os.chmod(path, 0o600)

    monkeypatch.setenv("TRACKWAY_RAW_URL", (trackway_env / "elsewhere").as_uri())  # no longer the embedded default
    code, out, err = _cli(capsys, "request", "--type", "delete_only", "--user-id", "u-1")
    assert code == 2 and out == "" and "TRACKWAY_PRIVACY_LEDGER_KEY is not set" in err
    monkeypatch.setenv("TRACKWAY_PRIVACY_LEDGER_KEY", "too-short")
    code, _, err = _cli(capsys, "status")
    assert code == 2 and "shorter than 32 characters" in err and "too-short" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "delete_only"], "at least one subject"),
        (["--type", "delete_only", "--user-id", "  "], "is empty"),
        (["--type", "delete_only", "--user-id", "x" * 2000], "longer than 1024"),
        (["--type", "delete_only", "--user-id", "u", "--reason", "r" * 600], "reason is longer"),
    ],
)
def test_bad_requests_are_refused_with_what_to_fix(trackway_env, capsys, args, message):
    code, out, err = _cli(capsys, "request", *args)
    assert code == 2 and out == "" and message in err
    with pytest.raises(SystemExit):
        main(["privacy", "request", "--type", "forget_everything", "--user-id", "u"])


def test_requests_live_in_both_stores_as_hashes_and_either_store_rebuilds_the_other(warehouse_env, capsys, monkeypatch):
    home = warehouse_env
    monkeypatch.setenv("TRACKWAY_PRIVACY_LEDGER_KEY", "e" * 64)  # PostgreSQL is not the embedded default
    code, out, _ = _cli(capsys, "request", "--type", "suppress_with_delete", "--user-id", "alice@example.com")
    assert code == 0
    first = REQUEST_ID.fullmatch(out.strip()).group()
    code, out, _ = _cli(capsys, "request", "--type", "delete_only", "--anonymous-id", "anon-77", "--reason", "T-1")
    second = out.strip()
    settings = load_settings()

    mirror = home / "raw" / "_privacy"
    files = sorted(p.relative_to(mirror).as_posix() for p in mirror.rglob("*.json"))
    assert f"requests/{first}/request.json" in files and f"requests/{second}/events/000001.json" in files
    with open_warehouse(settings.warehouse) as wh:
        stored = repr(wh.query("SELECT * FROM privacy.requests")) + repr(
            wh.query("SELECT * FROM privacy.request_events")
        )
    everything = stored + "".join(p.read_text() for p in mirror.rglob("*.json"))
    assert "alice@example.com" not in everything and "anon-77" not in everything  # hashes only
    assert "T-1" in stored  # the reason is kept (the CLI says: never personal data there)

    code, out, _ = _cli(capsys, "status", "--json")
    before = json.loads(out)
    assert [(s["request_id"], s["type"], s["status"]) for s in before] == [
        (first, "suppress_with_delete", "pending"),
        (second, "delete_only", "pending"),
    ]
    assert before[0]["stores"]["suppression"]["status"] == "done"
    due = datetime.fromisoformat(before[0]["due_at"]) - datetime.fromisoformat(before[0]["received_at"])
    assert due == timedelta(days=30)

    # The warehouse loses its ledger: the object store brings it back.
    with open_warehouse(settings.warehouse) as wh:
        wh.execute("DROP SCHEMA privacy CASCADE")
    code, out, _ = _cli(capsys, "status", "--json")
    assert json.loads(out) == before
    # The object store loses its copy: the warehouse brings it back.
    shutil.rmtree(mirror / "requests")
    assert _cli(capsys, "status", "--json")[1] == out
    assert sorted(p.relative_to(mirror).as_posix() for p in mirror.rglob("*.json")) == files

    code, out, _ = _cli(capsys, "status", second)
    assert code == 0 and second in out and "delete_only" in out
    code, _, err = _cli(capsys, "status", "rq-20260101T000000-00000000")
    assert code == 1 and "no erasure request" in err


def _state(rid: str, kind: str, hashes: list[str], at: datetime, finished: datetime | None = None) -> RequestState:
    request = Request(
        rid, kind, tuple(Subject("user_id", h) for h in hashes), at, at + timedelta(days=30), None, "k1", "cli"
    )
    state = RequestState(request)
    if finished:
        state.events.append(RequestEvent(rid, 1, finished, FINISHED))
    return state


def test_the_subject_set_drops_what_each_request_says_and_nothing_else():
    day = timedelta(days=1)
    pending = _state("rq-1", "delete_only", ["a"], T0)
    done = _state("rq-2", "delete_only", ["b"], T0, finished=T0 + day)
    suppressed = _state("rq-3", "suppress_only", ["c"], T0)
    both = _state("rq-4", "suppress_with_delete", ["d"], T0)
    both.events.append(RequestEvent("rq-4", 1, T0, LINKED, detail={"hashes": ["d2"], "links": {"d": ["d2"]}}))
    both.events.append(RequestEvent("rq-4", 2, T0 + day, FINISHED))
    lifted = _state("rq-5", "unsuppress", ["d"], T0 + 5 * day)
    reopened = _state("rq-6", "delete_only", ["e"], T0, finished=T0 + day)
    reopened.events.append(
        RequestEvent("rq-6", 2, T0 + 2 * day, LINKED, detail={"hashes": ["e2"], "links": {"e": ["e2"]}})
    )
    assert reopened.status == "pending"  # an id linked after it finished: to be deleted too
    subjects = subject_filter([pending, done, suppressed, both, lifted, reopened], "k1")

    assert subjects.drops("a", T0 + 100 * day) and subjects.drops("a", None)  # pending: everything
    assert subjects.drops("b", T0) and not subjects.drops("b", T0 + 2 * day)  # deleted: only before it finished
    assert not subjects.drops("c", T0 - day) and subjects.drops("c", T0 + 9 * day)  # suppressed: from the request on
    assert subjects.suppressed == {"c"}  # d and its linked d2 were unsuppressed
    for digest in ("d", "d2"):  # deleted before T0 + 1 day, suppressed until the unsuppress on day 5
        assert subjects.drops(digest, T0 + 4 * day) and not subjects.drops(digest, T0 + 6 * day)
    assert subjects.drops("e", T0 + 9 * day) and subjects.drops("e2", None)  # pending again: everything
    assert not subjects.drops("z", None)
    assert SubjectFilter.from_document(json.loads(json.dumps(subjects.document(T0)))) == subjects
