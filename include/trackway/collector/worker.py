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
from collections.abc import Generator

import uvicorn

from trackway.collector import metrics, protocol
from trackway.collector.http_api import CollectorApp
from trackway.collector.limits import RateLimiter
from trackway.collector.logs import setup_logging
from trackway.collector.spool import SealedSegment, Spool
from trackway.collector.suppression import Suppression
from trackway.collector.uploader import Uploader
from trackway.config import ConfigError, Settings, load_settings, load_write_keys
from trackway.objectstore import ObjectStore, open_object_store
from trackway.plan.hook import privacy_from_settings, publish_plan_size
from trackway.plan.privacy import Privacy
from trackway.plan.validate import enforcer_from_settings
from trackway.pseudonym import KeyringError, keyring_from_settings

log = logging.getLogger("trackway.collector.worker")


class Worker:
    """A worker's state shared by the event loop, the spool's flusher thread and the uploader thread."""

    def __init__(self, settings: Settings, index: int, workers: int, store: ObjectStore) -> None:
        limits = settings.collector
        self.settings = settings
        self.name = f"w{index}"
        self.workers = workers
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
            max_age_seconds=settings.collector_upload_seconds,
            on_sealed=self._sealed,
            worker=self.name,
            on_commit=self._committed,
            on_tick=self.update_gauges,
        )
        self.write_keys = settings.write_keys
        self.plan = enforcer_from_settings(settings, watch=True)  # tracking plan; None without TRACKWAY_PLAN_DIR
        self.privacy: Privacy | None = privacy_from_settings(
            settings, self.plan
        )  # PII actions, sampling, consent (docs/privacy.md)
        # The cap is on all workers' backlog together; each worker holds an equal share of it.
        self.pending_cap = max(1, limits.spool_max_pending_bytes // workers)
        # Per (write key, client address) and per address, each worker on its own (limits.py).
        rate = limits.rate_limit_events_per_second
        self.rate_limiter = RateLimiter(rate, burst=rate) if rate > 0 else None  # bursts of one second's worth
        failures = limits.rate_limit_auth_failures_per_minute
        self.auth_failures = RateLimiter(failures / 60, burst=failures) if failures > 0 else None
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
        metrics.WORKERS_SERVING.set(1)

    def give_up_uploads(self) -> None:
        log.warning("giving up on uploads; what is left stays in %s for the next start", self.spool_dir)
        self.uploader.abort()

    async def shutdown(self) -> None:
        self.stopping = True
        metrics.WORKERS_SERVING.set(0)
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
        try:  # and the pseudonymisation keyring (a rotation adds a key to the file)
            if self.privacy is not None:
                self.privacy.reload_keyring(keyring_from_settings(self.settings))
        except (ConfigError, KeyringError) as exc:
            log.error("SIGHUP: keyring not reloaded, the old keys stay in use: %s", exc)

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
        publish_plan_size(self.plan)


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
    worker = Worker(settings, index, workers, open_object_store(settings.raw_url))
    protocol.configure(limits)
    config = uvicorn.Config(
        CollectorApp(worker),
        http=protocol.GuardedHttpToolsProtocol,
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
