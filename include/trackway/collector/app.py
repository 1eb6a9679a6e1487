"""The collector's master process: owns the spool, the socket and the worker processes.

Start: lock the spool directory, bind the public and the admin port, start
the admin listener (admin.py: /metrics and the detailed /health, served by
this process for all workers), recover and upload what any
earlier worker left behind (exactly once: no worker runs yet), then start N
workers (worker.py) that accept on the shared socket, each with its own
spool ``<spool>/w<i>``. Leftovers of a worker index that no longer runs
(fewer ``--workers`` than last time) move to a running worker's directory,
keeping their names, so they are still uploaded under the same object key.

Stop (SIGTERM/SIGINT): every worker stops accepting, finishes in-flight
requests, seals and uploads its spool; exit 0. A second signal stops upload
retries; whatever is left stays in the spool for the next start (exit 1).
A worker that dies is started again and recovers its own spool. SIGHUP
re-reads the write keys (TRACKWAY_WRITE_KEYS_FILE) in every worker.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from trackway.collector.logs import setup_logging
from trackway.collector.spool import Spool, SpoolLocked
from trackway.collector.stats import Stats
from trackway.collector.uploader import Uploader
from trackway.config import ConfigError, Settings, load_write_keys
from trackway.objectstore import ObjectStore, fsync_dir, open_object_store
from trackway.plan.hook import check_privacy
from trackway.plan.model import PlanError
from trackway.plan.validate import enforcer_from_settings
from trackway.pseudonym import KeyringError

log = logging.getLogger("trackway.collector")

_WORKER_DIR = re.compile(r"^w(\d+)$")
_RESPAWN_DELAY = 1.0
_WORKER_SIGNALS = {signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1}


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


def recover_leftovers(settings: Settings, store: ObjectStore, workers: int) -> int:
    """Seal and upload what earlier processes left in any spool directory; return how many segments.

    Runs before any worker starts, so each leftover is uploaded by exactly one
    process. One failed upload means the store is down: the rest wait in the
    spool, in a running worker's directory, for that worker's uploader.
    """
    root = settings.spool_dir
    dirs = [
        root,
        *sorted((d for d in root.iterdir() if d.is_dir() and _WORKER_DIR.match(d.name)), key=lambda d: int(d.name[1:])),
    ]
    stats = Stats()
    store_ok = True
    found = 0
    for directory in dirs:
        spool = Spool(directory, max_bytes=settings.spool_max_bytes, max_age_seconds=3600, on_sealed=lambda _s: None)
        segments = spool.recover()
        found += len(segments)
        uploader = Uploader(store, directory, stats)
        left = []
        for segment in segments:
            store_ok = store_ok and uploader.upload(segment)
            if not store_ok:
                left.append(segment)
        match = _WORKER_DIR.match(directory.name) if directory != root else None
        index = int(match[1]) if match else 0
        if left and (directory == root or index >= workers):
            target = root / f"w{index % workers}"
            target.mkdir(exist_ok=True)
            for segment in left:
                os.rename(segment.path, target / segment.path.name)
            fsync_dir(target)
            fsync_dir(directory)
    return found


class _Workers:
    """The worker processes: start, signal, reap and restart."""

    def __init__(self, count: int, sock: socket.socket, env: dict[str, str]) -> None:
        self.count = count
        self.sock = sock
        self.env = env
        self.procs: dict[int, subprocess.Popen] = {}
        self.exit_codes: dict[int, int] = {}

    def start(self, index: int) -> None:
        fd = self.sock.fileno()
        # Started with these signals blocked (the mask survives exec): one sent while the
        # worker is still starting waits until its handler is in place instead of killing it.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _WORKER_SIGNALS)
        try:
            self.procs[index] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "trackway.collector.worker",
                    f"--index={index}",
                    f"--workers={self.count}",
                    f"--fd={fd}",
                    f"--parent={os.getpid()}",
                ],
                env=self.env,
                pass_fds=(fd,),
            )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def signal_all(self, signum: int) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signum)

    def reap(self) -> list[tuple[int, int, int]]:
        """(index, pid, exit code) of every worker that exited since the last call."""
        done = []
        for index, proc in list(self.procs.items()):
            code = proc.poll()
            if code is not None:
                done.append((index, proc.pid, code))
                del self.procs[index]
                self.exit_codes[index] = code
        return done


def _bind(host: str, port: int, *, inheritable: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=4096)
    sock.set_inheritable(inheritable)
    return sock


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _admin_address(settings: Settings, port: int, admin_host: str | None, admin_port: int | None) -> tuple[str, int]:
    """Where the admin listener goes; ConfigError when that would expose it by accident.

    Fail closed: it has no authentication, so it stays on loopback unless an
    address is named for it explicitly (TRACKWAY_COLLECTOR_ADMIN_HOST or
    --admin-host); it never follows --host, and it never shares the public port.
    """
    explicit = admin_host is not None or settings.collector_admin_host_is_explicit
    host = admin_host if admin_host is not None else settings.collector_admin_host
    admin_port = admin_port or settings.collector_admin_port
    if not is_loopback(host) and not explicit:
        raise ConfigError(
            f"refusing to serve the admin listener (/metrics, /health) on {host}, which is not a loopback address, "
            "without it being named: set TRACKWAY_COLLECTOR_ADMIN_HOST (or --admin-host) to it explicitly"
        )
    if admin_port == port:
        raise ConfigError(
            f"the admin port {admin_port} is the public port: set TRACKWAY_COLLECTOR_ADMIN_PORT (or --admin-port) "
            "to another one; /metrics must not be served where browsers send events"
        )
    return host, admin_port


def run_collector(
    settings: Settings,
    host: str,
    port: int,
    workers: int | None = None,
    log_json: bool | None = None,
    admin_host: str | None = None,
    admin_port: int | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT; 0 when everything received reached the object store."""
    limits = settings.collector
    workers = max(1, workers or limits.workers)
    setup_logging(json_lines=limits.log_json if log_json is None else log_json, worker="master")
    try:
        admin_host, admin_port = _admin_address(settings, port, admin_host, admin_port)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    if settings.write_keys_are_demo and not is_loopback(host):
        # Fail closed: the demo key is public (it is in the docs), so it must never face a network.
        log.error(
            "refusing to listen on %s with the built-in demo write key: set TRACKWAY_WRITE_KEYS=source:key,... "
            "(or TRACKWAY_WRITE_KEYS_FILE) with keys of your own, or listen on 127.0.0.1",
            host,
        )
        return 2
    _ = settings.trusted_proxies  # a malformed list stops the start here (ConfigError), not each worker
    store = open_object_store(settings.raw_url)  # ConfigError propagates to the CLI's message
    try:
        enforcer_from_settings(settings)  # a broken tracking plan stops the start here, not in each worker
    except PlanError as exc:
        log.error(
            "tracking plan not loaded, not starting: %s; `trackway plan lint %s` shows the full report",
            " ".join(str(exc).split()),
            settings.plan_dir,
        )
        return 1
    try:  # likewise a keyring that cannot be read or has no key valid now (docs/privacy.md)
        for warning in check_privacy(settings):
            log.warning("%s", warning)
    except KeyringError as exc:
        log.error("privacy: %s", exc)
        return 1
    root = settings.spool_dir
    spool = Spool(root, max_bytes=settings.spool_max_bytes, max_age_seconds=3600, on_sealed=lambda _s: None)
    try:
        spool.lock()
    except SpoolLocked as exc:
        log.error("%s", exc)
        return 1
    try:
        sock = _bind(host, port)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s; choose another --port or stop what is using it", host, port, exc)
        return 1
    try:
        admin_sock = _bind(admin_host, admin_port, inheritable=False)  # the workers never get it
    except OSError as exc:
        sock.close()
        log.error(
            "cannot listen on %s:%d for the admin listener: %s; set TRACKWAY_COLLECTOR_ADMIN_PORT (or --admin-port) "
            "to a free port, or stop what is using it",
            admin_host,
            admin_port,
            exc,
        )
        return 1
    if not is_loopback(admin_host):
        log.warning(
            "the admin listener (/metrics, /health) is on %s, reachable from the network, and has no "
            "authentication: keep it on a private network or behind a firewall",
            admin_host,
        )

    # Prometheus multiprocess mode: every process of this run writes its metrics here.
    metrics_dir = root / ".metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    from trackway.collector import metrics
    from trackway.collector.admin import AdminServer, CollectorState, build_admin_app

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    if log_json:  # --log-json: the workers read their settings from the environment
        env["TRACKWAY_LOG_FORMAT"] = "json"
    pool = _Workers(workers, sock, env)
    state = CollectorState(settings, workers, running=lambda: len(pool.procs))
    admin = AdminServer(build_admin_app(state, local_hosts_only=is_loopback(admin_host)), admin_sock, settings)
    admin.start()  # answers while the spool is recovered: status "starting"

    if not recover_leftovers(settings, store, workers):
        threading.Thread(target=_check_store, args=(store,), name="store-check", daemon=True).start()

    signals: list[int] = []

    def on_stop(signum: int, _frame: object) -> None:
        signals.append(signum)
        state.phase = "stopping"
        if len(signals) == 1:
            log.info("%s received: stopping; finishing requests, then uploading the spool", signal.Signals(signum).name)
        else:
            log.warning(
                "second %s: giving up on uploads; what is left stays in %s for the next start",
                signal.Signals(signum).name,
                root,
            )
        pool.signal_all(signal.SIGTERM if len(signals) == 1 else signal.SIGUSR1)

    def on_hup(_signum: int, _frame: object) -> None:
        try:
            keys, _ = load_write_keys()
        except ConfigError as exc:
            log.error("SIGHUP: write keys not reloaded, the old ones stay in use: %s", exc)
            return
        log.info("SIGHUP: reloading write keys in every worker (sources: %s)", ", ".join(sorted(set(keys.values()))))
        pool.signal_all(signal.SIGHUP)

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    for index in range(workers):
        pool.start(index)
    if not signals:
        state.phase = "ok"

    bound_host, bound_port = sock.getsockname()[:2]
    admin_bound_host, admin_bound_port = admin_sock.getsockname()[:2]
    sources = ", ".join(sorted(set(settings.write_keys.values())))
    print(  # noqa: T201 (the start-up banner operators read)
        f"trackway collector listening on http://{bound_host}:{bound_port} "
        f"(sources: {sources}; workers: {workers}; spool: {root}; raw: {settings.raw_url}); "
        f"admin (/metrics, /health) on http://{admin_bound_host}:{admin_bound_port}",
        flush=True,
    )
    if settings.write_keys_are_demo:
        log.warning(
            "using the built-in demo write key (source 'demo'): anyone who knows it can send events; "
            "set TRACKWAY_WRITE_KEYS=source:key,... before exposing this collector"
        )

    restart_at: dict[int, float] = {}
    while pool.procs or (restart_at and not signals):
        for index, pid, code in pool.reap():
            metrics.mark_process_dead(pid)
            if not signals:
                log.error("worker w%d (pid %d) exited with %d; starting it again", index, pid, code)
                metrics.WORKER_RESTARTS.inc()
                restart_at[index] = time.monotonic() + _RESPAWN_DELAY
        for index, when in list(restart_at.items()):
            if signals:
                del restart_at[index]
            elif time.monotonic() >= when:
                del restart_at[index]
                pool.start(index)
        time.sleep(0.05)
    sock.close()
    admin.stop()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    totals = metrics.health_counters()
    left = sorted(p.name for p in root.glob("w*/*.sealed")) + sorted(p.name for p in root.glob("w*/*.open"))
    failed = {f"w{index}": code for index, code in pool.exit_codes.items() if code != 0}
    if left or failed:
        if failed:
            log.error("worker exit codes: %s", failed)
        log.error(
            "stopped with %d segment(s) not uploaded; they are safe in %s and will be uploaded on the next start",
            len(left),
            root,
        )
        return 1
    log.info(
        "stopped cleanly: %d event(s) accepted, %d quarantined, %d object(s) written",
        totals["events_accepted_total"],
        totals["events_quarantined_total"],
        totals["objects_written_total"],
    )
    return 0


def spool_dirs(root: Path) -> list[Path]:
    """The per-worker spool directories under ``root``."""
    return sorted(d for d in root.iterdir() if d.is_dir() and _WORKER_DIR.match(d.name))
