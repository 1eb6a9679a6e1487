"""Wires spool, uploader and HTTP server together and owns the process lifecycle.

Start: lock the spool, bind the port, upload segments a previous run left
behind, then serve. Stop (SIGTERM/SIGINT): stop accepting, let in-flight
requests finish, seal every segment and upload it all, exit 0. A second
signal stops upload retries; whatever is left stays in the spool and is
uploaded by the next start (exit 1 says so).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from contextlib import suppress

from trackway.collector.http_api import make_server
from trackway.collector.spool import SealedSegment, Spool, SpoolLocked
from trackway.collector.stats import Stats
from trackway.collector.uploader import Uploader
from trackway.config import Settings
from trackway.objectstore import ObjectStore, open_object_store

log = logging.getLogger("trackway.collector")


class Collector:
    """State shared by the request threads: settings, spool, counters, in-flight tracking."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store
        self.stats = Stats()
        self.uploader = Uploader(store, settings.spool_dir, self.stats)
        self.spool = Spool(
            settings.spool_dir,
            max_bytes=settings.spool_max_bytes,
            max_age_seconds=settings.spool_max_age_seconds,
            on_sealed=self._on_sealed,
        )
        self._cond = threading.Condition()
        self._inflight = 0
        self._stopping = False

    def _on_sealed(self, segment: SealedSegment) -> None:
        self.stats.add("segments_rotated")
        self.uploader.enqueue(segment)

    def begin_request(self) -> bool:
        with self._cond:
            if self._stopping:
                return False
            self._inflight += 1
            return True

    def end_request(self) -> None:
        with self._cond:
            self._inflight -= 1
            self._cond.notify_all()

    def stop_accepting(self, timeout: float = 30.0) -> None:
        """Refuse new requests and wait for the ones being handled to be answered."""
        with self._cond:
            self._stopping = True
            if not self._cond.wait_for(lambda: self._inflight == 0, timeout):
                log.warning("%d request(s) still running after %.0fs; they will get 503", self._inflight, timeout)

    def health(self) -> dict:
        with self._cond:
            status = "stopping" if self._stopping else "ok"
        return {
            "status": status,
            **self.stats.snapshot(),
            "spool_pending_bytes": self.spool.pending_bytes(),
            "spool_commits": self.spool.commits,
            "uploads_pending": self.uploader.pending(),
        }


def _setup_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _check_store(store: ObjectStore) -> None:
    """Warn early about a misconfigured store instead of at the first rotation."""
    try:
        store.check()
    except Exception as exc:
        log.warning(
            "object store %s is not reachable (%s: %s); events are kept in the spool and uploaded when it is",
            store.url,
            type(exc).__name__,
            exc,
        )


def run_collector(settings: Settings, host: str, port: int) -> int:
    """Serve until SIGTERM/SIGINT; 0 when everything received reached the object store."""
    _setup_logging()
    store = open_object_store(settings.raw_url)  # ConfigError propagates to the CLI's message
    collector = Collector(settings, store)
    try:
        collector.spool.lock()
    except SpoolLocked as exc:
        log.error("%s", exc)
        return 1
    try:
        server = make_server(host, port, collector)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s; choose another --port or stop what is using it", host, port, exc)
        return 1

    leftovers = collector.spool.recover()
    if leftovers:
        # Upload what a previous run acknowledged before taking new traffic; one failed
        # attempt is enough to know the store is down, the rest wait in the retry queue.
        store_ok = True
        for segment in leftovers:
            store_ok = store_ok and collector.uploader.upload(segment)
            if not store_ok:
                collector.uploader.enqueue(segment)
    else:
        threading.Thread(target=_check_store, args=(store,), name="store-check", daemon=True).start()

    stop = threading.Event()

    def on_signal(signum, _frame):
        # Decide before logging: a second signal may arrive while this handler runs.
        first = not stop.is_set()
        stop.set()
        if first:
            log.info("%s received: stopping; finishing requests, then uploading the spool", signal.Signals(signum).name)
        else:
            log.warning(
                "second %s: giving up on uploads; what is left stays in %s for the next start",
                signal.Signals(signum).name,
                settings.spool_dir,
            )
            collector.uploader.abort()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    collector.uploader.start()
    collector.spool.start()
    serve = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True)
    serve.start()

    bound_host, bound_port = server.server_address[:2]
    if isinstance(bound_host, bytes):  # AF_UNIX-style addresses; ours are (host, port)
        bound_host = bound_host.decode()
    sources = ", ".join(sorted(set(settings.write_keys.values())))
    print(  # noqa: T201 (the start-up banner operators read)
        f"trackway collector listening on http://{bound_host}:{bound_port} "
        f"(sources: {sources}; spool: {settings.spool_dir}; raw: {settings.raw_url})",
        flush=True,
    )
    if settings.write_keys_are_demo:
        log.warning(
            "using the built-in demo write key (source 'demo'): anyone who knows it can send events; "
            "set TRACKWAY_WRITE_KEYS=source:key,... before exposing this collector"
        )

    while not stop.wait(1.0):
        pass

    server.shutdown()
    server.server_close()
    collector.stop_accepting()
    collector.spool.close()
    log.info("spool sealed; uploading %d segment(s)", collector.uploader.pending())
    all_uploaded = collector.uploader.drain()
    with suppress(Exception):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    snapshot = collector.stats.snapshot()
    if not all_uploaded:
        log.error(
            "stopped with %d segment(s) not uploaded; they are safe in %s and will be uploaded on the next start",
            collector.uploader.pending(),
            settings.spool_dir,
        )
        return 1
    log.info(
        "stopped cleanly: %d event(s) accepted, %d quarantined, %d object(s) written",
        snapshot["events_accepted"],
        snapshot["events_quarantined"],
        snapshot["objects_written"],
    )
    return 0
