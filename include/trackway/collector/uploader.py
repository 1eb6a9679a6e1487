"""Moves sealed spool segments into the object store, one gzip'd object each.

A segment is deleted from the spool only after its object is stored, and
its object key comes from the segment's name alone; so a crash anywhere in
between leads to the same object being written again, never to loss or a
second copy. When the store fails the segment stays queued and is retried
with exponential backoff, so an outage only grows the spool.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
from isal import igzip

from trackway.collector.spool import UPLOAD_TMP_PREFIX, SealedSegment
from trackway.collector.stats import Stats
from trackway.objectstore import ObjectStore, fsync_dir
from trackway.rawdata.partitions import is_late, late_pointer_key

log = logging.getLogger("trackway.collector.uploader")

# A segment is set aside after this many failed attempts, if other segments uploaded meanwhile.
SET_ASIDE_AFTER = 5
SET_ASIDE_DIR = ".set-aside"


class Uploader:
    def __init__(
        self,
        store: ObjectStore,
        spool_dir: Path,
        stats: Stats,
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        on_uploaded: Callable[[SealedSegment], None] | None = None,
    ) -> None:
        self.on_uploaded = on_uploaded
        self.store = store
        self.spool_dir = Path(spool_dir)
        self.stats = stats
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._queue: deque[SealedSegment] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.set_aside_count = 0  # segments that did not reach the store this run (kept in .set-aside/)

    def enqueue(self, segment: SealedSegment) -> None:
        with self._cond:
            self._queue.append(segment)
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="uploader", daemon=True)
        self._thread.start()

    def drain(self) -> bool:
        """Upload everything queued (retrying) and stop; True if nothing is left behind or set aside."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)  # short joins keep the main thread responsive to signals
        return self.pending() == 0 and self.set_aside_count == 0

    def abort(self) -> None:
        """Stop retrying (second signal): what is left stays in the spool for the next start."""
        self._abort.set()
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        delay = self.backoff_initial
        failing: dict[str, tuple[int, int]] = {}  # segment name -> (failed attempts, successes before the first)
        successes = 0
        while not self._abort.is_set():
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                segment = self._queue[0]
            if self.upload(segment):
                with self._cond:
                    self._queue.popleft()
                failing.pop(segment.path.name, None)
                successes += 1
                if delay != self.backoff_initial:
                    self.stats.set_backoff(0.0)
                delay = self.backoff_initial
                continue
            attempts, before = failing.get(segment.path.name, (0, successes))
            attempts += 1
            failing[segment.path.name] = (attempts, before)
            # One segment that keeps failing while others upload is the segment's problem (unreadable
            # file, a key the store refuses), not the store's: set it aside so the rest keep flowing.
            # During an outage nothing uploads, so nothing is ever set aside for it.
            if attempts >= SET_ASIDE_AFTER and successes > before:
                with self._cond:
                    self._queue.popleft()
                failing.pop(segment.path.name, None)
                self.set_aside(segment, self.last_error or "repeated upload failures")
                continue
            with self._cond:
                if len(self._queue) > 1:
                    self._queue.rotate(-1)  # the others go first: one bad segment does not hold the queue
                all_failing = all(s.path.name in failing for s in self._queue)
            if not all_failing:
                continue
            # Exponential backoff with jitter, so many collectors do not retry in step after an outage.
            wait = delay * (0.5 + random.random() / 2)  # noqa: S311 (jitter, not a secret)
            self.stats.add("upload_retries")
            self.stats.set_backoff(wait)
            log.warning(
                "upload: will retry %s in %.1fs; %d segment(s) (%d bytes) waiting in %s",
                segment.path.name,
                wait,
                self.pending(),
                _spool_bytes(self._queue),
                self.spool_dir,
            )
            self._abort.wait(wait)
            delay = min(delay * 2, self.backoff_max)

    def set_aside(self, segment: SealedSegment, reason: str) -> None:
        """Move a segment that keeps failing to ``.set-aside/`` with its reason; it is never deleted.

        Visible in /metrics (``trackway_collector_segments_set_aside``), /health and
        ``trackway status``; once its cause is fixed, moving it back into the worker's
        spool folder uploads it at the next start.
        """
        folder = self.spool_dir / SET_ASIDE_DIR
        folder.mkdir(exist_ok=True)
        target = folder / segment.path.name
        try:
            os.replace(segment.path, target)
            (folder / (segment.path.name + ".reason")).write_text(reason + "\n")
            fsync_dir(folder)
            fsync_dir(self.spool_dir)
        except OSError as exc:
            log.error("upload: could not set %s aside (%s); it stays in the spool", segment.path.name, exc)
            return
        self.set_aside_count += 1
        self.stats.add("segments_set_aside")
        log.error(
            "upload: set aside %s after %d failed attempts while other segments uploaded: %s. It is kept in %s; "
            "fix the cause, then move it back into %s",
            segment.path.name,
            SET_ASIDE_AFTER,
            reason,
            target,
            self.spool_dir,
        )
        if self.on_uploaded is not None:
            self.on_uploaded(segment)  # out of the pending count: it no longer holds up the spool's cap

    def upload(self, segment: SealedSegment) -> bool:
        """One attempt; False (and the segment left in place) on any failure."""
        tmp = self.spool_dir / f"{UPLOAD_TMP_PREFIX}{segment.stream}-{segment.segment_id}.ndjson.gz"
        if not segment.path.exists():
            log.warning("upload: %s is gone from the spool; skipping it", segment.path.name)
            if self.on_uploaded is not None:
                self.on_uploaded(segment)
            return True
        try:
            raw_bytes = segment.path.stat().st_size
            lines = _gzip_file(segment.path, tmp)
            late = lines > 0 and is_late(segment.hour_start, datetime.now(UTC))
            if late:
                # The pointer first: an object in a partition older than the loader's sweep must be findable.
                pointer = {"key": segment.object_key, "stream": segment.stream, "uploaded_at": _now_iso()}
                self.store.put_bytes(f"late/{late_pointer_key(segment.object_key)}", orjson.dumps(pointer))
            if lines:
                self.store.put_file(segment.object_key, tmp)
            segment.path.unlink()
            fsync_dir(self.spool_dir)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.stats.add("upload_failures")
            log.error(
                "upload: could not store %s as %s: %s: %s (segment kept in the spool)",
                segment.path.name,
                self.store.url_for(segment.object_key),
                type(exc).__name__,
                exc,
            )
            return False
        finally:
            tmp.unlink(missing_ok=True)
        if self.on_uploaded is not None:
            self.on_uploaded(segment)
        if lines:
            self.stats.add("objects_written")
            if late:
                self.stats.add("late_objects_written")
                log.warning(
                    "late upload: %s belongs to hour %s %s:00 UTC; the load's sweep (TRACKWAY_LOAD_SWEEP_DAYS) "
                    "picks it up, or `trackway load --hour %sT%s` if it is older than the sweep",
                    self.store.url_for(segment.object_key),
                    segment.dt,
                    segment.hour,
                    segment.dt,
                    segment.hour,
                )
            log.info(
                "rotated %s segment (%s): %d %s, %d bytes -> %s",
                segment.stream,
                segment.reason,
                lines,
                "event(s)" if segment.stream == "events" else "quarantined event(s)",
                raw_bytes,
                self.store.url_for(segment.object_key),
            )
        return True


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _gzip_file(src: Path, dst: Path) -> int:
    """Gzip ``src`` into ``dst`` deterministically (mtime 0); return the line count.

    ISA-L's level 1 (adr/0046): 4.6x zlib's level 1 on 1 KB events, and smaller output, on
    the cores the workers answer on. Any gzip reader reads it.
    """
    lines = 0
    with (
        open(src, "rb") as fin,
        open(dst, "wb") as raw_out,
        igzip.IGzipFile(filename="", mode="wb", fileobj=raw_out, mtime=0, compresslevel=1) as out,
    ):
        while chunk := fin.read(1024 * 1024):
            lines += chunk.count(b"\n")
            out.write(chunk)
    return lines


def _spool_bytes(segments) -> int:
    total = 0
    for seg in list(segments):
        with contextlib.suppress(OSError):
            total += seg.path.stat().st_size
    return total
