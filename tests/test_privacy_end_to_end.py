"""Erasure end to end (issue 17 §3, §5): a visitor becomes user U through real SDK calls, U asks to be forgotten.

Everything is real: the collector is its own process and the official Segment SDK its
client; loads run through the loader and Airflow's ``dag.test`` of events_load; dbt
builds on DuckDB (with the ledger key generated into TRACKWAY_HOME) and on a real
PostgreSQL server (with TRACKWAY_PRIVACY_LEDGER_KEY). After ``trackway privacy run``,
``verify`` shows 0 in every store including the raw objects; a reload of every hour (with a
stale copy of an object that was never rewritten), a backfill and a ``--full-refresh``
still show 0, and dbt's test that no erased subject is in any mart passes; U's and U's
anonymous id's new events are dropped by the collector; every other person's events are
intact, row for row.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from segment.analytics import Client

from collector_helpers import WRITE_KEYS_SPEC, CollectorProcess, local_store, read_lines, wait_for, wait_for_events
from trackway.cli import main
from trackway.config import load_settings
from trackway.load.loader import load_interval
from trackway.rawdata.partitions import hour_floor, hours_between
from trackway.subjects.keys import ledger_key
from trackway.transform.dbt_runner import run_dbt
from trackway.warehouse import open_warehouse

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

U, A = "user-forget-me", "anon-forget-me"  # the person who asks to be forgotten, and their device
OTHERS = {"user-stays": "anon-stays", None: "anon-only"}  # everyone else must be untouched
KEY = "0123456789abcdef" * 4


def _send(port: int, calls: list[tuple[str, dict]]) -> list[str]:
    """Send through the official Segment SDK; returns the message ids."""
    failed: list[str] = []
    client = Client(
        "key-web",
        host=f"http://127.0.0.1:{port}",
        upload_size=50,
        max_retries=1,
        on_error=lambda exc, batch: failed.extend(m["messageId"] for m in batch),
    )
    ids = []
    for method, kwargs in calls:
        kwargs.setdefault("message_id", str(uuid.uuid4()))
        getattr(client, method)(**kwargs)
        ids.append(kwargs["message_id"])
    client.flush()
    client.shutdown()
    assert failed == []
    return ids


def _visits() -> list[tuple[str, dict]]:
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    calls: list[tuple[str, dict]] = []
    for i in range(3):  # the anonymous visitor
        calls.append(("page", {"anonymous_id": A, "name": "Home", "timestamp": t0 + timedelta(seconds=i)}))
    calls.append(("identify", {"user_id": U, "anonymous_id": A, "traits": {"email": "u@example.com"}}))
    calls.append(("track", {"user_id": U, "anonymous_id": A, "event": "Listing Viewed", "properties": {"n": 1}}))
    for user, anonymous in OTHERS.items():
        for i in range(4):
            kwargs = {"anonymous_id": anonymous, "event": "Listing Viewed", "properties": {"i": i}}
            calls.append(("track", {**kwargs, **({"user_id": user} if user else {})}))
    calls.append(("identify", {"user_id": "user-stays", "anonymous_id": "anon-stays", "traits": {"plan": "pro"}}))
    return calls


def _quarantine_for_u(port: int) -> None:
    """A batch with one valid event and one invalid event of U's: the invalid one goes to the quarantine."""
    batch = {
        "batch": [
            {"type": "track", "userId": "user-stays", "event": "Listing Viewed", "messageId": str(uuid.uuid4())},
            {"type": "track", "userId": U, "anonymousId": A, "messageId": str(uuid.uuid4())},  # no event name
        ]
    }
    answer = requests.post(f"http://127.0.0.1:{port}/v1/batch", json=batch, auth=("key-web", ""), timeout=10)
    assert answer.json()["quarantined"] == 1


def _cli(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["privacy", *args])
    return code, capsys.readouterr().out


def _load_dag():
    spec = importlib.util.spec_from_file_location("dag_events_load_privacy", REPO_ROOT / "dags" / "events_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.events_load()


def _others(settings) -> dict[str, list]:
    """Everyone else's rows, in the columns no reload changes, sorted: raw lines (distinct: the late copy
    duplicates some, as any re-sent object would) and marts."""
    people = "('user-stays', 'anon-stays', 'anon-only')"
    queries = {
        "raw": f"SELECT raw FROM raw.events_raw WHERE user_id IN {people} OR anonymous_id IN {people}",
        "events": "SELECT event_id, event_name, user_id, anonymous_id, person_id, session_id, occurred_at, "
        f"CAST(properties AS VARCHAR) FROM analytics.events WHERE user_id IN {people} OR anonymous_id IN {people}",
        "sessions": f"SELECT session_id, anonymous_id, user_id, events FROM analytics.sessions WHERE anonymous_id IN {people}",
        "users": f"SELECT user_id, person_id, anonymous_ids FROM analytics.users WHERE user_id IN {people}",
        "identity_map": f"SELECT anonymous_id, user_id, person_id FROM analytics.identity_map WHERE user_id IN {people}",
    }
    with open_warehouse(settings.warehouse, read_only=True) as wh:
        found = {name: sorted(map(repr, wh.query(sql))) for name, sql in queries.items()}
    found["raw"] = sorted(set(found["raw"]))
    return found


def _show(capsys, step: str, **counts) -> None:
    """The counts the closing note of the privacy work asked for (pytest -s shows them)."""
    with capsys.disabled():
        print(f"\n[resurrection] {step}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))


def _assert_u_gone(settings, capsys, request_id: str) -> dict:
    code, out = _cli(capsys, "verify", request_id, "--json")
    result = json.loads(out)
    assert code == 0 and result["clean"], result
    assert set(result["warehouse"].values()) == {0}
    assert result["raw_objects"]["objects"] == result["raw_objects"]["lines"] == 0
    assert result["raw_objects"]["scanned"] > 0
    return result


@pytest.mark.parametrize("warehouse", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_suppress_with_delete_end_to_end(warehouse, trackway_env, monkeypatch, request, capsys, airflow_db):
    home = trackway_env
    env = {"TRACKWAY_PRIVACY_POLL_SECONDS": "0.5"}
    if warehouse == "postgres":
        from postgres_server import create_database

        url = create_database(request.getfixturevalue("postgres_url"), f"privacy_{uuid.uuid4().hex[:8]}")
        monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", url)
        env["TRACKWAY_PRIVACY_LEDGER_KEY"] = KEY  # outside the embedded default the key must be given
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TRACKWAY_WRITE_KEYS", WRITE_KEYS_SPEC)
    store = local_store(home)
    started = hour_floor(datetime.now(UTC))

    collector = CollectorProcess(home, **env).start()
    try:
        sent = _send(collector.port, _visits())
        _quarantine_for_u(collector.port)
        wait_for_events(store, sent)
        wait_for(lambda: read_lines(store, "quarantine/"), "the quarantined event")
        hours = hours_between(started, hour_floor(datetime.now(UTC)) + timedelta(hours=1))
        settings = load_settings()
        for hour in hours:
            load_interval(settings, hour, hour + timedelta(hours=1))
        run_dbt(settings, "build")
        before = _others(settings)
        with open_warehouse(settings.warehouse, read_only=True) as wh:
            assert (
                wh.query("SELECT count(*) FROM analytics.events WHERE user_id = ? OR anonymous_id = ?", [U, A])[0][0]
                == 5
            )
            actives = wh.query("SELECT active_people, active_users, events FROM analytics.daily_active_users")
        _show(capsys, "before the request", u_and_anon_events=5, **{f"others_{k}": len(v) for k, v in before.items()})
        stale = {key: store.read_bytes(key) for key in store.list("events/")}  # copies of the objects as they were

        # 2. The request, then the run.
        code, out = _cli(capsys, "request", "--type", "suppress_with_delete", "--user-id", U, "--reason", "ticket 42")
        assert code == 0
        (request_id,) = re.findall(r"rq-\d{8}T\d{6}-[0-9a-f]{8}", out)
        code, out = _cli(capsys, "run")
        assert code == 0, out
        assert "1 finished, 0 failed" in out
        # Only hashes in the ledger, in both stores: neither id in clear, anywhere.
        ledger_text = "".join(p.read_text() for p in (home / "raw" / "_privacy").rglob("*.json"))
        with open_warehouse(settings.warehouse, read_only=True) as wh:
            ledger_text += repr(wh.query("SELECT * FROM privacy.requests")) + repr(
                wh.query("SELECT * FROM privacy.request_events")
            )
        assert U not in ledger_text and A not in ledger_text and KEY not in ledger_text
        assert json.loads(_cli(capsys, "status", request_id, "--json")[1])["subjects"] == {"requested": 1, "linked": 1}

        # 3. verify: 0 everywhere, raw objects included; daily actives recomputed without U.
        verified = _assert_u_gone(settings, capsys, request_id)
        _show(capsys, "after the privacy run (verify)", **verified["warehouse"], **verified["raw_objects"])
        assert _others(settings) == before
        with open_warehouse(settings.warehouse, read_only=True) as wh:
            recomputed = wh.query("SELECT active_people, active_users, events FROM analytics.daily_active_users")
        assert [(p + 1, u + 1, e + 5) for p, u, e in recomputed] == actives

        # 4. A reload of every hour (plus a stale copy of an object that was never rewritten: a late
        #    duplicate upload), an Airflow backfill of those hours, and a --full-refresh bring nobody back.
        stale_key, stale_body = next((k, v) for k, v in stale.items() if U.encode() in gzip.decompress(v))
        copy_key = stale_key.replace(".ndjson.gz", "-late-copy.ndjson.gz")
        (home / "raw" / copy_key).write_bytes(stale_body)
        erased = sum(load_interval(settings, h, h + timedelta(hours=1), reload=True).erased_lines for h in hours)
        assert erased == sum(b"forget-me" in line for line in gzip.decompress(stale_body).splitlines())
        dag = _load_dag()
        for hour in hours:
            assert dag.test(logical_date=hour + timedelta(hours=1), run_conf={"reload": True}).state == "success"
        report = run_dbt(settings, "build", "--full-refresh")
        assert report.tests_failed == 0
        code, out = _cli(capsys, "run")  # the late copy, filtered at load, is rewritten too
        assert code == 0, out
        verified = _assert_u_gone(settings, capsys, request_id)
        after = _others(settings)
        assert after == before  # every other person's events, row for row
        _show(
            capsys,
            "after a reload of every hour, an Airflow backfill and --full-refresh (verify)",
            lines_erased_at_reload=erased,
            **verified["warehouse"],
            **verified["raw_objects"],
            **{f"others_{k}": len(v) for k, v in after.items()},
        )

        # 5. New events of U and of U's anonymous id are dropped by the collector, counted, never stored.
        later = _send(
            collector.port,
            [
                ("track", {"user_id": U, "event": "Came Back"}),
                ("page", {"anonymous_id": A, "name": "Home"}),
                ("track", {"user_id": "user-stays", "event": "Still Here"}),
            ],
        )
        wait_for_events(store, [later[2]])
        assert not [r for r in read_lines(store, "events/") if r["messageId"] in later[:2]]
        metrics = collector.metrics()
        assert re.search(r'trackway_collector_events_suppressed_total\{source="web"\} 2\.0', metrics), metrics
        _show(capsys, "new events of U and of U's anonymous id", sent=2, stored=0, suppressed=2)

        # 6. The dbt test is not decorative: a row a faulty load let through (its id hashed, as loads hash
        #    the ids they keep) fails it.
        with open_warehouse(settings.warehouse) as wh:
            wh.add_id_hashes(ledger_key(settings), [U])
            wh.execute("INSERT INTO analytics.users (user_id, person_id) VALUES (?, ?)", [U, U])
        caught = run_dbt(settings, "test", "--select", "assert_no_erased_subject_in_any_mart", raise_on_failure=False)
        assert caught.tests_failed == 1
    finally:
        collector.close()
    shutil.rmtree(home / "dbt", ignore_errors=True)
