"""Duplicates are per source: a low-trust source cannot erase another source's events (issue 15).

Before, dedup keyed on messageId alone, so whoever holds the public browser
write key could send a backend event's predictable messageId first and make
the genuine backend event a "duplicate". Now a messageId only names a
message within its source, as in Segment, and event_id stays what it was
for rows already loaded.

The warehouse is first built by the release before this rule (its dbt
project taken from git at BEFORE_SOURCE_DEDUP), with two loads: a
collision the old rule suppressed a day ago (m-9), and one an hour ago
(m-3). Then the current project runs incrementally over a third load, and
finally --full-refresh; on DuckDB and a real PostgreSQL.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dbt_helpers import DBT_DIR, INSERT_RAW, Warehouse, dbt_test_statuses, make_warehouse, raw_row

# The last commit whose models deduplicated on messageId alone.
BEFORE_SOURCE_DEDUP = "a00b4dbb2e16da8788635dd22f2fc828002d14af"
REPO = DBT_DIR.parents[1]
LOADED = [
    datetime(2026, 11, 20, 13, tzinfo=UTC),  # a day before the others: outside the 180-min lookback
    datetime(2026, 11, 21, 12, tzinfo=UTC),
    datetime(2026, 11, 21, 13, tzinfo=UTC),  # its run re-reads the load before (inside the lookback)
]


def scoped_id(source_id: str, message_id: str) -> str:
    """What macros/event_ids.sql computes for a message whose messageId another source claimed first."""
    return "trackway:" + hashlib.md5(f"{len(source_id)}|{source_id}|{message_id}".encode()).hexdigest()


def ev(message_id: str, source_id: str, received: str, **fields) -> str:
    event = {
        "messageId": message_id,
        "type": "track",
        "event": fields.pop("event", "Order Completed"),
        "userId": "u-1",
        "receivedAt": f"2026-11-{received}Z",
        "sourceId": source_id,
        **fields,
    }
    return json.dumps(event)


FORGED = scoped_id("backend", "m-7")
BATCHES = [
    [
        # Old rule: the browser's copy came first, so backend's m-9 was dropped.
        ev("m-9", "web", "20T10:00:00", event="Forged"),
        ev("m-9", "backend", "20T10:00:05"),
        ev("a-1", "web", "20T10:01:00", event="Page Seen"),
    ],
    [
        ev("m-1", "web", "21T10:00:00", event="Clicked"),
        ev("m-3", "web", "21T10:00:01", event="Forged"),
        ev("m-3", "backend", "21T10:00:02"),  # suppressed by the old rule; recovered by the next run
        ev("a-2", "backend", "21T10:00:03"),
    ],
    [
        ev("m-1", "backend", "21T12:00:00"),  # the browser's m-1 is in analytics.events since the last run
        ev("m-1", "web", "21T12:00:01", event="Clicked"),  # a same-source retry: no new row
        ev("m-5", "backend", "21T12:00:02"),
        ev("m-5", "backend", "21T12:00:03"),  # a same-source retry in the same batch
        ev("m-5", "web", "21T12:00:04", event="Forged"),  # a later source: its own, distinct id
        # Forging the id backend's m-7 will get, before backend's m-7: reserved, so never taken as sent.
        ev(FORGED, "web", "21T12:00:05", event="Forged"),
        ev("m-7", "web", "21T12:00:06", event="Forged"),
        ev("m-7", "backend", "21T12:00:07"),
    ],
]


def load(wh: Warehouse, index: int) -> None:
    obj = f"file:///srv/trackway/raw/events/batch-{index}.ndjson.gz"
    wh.execute(
        INSERT_RAW, [raw_row(line, obj, n, f"load-{index}", LOADED[index]) for n, line in enumerate(BATCHES[index], 1)]
    )


def project_before(work: Path) -> Path:
    """The dbt project as it was at BEFORE_SOURCE_DEDUP (needs the git history, as a clone has)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", BEFORE_SOURCE_DEDUP, "include/dbt"],
        capture_output=True,
        check=False,
    )
    assert archive.returncode == 0, f"needs commit {BEFORE_SOURCE_DEDUP} in the clone: {archive.stderr.decode()}"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(work / "before", filter="data")
    old = work / "before-source-dedup"
    (work / "before" / "include" / "dbt").rename(old)
    return old


def ids(wh: Warehouse) -> dict[tuple[str, str, int], str]:
    """(source_object, source_id, line_number) -> event_id: where each row came from, and its key."""
    rows = wh.query("select source_object, source_id, line_number, event_id from analytics.events")
    return {(r["source_object"][-17:], r["source_id"], r["line_number"]): r["event_id"] for r in rows}


def failures(result) -> dict[str, int]:
    """Data tests that did not pass, with their number of failing rows."""
    return {
        r.node.name: r.failures
        for r in result.result.results
        if r.node.resource_type == "test" and str(r.status) != "pass"
    }


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def upgraded(request, tmp_path_factory):
    work = tmp_path_factory.mktemp(f"source-dedup-{request.param}")
    wh = make_warehouse(request.param, work, request, "trackway_source_dedup")
    before = project_before(work)
    wh.old_results = []
    for index in (0, 1):
        load(wh, index)
        result, _ = wh.dbt("build", project_dir=before)
        wh.old_results.append(result)
    wh.ids_before = ids(wh)
    load(wh, 2)
    wh.upgrade_result, seconds = wh.dbt("build")
    print(f"\nincremental run of the current models over the old warehouse on {wh.kind}: {seconds:.1f}s")
    wh.ids_after_upgrade = ids(wh)
    wh.full_refresh_result, seconds = wh.dbt("build", "--full-refresh")
    print(f"full refresh on {wh.kind}: {seconds:.1f}s")
    wh.ids_after_full_refresh = ids(wh)
    return wh


def test_the_old_rule_let_one_source_erase_anothers_events(upgraded):
    """The premise, on the old models: backend's m-9 and m-3 made no row."""
    assert all(r.success for r in upgraded.old_results)
    b0, b1 = "batch-0.ndjson.gz", "batch-1.ndjson.gz"
    assert upgraded.ids_before == {
        (b0, "web", 1): "m-9",
        (b0, "web", 3): "a-1",
        (b1, "web", 1): "m-1",
        (b1, "web", 2): "m-3",
        (b1, "backend", 4): "a-2",
    }


def test_rows_loaded_before_keep_their_event_id(upgraded):
    for key, event_id in upgraded.ids_before.items():
        assert upgraded.ids_after_upgrade[key] == event_id, key
        assert upgraded.ids_after_full_refresh[key] == event_id, key


def test_every_source_has_its_messages_in_analytics_events(upgraded):
    got = upgraded.ids_after_upgrade
    b2 = "batch-2.ndjson.gz"
    # Backend's m-1 arrived after the browser's m-1 was loaded: the browser keeps m-1, backend gets its own id.
    assert got[(b2, "backend", 1)] == scoped_id("backend", "m-1")
    assert (b2, "web", 2) not in got  # the browser's retry of m-1 is a duplicate within its source
    # In one batch: backend sent m-5 first (and retried it), then the browser.
    assert got[(b2, "backend", 3)] == "m-5" and (b2, "backend", 4) not in got
    assert got[(b2, "web", 5)] == scoped_id("web", "m-5")
    # The browser sent m-7 and the id backend's m-7 would get, both first: backend's m-7 is still there, and
    # the forged messageId got an id of its own (a reserved messageId is never an event_id as sent).
    assert got[(b2, "backend", 8)] == scoped_id("backend", "m-7")
    assert got[(b2, "web", 7)] == "m-7"
    assert got[(b2, "web", 6)] == scoped_id("web", FORGED)
    # Batch 1 was re-read (inside the lookback): backend's m-3, dropped by the old rule, is recovered.
    assert got[("batch-1.ndjson.gz", "backend", 3)] == scoped_id("backend", "m-3")
    assert len(set(got.values())) == len(got)


def test_an_event_the_old_rule_erased_long_ago_is_reported_then_a_full_refresh_recovers_it(upgraded):
    """Outside the lookback, backend's m-9 is not re-read: the accounting test names it, nothing else fails."""
    assert failures(upgraded.upgrade_result) == {"assert_every_raw_line_is_accounted_for": 1}
    assert ("batch-0.ndjson.gz", "backend", 2) not in upgraded.ids_after_upgrade
    assert upgraded.full_refresh_result.success
    assert set(dbt_test_statuses(upgraded.full_refresh_result).values()) == {"pass"}
    full = upgraded.ids_after_full_refresh
    assert full[("batch-0.ndjson.gz", "backend", 2)] == scoped_id("backend", "m-9")
    # The full refresh computes the same ids as the incremental runs, plus the recovered event.
    assert {k: v for k, v in full.items() if k != ("batch-0.ndjson.gz", "backend", 2)} == upgraded.ids_after_upgrade
