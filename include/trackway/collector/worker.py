"""One collector worker process: its own spool (``<spool>/w<N>``), uploader and uvicorn server.

The master (app.py) binds the listening socket and starts N of these with
``python -m trackway.collector.worker``; each accepts on the shared socket.
A worker owns its spool directory alone, so group commit, segment names and
recovery stay single-writer: at start it seals and queues for upload
whatever a previous process left in its directory.

Signals: SIGTERM (sent by the master) stops accepting, finishes in-flight
requests, seals the spool and uploads everything; SIGUSR1 (the master's
answer to a second signal) gives up on uploads (what is left stays in the spool). SIGINT is ignored (the master
turns a terminal's Ctrl-C into SIGTERM), SIGHUP re-reads the write keys.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Generator

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from trackway.collector import metrics
from trackway.collector.http_api import CollectorApp, RateLimiter, error_json
from trackway.collector.logs import setup_logging
from trackway.collector.spool import SealedSegment, Spool
from trackway.collector.suppression import Suppression
from trackway.collector.uploader import Uploader
from trackway.config import ConfigError, Settings, default, load_settings, load_write_keys
from trackway.objectstore import ObjectStore, open_object_store
from trackway.plan.hook import plan_health
from trackway.plan.validate import enforcer_from_settings

log = logging.getLogger("trackway.collector.worker")


class Worker:
    """A worker's state shared by the event loop, the spool's flusher thread and the uploader thread."""

    def __init__(self, settings: Settings, index: int, workers: int, store: ObjectStore, started_at: float) -> None:
        limits = settings.collector
        self.settings = settings
        self.name = f"w{index}"
        self.workers = workers
        self.started_at = started_at
        self.stats = metrics.MetricStats()
        self.spool_dir = settings.spool_dir / self.name
        self.uploader = Uploader(
            store,
            self.spool_dir,
            self.stats,
            backoff_initial=limits.upload_backoff_initial_seconds,
            backoff_max=limits.upload_backoff_max_seconds,
            on_uploaded=self._uploaded,
        )
        self.spool = Spool(
            self.spool_dir,
            max_bytes=settings.spool_max_bytes,
            max_age_seconds=settings.spool_max_age_seconds,
            on_sealed=self._sealed,
            worker=self.name,
            on_commit=self._committed,
            on_tick=self.update_gauges,
        )
        self.write_keys = settings.write_keys
        self.plan = enforcer_from_settings(settings, watch=True)  # tracking plan; None without TRACKWAY_PLAN_DIR
        # The cap is on all workers' backlog together; each worker holds an equal share of it.
        self.pending_cap = max(1, limits.spool_max_pending_bytes // workers)
        rate = limits.rate_limit_events_per_second / workers
        self.rate_limiter = RateLimiter(rate, burst=rate) if rate > 0 else None  # bursts of one second's worth
        # Erasure requests: suppressed subjects' events are dropped before the spool (read at start, then polled).
        self.suppression: Suppression | None = Suppression(
            store,
            settings,
            self.spool_dir / ".suppressed-subjects.json",  # a dot: spool recovery skips it
        )
        self.stopping = False
        self.all_uploaded = False

    # -- lifecycle (called from the ASGI lifespan) ---------------------------

    async def startup(self) -> None:
        if self.suppression is not None:
            self.suppression.load()  # refuses to start when it could not drop suppressed subjects' events
            self.suppression.start()
        self.spool.lock()
        for segment in self.spool.recover():
            self.uploader.enqueue(segment)
        self.uploader.start()
        self.spool.start()
        metrics.SPOOL_PENDING_CAP.set(self.pending_cap)
        self.update_gauges()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.reload_write_keys)
        loop.add_signal_handler(signal.SIGUSR1, self.give_up_uploads)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP, signal.SIGUSR1})  # see _Workers.start

    def give_up_uploads(self) -> None:
        log.warning("giving up on uploads; what is left stays in %s for the next start", self.spool_dir)
        self.uploader.abort()

    async def shutdown(self) -> None:
        self.stopping = True
        await asyncio.get_running_loop().run_in_executor(None, self._stop)

    def _stop(self) -> None:
        self.spool.close()
        log.info("spool sealed; uploading %d segment(s)", self.uploader.pending())
        self.all_uploaded = self.uploader.drain()
        self.update_gauges()

    def reload_write_keys(self) -> None:
        try:
            keys, _ = load_write_keys()
        except ConfigError as exc:
            log.error("SIGHUP: write keys not reloaded, the old ones stay in use: %s", exc)
            return
        self.write_keys = keys  # one assignment: a request sees the old or the new keys, never a mix
        log.info("SIGHUP: write keys reloaded (sources: %s)", ", ".join(sorted(set(keys.values()))))
        if self.plan is not None:  # SIGHUP re-reads the tracking plan too (folder changes are also noticed)
            self.plan.reload()

    # -- spool and uploader callbacks (their threads) ------------------------

    def _sealed(self, segment: SealedSegment) -> None:
        self.stats.add("segments_rotated")
        self.uploader.enqueue(segment)

    def _uploaded(self, segment: SealedSegment) -> None:
        self.spool.uploaded(segment)
        self.update_gauges()

    def _committed(self, seconds: float, lines: int) -> None:
        metrics.FSYNC_SECONDS.observe(seconds)
        metrics.LINES_PER_FSYNC.observe(lines)
        metrics.SPOOL_PENDING_BYTES.set(self.spool.pending_bytes())

    def update_gauges(self) -> None:
        metrics.SPOOL_PENDING_BYTES.set(self.spool.pending_bytes())
        metrics.SPOOL_PENDING_SEGMENTS.set(self.spool.pending_segments())
        metrics.UPLOAD_LAG.set(self.spool.oldest_pending_age())

    def health(self) -> dict:
        totals = metrics.health_counters()
        return {
            "status": "stopping" if self.stopping else "ok",
            "workers": self.workers,
            "requests": int(totals["tracking_requests"]),
            "requests_rejected": int(totals["requests_rejected"]),
            "events_accepted": int(totals["events_accepted_total"]),
            "events_quarantined": int(totals["events_quarantined_total"]),
            "segments_rotated": int(totals["segments_sealed_total"]),
            "objects_written": int(totals["objects_written_total"]),
            "upload_failures": int(totals["upload_failures_total"]),
            "upload_retries": int(totals["upload_retries_total"]),
            "segments_set_aside": int(totals["segments_set_aside_total"]),
            "spool_pending_bytes": int(totals["spool_pending_bytes"]),
            "spool_pending_segments": int(totals["spool_pending_segments"]),
            "spool_max_pending_bytes": self.settings.collector.spool_max_pending_bytes,
            "spool_commits": int(totals["fsync_duration_seconds_count"]),
            "upload_lag_seconds": round(totals["upload_lag_seconds"], 3),
            "uptime_seconds": round(time.time() - self.started_at, 3),
            **plan_health(self.plan, totals),
        }


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus what it lacks against slow or idle clients.

    A connection gets ``header_timeout`` seconds to send a request's headers
    and then ``body_timeout`` seconds for its body (uvicorn only times out
    idle keep-alive connections), and a worker holds at most
    ``max_connections``: past that a new connection is closed at once, so
    thousands of idle sockets cost memory but never a thread.
    """

    header_timeout: float = default("TRACKWAY_HEADER_TIMEOUT_SECONDS")  # serve() sets the configured values
    body_timeout: float = default("TRACKWAY_BODY_TIMEOUT_SECONDS")
    max_connections: int = default("TRACKWAY_MAX_CONNECTIONS")
    max_header_bytes: int = default("TRACKWAY_MAX_HEADER_BYTES")
    max_url_bytes: int = default("TRACKWAY_MAX_URL_BYTES")
    _header_bytes = 0  # bytes received since the current request began, until its headers are complete
    _in_headers = True
    _refused = False
    _deadline = 0.0  # loop time by which headers/body must have arrived; 0 = none pending
    _sweeper: asyncio.TimerHandle | None = None  # one per worker, not a timer per request

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            metrics.CONNECTIONS_REFUSED.inc()
            transport.close()
            return
        self._arm(self.header_timeout)
        cls = GuardedHttpToolsProtocol
        if cls._sweeper is None:
            cls._sweeper = self.loop.call_later(1.0, cls._sweep, self.loop, self.connections)

    @classmethod
    def _sweep(cls, loop: asyncio.AbstractEventLoop, connections: set) -> None:
        """Once a second: close the connections past their header/body deadline."""
        now = loop.time()
        for conn in list(connections):
            deadline = getattr(conn, "_deadline", 0.0)
            if deadline and now >= deadline:
                conn._expire()
        cls._sweeper = loop.call_later(1.0, cls._sweep, loop, connections) if connections else None

    def data_received(self, data: bytes) -> None:
        """Count header bytes as they arrive: a 10 MB header line is cut at the cap, not read to its end."""
        if self._refused:
            return
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._in_headers and self._header_bytes > self.max_header_bytes:
            self._refuse(
                431,
                "Request Header Fields Too Large",
                f"the request line and headers are over {self.max_header_bytes} bytes (TRACKWAY_MAX_HEADER_BYTES)",
            )

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.max_url_bytes:
            self._refuse(414, "URI Too Long", f"the URL is over {self.max_url_bytes} bytes (TRACKWAY_MAX_URL_BYTES)")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes, self._in_headers = 0, True
        self._arm(self.header_timeout)

    def on_headers_complete(self) -> None:
        if self._refused:
            return  # no request cycle for a request already answered
        super().on_headers_complete()
        self._in_headers = False
        self._arm(self.body_timeout)

    def _refuse(self, status: int, phrase: str, message: str) -> None:
        """Answer ``status`` with a JSON error and close: nothing more of this connection is read."""
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self._disarm()
        metrics.REQUESTS_OVERSIZED.labels(status=str(status)).inc()
        body = error_json(status, message + "; send smaller requests")
        self.transport.write(
            f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n".encode()
            + body
        )
        self.transport.close()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def _arm(self, seconds: float) -> None:
        self._deadline = self.loop.time() + seconds

    def _disarm(self) -> None:
        self._deadline = 0.0

    def _expire(self) -> None:
        self._deadline = 0.0
        if not self.transport.is_closing():
            metrics.CONNECTIONS_TIMED_OUT.inc()
            self.transport.close()


class _Server(uvicorn.Server):
    """uvicorn's server with the collector's signal handling (see the module docstring)."""

    def __init__(self, config: uvicorn.Config, worker: Worker) -> None:
        super().__init__(config)
        self.worker = worker

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self.handle_exit)
        # The master starts workers with SIGTERM blocked, so one sent during start-up waits until now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        yield

    def handle_exit(self, sig: int, frame: object) -> None:
        # Idempotent: a SIGTERM sent to the whole group arrives here twice (directly and
        # forwarded by the master); only the master's SIGUSR1 means "give up on uploads".
        self.should_exit = True


def _die_with_parent() -> None:
    """Linux: be SIGKILLed when the master dies, so no orphan keeps serving a spool."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def serve(index: int, workers: int, fd: int, parent: int) -> int:
    _die_with_parent()
    if os.getppid() != parent:
        return 1  # the master died before we could ask to die with it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(AttributeError):  # a file-size limit must be an error (EFBIG -> 503), not a kill
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    settings = load_settings()
    limits = settings.collector
    setup_logging(json_lines=limits.log_json, worker=f"w{index}")
    started_at = float(os.environ.get("TRACKWAY_COLLECTOR_STARTED_AT") or time.time())
    worker = Worker(settings, index, workers, open_object_store(settings.raw_url), started_at)
    GuardedHttpToolsProtocol.header_timeout = limits.header_timeout_seconds
    GuardedHttpToolsProtocol.body_timeout = limits.body_timeout_seconds
    GuardedHttpToolsProtocol.max_connections = limits.max_connections
    GuardedHttpToolsProtocol.max_header_bytes = limits.max_header_bytes
    GuardedHttpToolsProtocol.max_url_bytes = limits.max_url_bytes
    config = uvicorn.Config(
        CollectorApp(worker),
        http=GuardedHttpToolsProtocol,
        loop="uvloop",
        lifespan="on",
        access_log=False,
        log_config=None,
        proxy_headers=False,  # X-Forwarded-For is honoured only by TRACKWAY_TRUST_FORWARDED_FOR
        server_header=False,
        timeout_keep_alive=int(max(1, limits.keep_alive_seconds)),
        timeout_graceful_shutdown=30,
        backlog=4096,
    )
    sock = socket.socket(fileno=fd)
    server = _Server(config, worker)
    # Everything allocated so far lives as long as the process: keep the cyclic GC off it,
    # and let it run less often (requests allocate many short-lived, acyclic objects).
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    server.run(sockets=[sock])
    if not server.started:
        return 3
    return 0 if worker.all_uploaded else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One collector worker; started by `trackway collect`, not by hand.")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--fd", type=int, required=True, help="the listening socket inherited from the master")
    parser.add_argument("--parent", type=int, required=True, help="the master's pid")
    args = parser.parse_args(argv)
    return serve(args.index, args.workers, args.fd, args.parent)


if __name__ == "__main__":
    sys.exit(main())
