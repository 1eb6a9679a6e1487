"""The collector's admin listener: ``/metrics`` and the detailed ``/health``, for operators and Prometheus only.

Why a listener of its own (adr/0021): the public port answers browsers, so
whatever it serves can be fetched by any web page a visitor opens. Here:

- no CORS header is ever sent, so a page on another origin cannot read an answer;
- it listens on loopback unless ``TRACKWAY_COLLECTOR_ADMIN_HOST`` names another
  address (app.py refuses anything else and warns when it is opened);
- on loopback it answers only requests addressed to an IP address or
  ``localhost`` (the Host header): a page that points its own DNS name at
  127.0.0.1 (DNS rebinding) would be same-origin, and is refused here;
- the master serves it, from every worker's metrics files (metrics.py), so it
  reports the sum over all workers, also while one restarts or they drain.

Routes are a table: ``AdminApp.route(method, path, handler)``. A later route
(say ``POST /v1/regulations`` behind a bearer token) is one more handler;
it gets the request with its body already read, up to ``max_body_bytes``.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import uvicorn

from trackway.collector import metrics, protocol
from trackway.collector.http_api import Receive, Scope, Send, error_json, loggable
from trackway.config import Settings
from trackway.plan.hook import plan_health, privacy_from_settings, privacy_health
from trackway.segment_rules import dumps

log = logging.getLogger("trackway.collector.admin")

_JSON = b"application/json"


@dataclass(frozen=True)
class AdminRequest:
    method: str  # HEAD arrives as GET; its answer is sent without a body
    path: str
    headers: dict[str, str]  # lower-case names
    client: str
    body: bytes  # read whole before the handler runs (empty for GET)


@dataclass(frozen=True)
class AdminResponse:
    status: int
    body: bytes
    content_type: bytes = _JSON
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[AdminRequest], Awaitable[AdminResponse]]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> AdminResponse:
    return AdminResponse(status, error_json(status, message), headers=headers or {})


def addressed_locally(host_header: str | None) -> bool:
    """The Host is an IP address or localhost: what local tools send, and what a rebinding page cannot."""
    if host_header is None:
        return True  # no browser omits Host; HTTP/1.0 tools may
    host = host_header.strip()
    if host.startswith("["):
        name = host[1 : host.find("]")] if "]" in host else host
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name.lower() == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class AdminApp:
    """The admin listener's ASGI app: a table of routes, no CORS, HEAD served by GET handlers."""

    def __init__(self, *, local_hosts_only: bool, max_body_bytes: int = 64 * 1024) -> None:
        self.local_hosts_only = local_hosts_only
        self.max_body_bytes = max_body_bytes
        self.routes: dict[str, dict[str, Handler]] = {}

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes.setdefault(path, {})[method.upper()] = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"]
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        client = (scope.get("client") or ("-",))[0]
        try:
            response = await self._respond(method, scope["path"].rstrip("/") or "/", headers, client, receive)
        except Exception:
            log.exception("admin: unexpected error handling %s %s", loggable(method), loggable(scope["path"]))
            response = _error(500, "internal error; report it if it persists")
        response_headers = [
            (b"content-type", response.content_type),
            (b"content-length", str(len(response.body)).encode()),
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
        ]
        response_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
        if response.status >= 400:
            response_headers.append((b"connection", b"close"))  # a body it did not read is not worth reading
        await send({"type": "http.response.start", "status": response.status, "headers": response_headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else response.body})

    async def _respond(
        self, method: str, path: str, headers: dict[str, str], client: str, receive: Receive
    ) -> AdminResponse:
        if self.local_hosts_only and not addressed_locally(headers.get("host")):
            log.warning(
                "admin: refused %s %s from %s addressed to Host %r (DNS rebinding?)",
                loggable(method),
                loggable(path),
                client,
                loggable(headers.get("host") or "", 100),
            )
            return _error(403, "the admin listener answers only requests to an IP address or localhost (Host header)")
        handlers = self.routes.get(path)
        if handlers is None:
            return _error(404, f"no admin endpoint {path}; there are {', '.join(sorted(self.routes))}")
        handler = handlers.get("GET" if method == "HEAD" else method)
        if handler is None:
            allow = ", ".join(sorted({*handlers, *(["HEAD"] if "GET" in handlers else [])}))
            return _error(405, f"{path} accepts {allow}", {"Allow": allow})
        body = b""
        if method not in ("GET", "HEAD"):
            read = await self._read_body(headers, receive)
            if isinstance(read, AdminResponse):
                return read
            body = read
        request = AdminRequest("GET" if method == "HEAD" else method, path, headers, client, body)
        return await handler(request)

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes | AdminResponse:
        length = headers.get("content-length") or ""
        if length.isdigit() and int(length) > self.max_body_bytes:
            return _error(413, f"the body is over {self.max_body_bytes} bytes")
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return _error(400, "the client went away before its body arrived")
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_body_bytes:
                return _error(413, f"the body is over {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)


@dataclass
class CollectorState:
    """What the master knows beyond the metrics files: its phase, workers and start time."""

    settings: Settings
    workers: int
    running: Callable[[], int]  # worker processes alive now
    started_at: float = field(default_factory=time.time)
    phase: str = "starting"  # starting (recovering the spool) -> ok -> stopping


# The admin /health's counters: its name -> the summed metric (metrics.health_counters()).
_HEALTH_COUNTERS = {
    "requests": "tracking_requests",
    "requests_rejected": "requests_rejected",
    "events_accepted": "events_accepted_total",
    "events_quarantined": "events_quarantined_total",
    "segments_rotated": "segments_sealed_total",
    "objects_written": "objects_written_total",
    "upload_failures": "upload_failures_total",
    "upload_retries": "upload_retries_total",
    "segments_set_aside": "segments_set_aside_total",
    "auth_failures": "auth_failures_total",
    "rate_limited": "rate_limited_total",
    "spool_pending_bytes": "spool_pending_bytes",
    "spool_pending_segments": "spool_pending_segments",
    "spool_commits": "fsync_duration_seconds_count",
}


def collector_health(state: CollectorState) -> dict:
    """The detailed /health: every worker's counters together, as JSON."""
    totals = metrics.health_counters()
    return {
        "status": state.phase,
        "workers": state.workers,
        "workers_running": state.running(),  # processes alive
        "workers_serving": int(totals["workers_serving"]),  # of those, started up and not stopping
        **{name: int(totals[metric]) for name, metric in _HEALTH_COUNTERS.items()},
        "spool_max_pending_bytes": state.settings.collector.spool_max_pending_bytes,
        "upload_lag_seconds": round(totals["upload_lag_seconds"], 3),
        "uptime_seconds": round(time.time() - state.started_at, 3),
        **plan_health(state.settings.plan_dir, totals),
        # Key ids (never a secret) and IP truncation as the workers run them; events dropped, all workers.
        **privacy_health(privacy_from_settings(state.settings, None), totals),
    }


def build_admin_app(state: CollectorState, *, local_hosts_only: bool) -> AdminApp:
    """The admin routes of today; add more here (each its own handler)."""
    app = AdminApp(local_hosts_only=local_hosts_only)

    async def health(_request: AdminRequest) -> AdminResponse:
        return AdminResponse(200, dumps(collector_health(state)))

    async def prometheus(_request: AdminRequest) -> AdminResponse:
        return AdminResponse(200, metrics.exposition(), metrics.CONTENT_TYPE_LATEST.encode())

    app.route("GET", "/health", health)
    app.route("GET", "/metrics", prometheus)
    return app


class AdminServer:
    """uvicorn on the admin socket, in a thread of the master (signals stay with the master's main thread)."""

    def __init__(self, app: AdminApp, sock: socket.socket, settings: Settings) -> None:
        limits = settings.collector
        protocol.configure(limits)
        config = uvicorn.Config(
            app,
            http=protocol.GuardedHttpToolsProtocol,
            loop="asyncio",
            lifespan="off",
            access_log=False,
            log_config=None,
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=int(max(1, limits.keep_alive_seconds)),
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.sock = sock
        self.thread = threading.Thread(target=self._run, name="admin", daemon=True)

    def _run(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1})
        try:
            self.server.run(sockets=[self.sock])
        except Exception:
            log.exception("admin listener stopped")

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
