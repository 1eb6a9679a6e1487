"""The local spool: append-only NDJSON segments, fsync'd before any ack.

Why a spool: the collector must not lose an acknowledged event even if the
object store is down or the process is killed, and per-event object PUTs
would be slow and produce millions of tiny objects. So events are appended
to a local segment file per (stream, received hour) and the segment is
sealed later and handed to the uploader.

Group commit: request threads enqueue their lines and block; one flusher
thread writes everything that queued up meanwhile and covers it with one
fsync per touched segment, then wakes all those requests. Under concurrency
each fsync acknowledges many requests instead of one.

File names (``<stream>~<YYYY-MM-DD>~<HH>~<segment id>.<state>``) carry
everything needed to upload a segment after a crash; the state is ``open``
while appended to and ``sealed`` once closed. The same flusher thread checks
size, age and hour change on a timer, so an idle collector still rotates.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from trackway.objectstore import fsync_dir

log = logging.getLogger("trackway.collector.spool")

STREAMS = ("events", "quarantine")
_NAME = re.compile(
    r"^(?P<stream>[a-z]+)~(?P<dt>\d{4}-\d{2}-\d{2})~(?P<hour>\d{2})~(?P<sid>[A-Za-z0-9-]+)\.(?P<state>open|sealed)$"
)
UPLOAD_TMP_PREFIX = ".upload-"


class SpoolClosed(RuntimeError):
    """The collector is shutting down; the request was not stored."""


class SpoolWriteError(RuntimeError):
    """The spool could not make the lines durable (disk full, I/O error); nothing was acknowledged."""


class SpoolLocked(RuntimeError):
    """Another collector process owns this spool directory."""


def _settle(futures: list[asyncio.Future], error: BaseException | None) -> None:
    for future in futures:
        if future.done():  # the request was cancelled (client went away); its lines are stored anyway
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(SpoolWriteError(str(error)))


def hour_key(received: datetime) -> tuple[str, str]:
    received = received.astimezone(UTC)
    return received.strftime("%Y-%m-%d"), received.strftime("%H")


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname()).strip("-")[:40] or "host"


def new_segment_id(now: datetime | None = None, worker: str = "w0") -> str:
    """Unique across hosts, worker processes and segments; sortable by creation time.

    The object key is derived from it alone, so a re-upload after a crash
    writes the same object again instead of a second copy.
    """
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S}-{_host_tag()}-{worker}-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class SealedSegment:
    path: Path
    stream: str
    dt: str
    hour: str
    segment_id: str
    reason: str = "recovered"

    @property
    def hour_start(self) -> datetime:
        """The UTC hour the segment's events were received in (its partition)."""
        return datetime.strptime(f"{self.dt} {self.hour}", "%Y-%m-%d %H").replace(tzinfo=UTC)

    @property
    def object_key(self) -> str:
        """Derived only from the name, so a re-upload after a crash overwrites, never duplicates."""
        return f"{self.stream}/dt={self.dt}/hour={self.hour}/{self.segment_id}.ndjson.gz"


@dataclass
class _Active:
    stream: str
    dt: str
    hour: str
    segment_id: str
    path: Path
    fd: int
    opened: float
    size: int = 0
    created: float = 0.0


@dataclass
class _Batch:
    items: list = field(default_factory=list)  # (stream, dt, hour, line ending in b"\n")
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    callbacks: list[Callable[[BaseException | None], None]] = field(default_factory=list)
    # append_async's futures, by event loop: one call_soon_threadsafe per loop per group commit.
    futures: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = field(default_factory=dict)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def trim_partial_line(path: Path) -> int:
    """Cut bytes after the last newline (a write that was never acknowledged); return how many."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "r+b") as f:
        pos = size
        keep = 0
        while pos > 0:
            step = min(64 * 1024, pos)
            pos -= step
            f.seek(pos)
            chunk = f.read(step)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                keep = pos + idx + 1
                break
        cut = size - keep
        if cut:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        return cut


class Spool:
    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        max_age_seconds: float,
        on_sealed: Callable[[SealedSegment], None],
        worker: str = "w0",
        on_commit: Callable[[float, int], None] | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.dir = Path(directory)
        self.worker = worker
        self.on_commit = on_commit  # (fsync seconds, lines) after each group commit, for metrics
        self.on_tick = on_tick  # called by the flusher thread on its timer, for gauges
        # Sealed segments not yet uploaded: name -> (bytes, creation time); with the
        # active segments this is the spool's backlog, kept in memory so it is cheap to check.
        self._sealed: dict[str, tuple[int, float]] = {}
        self.max_bytes = max_bytes
        self.max_age = max_age_seconds
        self.on_sealed = on_sealed
        self._tick = max(0.05, min(1.0, max_age_seconds / 4))
        self._cond = threading.Condition()
        self._current = _Batch()
        self._closing = False
        self._active: dict[tuple[str, str, str], _Active] = {}
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        self.commits = 0  # group commits (fsync rounds); requests / commits shows the batching

    # -- lifecycle -------------------------------------------------------

    def lock(self) -> None:
        """Own the directory exclusively: two writers would interleave partial lines."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolLocked(
                f"spool directory {self.dir} is in use by another collector; "
                "give each collector process its own TRACKWAY_SPOOL_DIR"
            ) from None
        self._lock_fd = fd

    def recover(self) -> list[SealedSegment]:
        """Seal whatever a previous process left behind, cutting unacknowledged partial lines."""
        found = []
        for path in sorted(self.dir.iterdir()):
            name = path.name
            if path.is_dir():
                continue  # per-worker spools are recovered by their own Spool
            if name.startswith(UPLOAD_TMP_PREFIX):
                path.unlink(missing_ok=True)  # half-made gzip of a segment that is still here
                continue
            if name.startswith("."):
                continue
            match = _NAME.match(name)
            if not match or match["stream"] not in STREAMS:
                log.warning("spool: ignoring unexpected file %s", path)
                continue
            cut = trim_partial_line(path)
            if cut:
                log.warning(
                    "spool: cut %d bytes of a partial last line from %s (never acknowledged to any client)", cut, name
                )
            if path.stat().st_size == 0:
                path.unlink()
                continue
            sealed = path
            if match["state"] == "open":
                sealed = path.with_name(name[: -len("open")] + "sealed")
                os.rename(path, sealed)
            segment = SealedSegment(sealed, match["stream"], match["dt"], match["hour"], match["sid"], "recovered")
            self._sealed[sealed.name] = (sealed.stat().st_size, sealed.stat().st_mtime)
            found.append(segment)
        if found:
            fsync_dir(self.dir)
            log.info("spool: recovered %d segment(s) left by a previous run from %s", len(found), self.dir)
        return found

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="spool-flusher", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Refuse new appends, make queued ones durable, seal every active segment."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- request side ----------------------------------------------------

    def append(self, items: list[tuple[str, str, str, bytes]]) -> None:
        """Block until every line is fsync'd; raise SpoolClosed/SpoolWriteError otherwise."""
        if not items:
            return
        batch = self._enqueue(items, None)
        while not batch.done.wait(5.0):
            if self._thread is None or not self._thread.is_alive():
                raise SpoolWriteError("spool flusher thread is not running")
        if batch.error is not None:
            raise SpoolWriteError(str(batch.error)) from batch.error

    def append_async(self, items: list[tuple[str, str, str, bytes]]) -> asyncio.Future:
        """Like append, for an event loop: a future that completes when the lines are fsync'd.

        The flusher thread resolves the futures of a group commit with one call_soon_threadsafe
        per event loop, so one commit wakes every request it covered with one loop wake-up and
        without a thread per request.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        if not items:  # nothing to make durable (an empty batch): the flusher would never wake for it
            future.set_result(None)
            return future
        self._enqueue(items, None, (loop, future))
        return future

    def _enqueue(
        self,
        items: list,
        callback: Callable[[BaseException | None], None] | None,
        waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future] | None = None,
    ) -> _Batch:
        with self._cond:
            if self._closing:
                raise SpoolClosed("collector is shutting down")
            if self._thread is None or not self._thread.is_alive():
                raise SpoolWriteError("spool flusher thread is not running")
            batch = self._current
            idle = not batch.items  # the flusher waits only while the current batch is empty
            batch.items.extend(items)
            if callback is not None:
                batch.callbacks.append(callback)
            if waiter is not None:
                batch.futures.setdefault(waiter[0], []).append(waiter[1])
            if idle:
                self._cond.notify_all()
        return batch

    def pending_bytes(self) -> int:
        """Bytes in segments not yet uploaded (open and sealed)."""
        return sum(seg.size for seg in list(self._active.values())) + sum(
            size for size, _ in list(self._sealed.values())
        )

    def pending_segments(self) -> int:
        return len(self._active) + len(self._sealed)

    def oldest_pending_age(self) -> float:
        """Seconds since the oldest segment not yet uploaded was created (0 when none): the upload lag."""
        created = [seg.created for seg in list(self._active.values())]
        created += [when for _, when in list(self._sealed.values())]
        return max(0.0, time.time() - min(created)) if created else 0.0

    def uploaded(self, segment: SealedSegment) -> None:
        """The uploader stored (and deleted) ``segment``: it no longer counts as pending."""
        self._sealed.pop(segment.path.name, None)

    # -- flusher thread --------------------------------------------------

    def _run(self) -> None:
        next_check = time.monotonic() + self._tick
        while True:
            with self._cond:
                while not self._current.items and not self._closing:
                    remaining = next_check - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                batch = self._current
                self._current = _Batch()
                closing = self._closing
            if batch.items:
                try:
                    self._write(batch)
                except BaseException as exc:  # never leave a waiting request hanging
                    log.exception("spool: unexpected error while writing")
                    batch.error = exc
                self.commits += 1
                batch.done.set()
                for callback in batch.callbacks:
                    callback(batch.error)
                for loop, futures in batch.futures.items():
                    try:
                        loop.call_soon_threadsafe(_settle, futures, batch.error)
                    except RuntimeError:  # that loop is closed: no request is waiting on it any more
                        log.warning("spool: %d request(s) finished after their event loop closed", len(futures))
                try:
                    for seg in [s for s in self._active.values() if s.size >= self.max_bytes]:
                        self._seal(seg, "size")
                except Exception:
                    log.exception("spool: sealing a full segment failed; will retry")
            if closing:
                self._seal_all("shutdown")
                return
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self._tick
                try:
                    self._rotate_due()
                    if self.on_tick is not None:
                        self.on_tick()
                except Exception:
                    log.exception("spool: rotation check failed; will retry")

    def _open_segment(self, stream: str, dt: str, hour: str) -> _Active:
        sid = new_segment_id(worker=self.worker)
        path = self.dir / f"{stream}~{dt}~{hour}~{sid}.open"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        fsync_dir(self.dir)  # the file's name must survive a crash as well as its bytes
        seg = _Active(stream, dt, hour, sid, path, fd, time.monotonic(), created=time.time())
        self._active[(stream, dt, hour)] = seg
        return seg

    def _write(self, batch: _Batch) -> None:
        groups: dict[tuple[str, str, str], list[bytes]] = defaultdict(list)
        for stream, dt, hour, line in batch.items:
            groups[(stream, dt, hour)].append(line)
        touched: list[tuple[_Active, int]] = []
        try:
            for key, lines in groups.items():
                seg = self._active.get(key) or self._open_segment(*key)
                touched.append((seg, seg.size))
                data = b"".join(lines)
                _write_all(seg.fd, data)
                seg.size += len(data)
            started = time.perf_counter()
            for seg, _ in touched:
                os.fsync(seg.fd)
            if self.on_commit is not None:
                self.on_commit(time.perf_counter() - started, len(batch.items))
        except OSError as exc:
            # Undo the whole batch so no segment holds lines that were refused to their senders.
            for seg, before in touched:
                try:
                    os.ftruncate(seg.fd, before)
                    os.fsync(seg.fd)
                    seg.size = before
                except OSError:
                    log.exception("spool: could not roll back %s", seg.path.name)
            log.error(
                "spool: write to %s failed (%s); %d request line(s) refused with 503", self.dir, exc, len(batch.items)
            )
            batch.error = exc

    def _rotate_due(self) -> None:
        now = time.monotonic()
        current = hour_key(datetime.now(UTC))
        for seg in list(self._active.values()):
            if (seg.dt, seg.hour) != current:
                self._seal(seg, "hour change")
            elif now - seg.opened >= self.max_age:
                self._seal(seg, "age")

    def _seal_all(self, reason: str) -> None:
        for seg in list(self._active.values()):
            self._seal(seg, reason)

    def _seal(self, seg: _Active, reason: str) -> None:
        del self._active[(seg.stream, seg.dt, seg.hour)]
        os.close(seg.fd)
        sealed = seg.path.with_name(seg.path.name[: -len("open")] + "sealed")
        try:
            os.rename(seg.path, sealed)
            fsync_dir(self.dir)
        except OSError as exc:
            # The file is complete and closed: upload it under its open name rather than let it
            # drop out of both the active set and the queue until the next start.
            log.error("spool: could not seal %s (%s); uploading it under its open name", seg.path.name, exc)
            sealed = seg.path
        self._sealed[sealed.name] = (seg.size, seg.created)
        self.on_sealed(SealedSegment(sealed, seg.stream, seg.dt, seg.hour, seg.segment_id, reason))
