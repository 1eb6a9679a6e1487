"""One bad segment does not hold up the spool; an outage sets nothing aside.

Real parts: the collector's uploader thread, a local object store, segment files on
disk. The "bad segment" is a directory where a segment file should be: reading it
fails every time (IsADirectoryError), as an unreadable file (EIO) would, which cannot
be provoked as root on a healthy disk.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from collector_helpers import wait_for
from trackway.collector.spool import SealedSegment
from trackway.collector.stats import Stats
from trackway.collector.uploader import SET_ASIDE_AFTER, SET_ASIDE_DIR, Uploader
from trackway.objectstore import LocalObjectStore


def _segment(spool: Path, n: int, *, bad: bool = False) -> SealedSegment:
    name = f"events~2026-11-23~14~20261123T1400{n:02d}-host-w0-{n:03d}.sealed"
    path = spool / name
    if bad:
        path.mkdir()
    else:
        path.write_text(json.dumps({"messageId": f"m-{n}", "type": "track"}) + "\n")
    return SealedSegment(path, "events", "2026-11-23", "14", f"20261123T1400{n:02d}-host-w0-{n:03d}")


def test_a_segment_that_keeps_failing_is_set_aside_and_the_rest_flow(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    store = LocalObjectStore(tmp_path / "raw")
    stats = Stats()
    uploaded: list[str] = []
    uploader = Uploader(
        store, spool, stats, backoff_initial=0.01, backoff_max=0.05, on_uploaded=lambda s: uploaded.append(s.path.name)
    )
    bad = _segment(spool, 0, bad=True)
    uploader.enqueue(bad)  # at the head of the queue, where it used to block everything behind it
    for n in range(1, 4):
        uploader.enqueue(_segment(spool, n))
    uploader.start()
    wait_for(lambda: len(store.list("events/")) == 3, "the good segments to upload past the bad one")
    wait_for(lambda: stats.get("segments_set_aside") == 1, "the bad segment to be set aside")
    assert not uploader.drain(), "a run that set a segment aside did not get everything to the store"
    kept = spool / SET_ASIDE_DIR / bad.path.name
    assert kept.exists(), "a set-aside segment is kept, never deleted"
    reason = (spool / SET_ASIDE_DIR / (bad.path.name + ".reason")).read_text()
    assert "IsADirectoryError" in reason
    assert stats.get("upload_failures") >= SET_ASIDE_AFTER
    assert bad.path.name in uploaded  # out of the pending count


def test_an_outage_sets_nothing_aside(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the store's folder should be: every upload fails")
    stats = Stats()
    uploader = Uploader(LocalObjectStore(blocked / "raw"), spool, stats, backoff_initial=0.01, backoff_max=0.02)
    for n in range(3):
        uploader.enqueue(_segment(spool, n))
    uploader.start()
    wait_for(lambda: stats.get("upload_failures") >= 4 * SET_ASIDE_AFTER, "many failed attempts")
    uploader.abort()
    time.sleep(0.1)
    assert stats.get("segments_set_aside") == 0
    assert not (spool / SET_ASIDE_DIR).exists()
    assert sorted(p.name for p in spool.iterdir() if p.is_file()) == sorted(
        f"events~2026-11-23~14~20261123T1400{n:02d}-host-w0-{n:03d}.sealed" for n in range(3)
    )
