"""The Segment HTTP Tracking API as a plain ASGI application (served by uvicorn, see worker.py).

Endpoints (Segment field names; the single-event endpoints imply ``type``):
  POST /v1/batch  (alias /v1/import)   {"batch": [...], "context"?, "integrations"?, "sentAt"?, "writeKey"?}
  POST /v1/track /v1/page /v1/screen /v1/identify /v1/group /v1/alias   one event
  POST /v1/t /v1/p /v1/s /v1/i /v1/g /v1/a, /v1/b   analytics.js' short paths (its
       standard dispatcher posts to ``<apiHost>/<first letter of type>``, batching to ``/b``)
  GET  /v1/projects/<writeKey>/settings   what analytics.js fetches from its ``cdnURL``
       before sending: only the 'Segment.io' destination, its apiHost the Host header
       the request came in on + ``/v1`` and its protocol this request's (X-Forwarded-Host
       and X-Forwarded-Proto win when TRACKWAY_TRUST_FORWARDED_FOR), so a page needs
       only ``cdnURL`` set to the collector. 401 for an unknown key, 400 for a bad Host
  GET  /health        liveness for load balancers: {"status": "ok"}, or 503 while stopping
  GET  /openapi.json  the OpenAPI 3.1 description of all this (openapi.py)
  OPTIONS             CORS preflight of the routes above that browsers call

CORS: only the tracking routes and the settings route answer browsers
cross-origin (any Origin, no credentials). /metrics and the detailed /health
are not on this listener at all: they are on the admin listener (admin.py).

The write key comes from HTTP basic auth (key as user name, empty password)
or from ``writeKey`` in the body. Bodies may be ``Content-Encoding: gzip``
and ``Content-Type`` may be anything (analytics.js sends text/plain): the
body is always parsed as JSON.

Before a body is read, its headers decide (limits.py): an address with too
many failed authentications gets 429 without its key being checked; a key in
the Authorization header is checked; the events rate limit of (that key,
the client address) is checked. A key sent in the body (analytics.js) is
only known once the body is read, so until then the request is limited by
its address alone, under the bucket of keyless requests from that address.
A missing, malformed or unknown key gets one answer, the same on every
route: same status, body and headers, so no answer tells keys apart.

Statuses (every error body is ``{"success": false, "error": "<what to do>",
"code": "<status name>", "message": "<what to do>"}``: ``code``/``message`` are
what the Segment and RudderStack Python SDKs read, and they misreport or retry
a 4xx whose body lacks them):
  200  stored: all events are fsync'd to the spool. For a batch the body also
       has ``accepted`` and ``quarantined`` counts; invalid events of a batch
       that has valid ones are kept in the quarantine with their reason
  400  body is not a JSON object, an event is invalid (single-event call),
       every event of a batch is invalid, or a field has the wrong type;
       nothing was stored
  401  write key missing, malformed or unknown (one answer for all, on every route)
  404  unknown path
  405  wrong method
  411  no Content-Length and not chunked
  413  over a limit, named in the message: body (raw or after gunzip) over
       TRACKWAY_MAX_BODY_BYTES, a single event over TRACKWAY_MAX_EVENT_BYTES,
       a batch over TRACKWAY_MAX_BATCH_EVENTS events
  415  Content-Encoding other than gzip/deflate/identity
  429  the write key from this address is over TRACKWAY_RATE_LIMIT_EVENTS_PER_SECOND, or the address
       is over TRACKWAY_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE; Retry-After says when to retry
  503  shutting down, the spool is over TRACKWAY_SPOOL_MAX_PENDING_BYTES (object
       store behind) or could not be written (disk full); nothing stored;
       Retry-After says when to retry
  500  unexpected bug; nothing acknowledged
A 4xx/5xx therefore always means nothing from that request was acknowledged.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import math
import time
import zlib
from collections.abc import Awaitable, Callable, Hashable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import unquote

import orjson

from trackway.collector import metrics
from trackway.collector.analytics_js import SETTINGS_PATH, settings_document, valid_host
from trackway.collector.limits import RateLimiter, address_bucket
from trackway.collector.openapi import openapi_document
from trackway.collector.routes import BATCH, ERROR_CODES, GET_ROUTES, ROUTES, allows_cors
from trackway.collector.spool import Spool, SpoolClosed, SpoolWriteError, hour_key
from trackway.collector.suppression import Suppression
from trackway.config import Settings
from trackway.plan.hook import apply_to_batch
from trackway.plan.privacy import Privacy
from trackway.plan.validate import PlanEnforcer
from trackway.segment_rules import (
    CheckedBatch,
    InvalidBody,
    RequestInfo,
    batch_level,
    check_events,
    dumps,
    parse_json_body,
)

log = logging.getLogger("trackway.collector.http")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class CollectorHost(Protocol):
    """What the ASGI app needs from the process that serves it (``worker.Worker``).

    A protocol rather than an import, so the app does not depend on the worker
    that builds it (the worker imports the app).
    """

    settings: Settings
    spool: Spool
    write_keys: dict[str, str]
    plan: PlanEnforcer | None
    privacy: Privacy | None
    pending_cap: int
    rate_limiter: RateLimiter | None  # events per (write key, client address)
    auth_failures: RateLimiter | None  # failed authentications per client address
    suppression: Suppression | None
    stopping: bool

    async def startup(self) -> None: ...

    async def shutdown(self) -> None: ...


_MAX_REASONS_IN_MESSAGE = 5
_MAX_ERRORS_IN_RESPONSE = 100
_JSON = b"application/json"
# The one answer to a missing, malformed or unknown write key, whatever the route (no oracle).
UNAUTHORIZED = (
    "missing or unknown write key; send a key configured in TRACKWAY_WRITE_KEYS as the HTTP basic auth user "
    'name (empty password) or as "writeKey" in the body (analytics.js: in its settings URL)'
)


class HttpError(Exception):
    def __init__(self, status: int, message: str, *, close: bool = False, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close
        self.headers = headers or {}


class ClientGone(Exception):
    """The client disconnected (or was timed out) before its body arrived: nothing to answer."""


class CollectorApp:
    """The ASGI callable: routes, limits, the write key, parsing, then the worker's spool."""

    def __init__(self, worker: CollectorHost) -> None:
        self.worker = worker
        self._reserved_bytes = 0  # admitted by the spool cap, not yet committed (one event loop: no lock)
        self.settings = worker.settings
        networks = worker.settings.trusted_proxies
        self.proxies = Proxies(networks, any_peer=worker.settings.trust_forwarded_for and not networks)
        self.limits = worker.settings.collector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.worker.startup()
                except Exception as exc:
                    log.exception("worker could not start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.worker.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- HTTP --------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method = scope["method"]
        path = scope["path"].rstrip("/") or "/"
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        route_label = path if (path in ROUTES or path in GET_ROUTES) else "other"
        cors = allows_cors(path)
        extra: dict[str, str] = {}
        close = False
        content_type = _JSON
        try:
            if method == "POST":
                status, body = await self._post(path, headers, scope, receive)
            elif method == "OPTIONS":
                status, body, extra = 204, b"", self._preflight(path, headers)
            elif method in ("GET", "HEAD"):
                status, body, content_type, route_label = self._get(path, headers, scope)
            else:
                raise HttpError(405, "use POST", close=True, headers={"Allow": "POST, GET, OPTIONS"})
        except HttpError as err:
            status, body, extra, close = err.status, self._error_body(err, method, path, scope), err.headers, err.close
        except ClientGone:
            metrics.REQUESTS.labels(route_label, "disconnected").inc()
            return
        except Exception:
            log.exception("unexpected error handling %s %s", loggable(method), loggable(path))
            bug = HttpError(500, "internal error; nothing was stored; retry later and report it if it persists")
            status, body, close = 500, self._error_body(bug, method, path, scope), True
        if route_label == "other" and SETTINGS_PATH.match(path):
            route_label = "/v1/projects/settings"
        response_headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        if cors:  # only what browsers call; never /health or /openapi.json
            response_headers += [
                (b"access-control-allow-origin", (headers.get("origin") or "*").encode("latin-1")),
                (b"access-control-expose-headers", b"Retry-After"),
                (b"vary", b"Origin"),
            ]
        response_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
        if close:
            response_headers.append((b"connection", b"close"))
        # Counted before answering, so a /health that follows the answer already includes it.
        metrics.count_request(route_label, status, time.perf_counter() - started)
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    def _error_body(self, err: HttpError, method: str, path: str, scope: Scope) -> bytes:
        level = logging.WARNING if err.status >= 500 else logging.INFO
        client = scope.get("client") or ("-", 0)
        log.log(
            level,
            "%d %s %s from %s: %s",
            err.status,
            loggable(method),
            loggable(path),
            client[0],
            loggable(err.message, 500),
        )
        code = ERROR_CODES.get(err.status, "error")
        return dumps({"success": False, "error": err.message, "code": code, "message": err.message})

    def _preflight(self, path: str, headers: dict[str, str]) -> dict[str, str]:
        """CORS preflight of a route browsers may call; any other path gets no CORS headers at all."""
        if not allows_cors(path):
            if path in GET_ROUTES:
                raise HttpError(405, f"{path} accepts GET only, and not from other origins", headers={"Allow": "GET"})
            raise HttpError(404, f"no endpoint {path}; browsers may call POST /v1/batch, /v1/track, /v1/t, ...")
        requested = headers.get("access-control-request-headers") or "Content-Type, Authorization, Content-Encoding"
        return {
            "Access-Control-Allow-Methods": "POST, OPTIONS" if path in ROUTES else "GET, OPTIONS",
            "Access-Control-Allow-Headers": requested,
            "Access-Control-Max-Age": "86400",
        }

    def _get(self, path: str, headers: dict[str, str], scope: Scope) -> tuple[int, bytes, bytes, str]:
        if path == "/health":  # liveness only: the counters are on the admin listener
            if self.worker.stopping:
                return 503, b'{"status":"stopping"}', _JSON, path
            return 200, b'{"status":"ok"}', _JSON, path
        if path == "/openapi.json":
            return 200, dumps(openapi_document(self.settings)), _JSON, path
        settings_match = SETTINGS_PATH.match(path)
        if settings_match:
            document = self._analytics_js_settings(unquote(settings_match["key"]), headers, scope)
            return 200, dumps(document), _JSON, "/v1/projects/settings"
        if path in ROUTES:
            raise HttpError(405, f"{path} accepts POST only", headers={"Allow": "POST, OPTIONS"})
        raise HttpError(
            404,
            f"no endpoint {path}; use POST /v1/batch, /v1/track, /v1/page, ... "
            "GET /v1/projects/<writeKey>/settings, /health or /openapi.json (metrics: the admin port)",
        )

    def _analytics_js_settings(self, key: str, headers: dict[str, str], scope: Scope) -> dict:
        peer = (scope.get("client") or ("",))[0]
        address = address_bucket(self._client_ip(scope, headers))
        self._refuse_locked_out(address)
        if key not in self.worker.write_keys:
            raise self._unauthorized(address)
        host = headers.get("host") or ""
        protocol = "http"  # the collector itself serves plain HTTP; TLS is a proxy's job
        if self.proxies.trusts(peer):
            host = (headers.get("x-forwarded-host") or "").split(",")[0].strip() or host
            forwarded = (headers.get("x-forwarded-proto") or "").split(",")[0].strip().lower()
            if forwarded in ("http", "https"):
                protocol = forwarded
        host = host.strip()
        if not valid_host(host):
            raise HttpError(
                400, "the Host header is missing or not a host[:port]; analytics.js is told to send events to that host"
            )
        return settings_document(key, host, protocol)

    # -- the tracking API --------------------------------------------------

    async def _post(self, path: str, headers: dict[str, str], scope: Scope, receive: Receive) -> tuple[int, bytes]:
        route = ROUTES.get(path)
        if route is None:
            raise HttpError(
                404,
                f"no endpoint {path}; use POST /v1/batch, /v1/track, /v1/page, /v1/screen, /v1/identify, /v1/group or /v1/alias",
                close=True,
            )
        if self.worker.stopping:
            raise HttpError(
                503, "collector is shutting down; retry in a moment", close=True, headers={"Retry-After": "1"}
            )
        # Everything up to the body read is decided from the headers alone (see the module docstring).
        ip = self._client_ip(scope, headers)
        address = address_bucket(ip)
        self._refuse_locked_out(address)
        write_keys = self.worker.write_keys
        header_key = _header_write_key(headers.get("authorization"))
        if header_key is not None and header_key not in write_keys:
            raise self._unauthorized(address)
        bucket = (header_key or "", address)  # a body key is not known yet: the address's keyless bucket
        self._rate_limit(bucket)

        raw = self._decode(await self._read_body(headers, receive), headers)
        try:
            body = parse_json_body(raw)
        except InvalidBody as exc:
            raise HttpError(400, str(exc)) from None

        key = header_key
        if key is None:
            key = body.get("writeKey")
            if not isinstance(key, str) or key not in write_keys:
                raise self._unauthorized(address)
        source_id = write_keys[key]

        received_at, dt, hour = _received_now()
        info = RequestInfo(source_id=source_id, received_at=received_at, client_ip=ip)

        if route != BATCH:
            single = self.check_batch([body], info, implied_type=route)
            if single.errors:  # a single-event call is refused as a whole, not quarantined
                status = 413 if single.too_large else 400
                raise HttpError(status, f"{single.errors[0]['reason']}; nothing was stored")
            if single.suppressed:  # an erasure request suppresses this subject: answered as if stored
                return 200, b'{"success":true}'

            if single.plan_blocked:  # tracking plan, block mode: the event is kept in the quarantine
                await self._store([("quarantine", dt, hour, single.quarantine[0] + b"\n")])
                metrics.EVENTS_QUARANTINED.labels(source_id).inc()
                answer = {"success": True, "accepted": 0, "quarantined": 1, "violations": single.violations}
                return 200, dumps(answer)
            if single.dropped:  # privacy: consent denied or sampled out; acknowledged, counted, not stored
                return 200, b'{"success":true}'
            await self._store([("events", dt, hour, single.lines[0] + b"\n")])
            metrics.events_accepted(source_id).inc()
            if single.violations:  # tracking plan, flag mode
                return 200, dumps({"success": True, "violations": single.violations})
            return 200, b'{"success":true}'

        events = body.get("batch")
        if not isinstance(events, list):
            got = "no 'batch'" if events is None else f"'batch' is a JSON {type(events).__name__}"
            raise HttpError(400, f'body has {got}; send {{"batch": [event, ...]}} (or one event to /v1/track etc.)')
        if len(events) > self.limits.max_batch_events:
            raise HttpError(
                413,
                f"batch has {len(events)} events; the limit is {self.limits.max_batch_events} events per batch "
                "(TRACKWAY_MAX_BATCH_EVENTS): send smaller batches; nothing was stored",
            )
        self._charge(bucket, len(events) - 1)  # the request took one already; the batch may leave debt
        try:
            context, integrations, sent_at = batch_level(body)
        except InvalidBody as exc:
            raise HttpError(400, f"{exc}; nothing was stored") from None
        info = RequestInfo(info.source_id, info.received_at, info.client_ip, context, integrations, sent_at)

        checked = self.check_batch(events, info)
        errors = checked.errors
        accepted = len(checked.lines)
        if events and accepted == 0 and not checked.plan_blocked and not checked.dropped and not checked.suppressed:
            reasons = "; ".join(f"event {e['index']}: {e['reason']}" for e in errors[:_MAX_REASONS_IN_MESSAGE])
            more = (
                f" (and {len(errors) - _MAX_REASONS_IN_MESSAGE} more)" if len(errors) > _MAX_REASONS_IN_MESSAGE else ""
            )
            status = 413 if checked.too_large == len(errors) else 400
            raise HttpError(
                status, f"none of the {len(events)} events in the batch is valid, nothing was stored: {reasons}{more}"
            )
        items = [("events", dt, hour, line + b"\n") for line in checked.lines]
        items += [("quarantine", dt, hour, line + b"\n") for line in checked.quarantine]
        if items:
            await self._store(items)
        metrics.events_accepted(source_id).inc(accepted)
        quarantined = len(errors) + checked.plan_blocked
        if quarantined:
            metrics.EVENTS_QUARANTINED.labels(source_id).inc(quarantined)
        payload: dict[str, Any] = {"success": True, "accepted": accepted, "quarantined": quarantined}
        if checked.dropped:
            payload["dropped"] = len(checked.dropped)
        if errors:
            payload["errors"] = errors[:_MAX_ERRORS_IN_RESPONSE]
        if checked.violations:
            payload["violations"] = checked.violations
        return 200, dumps(payload)

    def check_batch(self, events: list, info: RequestInfo, implied_type: str | None = None) -> CheckedBatch:
        """Where every request's events are checked before spooling (validation, enrichment, quarantine)."""
        # The privacy step (trackway.plan.privacy) pseudonymises, truncates and drops before anything is stored.
        checked = check_events(events, info, self.limits.max_event_bytes, implied_type, self.worker.privacy)
        # Tracking plan hook (trackway.plan.hook): flag lists violations, block moves events to the quarantine.
        checked = apply_to_batch(self.worker.plan, events, checked, info, implied_type)
        # Erasure requests: suppressed subjects' events are dropped before storage (collector/suppression.py).
        suppression = self.worker.suppression
        return suppression.apply(checked, info.source_id) if suppression is not None else checked

    def _client_ip(self, scope: Scope, headers: dict[str, str]) -> str:
        return client_ip((scope.get("client") or ("",))[0], headers.get("x-forwarded-for"), self.proxies)

    def _refuse_locked_out(self, address: str) -> None:
        """429 without checking any key for an address over its failed authentications."""
        limiter = self.worker.auth_failures
        wait = limiter.wait(address) if limiter is not None else 0.0
        if wait > 0:
            raise _too_many(
                "auth_failures",
                "too many requests without a valid write key from this address "
                f"(TRACKWAY_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE={self.limits.rate_limit_auth_failures_per_minute}); "
                "nothing was checked or stored",
                wait,
            )

    def _unauthorized(self, address: str) -> HttpError:
        """The one 401 (see UNAUTHORIZED), counted against the address's failed authentications."""
        metrics.AUTH_FAILURES.inc()
        limiter = self.worker.auth_failures
        if limiter is not None and 0 <= limiter.charge(address, 1) < 1:  # this failure used the last token
            log.warning(
                "%s: over TRACKWAY_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE=%d requests without a valid write key; "
                "answering it 429 without checking keys until it slows down. If it is a proxy of yours, list "
                "it in TRACKWAY_TRUSTED_PROXIES so that clients are told apart",
                loggable(address),
                self.limits.rate_limit_auth_failures_per_minute,
            )
        return HttpError(401, UNAUTHORIZED, close=True)  # close: an unread body is not worth reading

    def _rate_limit(self, bucket: Hashable) -> None:
        """One event's token of (write key, address), from the headers alone: 429 before the body is read."""
        limiter = self.worker.rate_limiter
        wait = limiter.take(bucket) if limiter is not None else 0.0
        if wait > 0:
            raise _too_many(
                "events",
                f"over the rate limit of {self.limits.rate_limit_events_per_second:g} events/s for this write key "
                "from this address (TRACKWAY_RATE_LIMIT_EVENTS_PER_SECOND); nothing was stored",
                wait,
            )

    def _charge(self, bucket: Hashable, events: int) -> None:
        if self.worker.rate_limiter is not None and events > 0:
            self.worker.rate_limiter.charge(bucket, events)

    async def _store(self, items: list[tuple[str, str, str, bytes]]) -> None:
        worker = self.worker
        size = sum(len(item[3]) for item in items)
        # Bytes of requests already past this check but still awaiting their group commit count too:
        # without them, concurrent requests each saw room and together overshot the cap.
        if worker.spool.pending_bytes() + self._reserved_bytes + size > worker.pending_cap:
            raise HttpError(
                503,
                "the spool holds more not-yet-uploaded events than TRACKWAY_SPOOL_MAX_PENDING_BYTES allows "
                "(the object store is down or slow); nothing was stored; retry after Retry-After seconds",
                headers={"Retry-After": "5"},
            )
        self._reserved_bytes += size
        try:
            await worker.spool.append_async(items)
        except SpoolClosed:
            raise HttpError(
                503,
                "collector is shutting down; nothing was stored; retry in a moment",
                close=True,
                headers={"Retry-After": "1"},
            ) from None
        except SpoolWriteError as exc:
            raise HttpError(
                503,
                f"could not store events durably ({exc}); nothing was stored; retry after Retry-After seconds",
                headers={"Retry-After": "5"},
            ) from None
        finally:
            self._reserved_bytes -= size

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        limit = self.settings.max_body_bytes
        if "chunked" not in (headers.get("transfer-encoding") or "").lower():
            length = headers.get("content-length")
            if length is None:
                raise HttpError(411, "Content-Length header is required (or use chunked transfer encoding)", close=True)
            try:
                size = int(length)
                if size < 0:
                    raise ValueError
            except ValueError:
                raise HttpError(400, f"Content-Length {length[:40]!r} is not a byte count", close=True) from None
            if size > limit:
                raise self._too_large(size)
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                raise self._too_large(total)
            chunks.append(chunk)
            if not message.get("more_body"):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self, size: int, what: str = "body") -> HttpError:
        limit = self.settings.max_body_bytes
        return HttpError(
            413,
            f"{what} is {size} bytes or more; the limit is {limit} bytes (TRACKWAY_MAX_BODY_BYTES): send fewer events per batch",
            close=True,
        )

    def _decode(self, body: bytes, headers: dict[str, str]) -> bytes:
        encoding = (headers.get("content-encoding") or "identity").strip().lower()
        if encoding in ("", "identity"):
            return body
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise HttpError(415, f"Content-Encoding {encoding[:40]!r} is not supported; send gzip or uncompressed JSON")
        limit = self.settings.max_body_bytes
        out = bytearray()
        data = body
        try:
            while data:
                # Bounded output per call: a gzip bomb stops at limit + 1 bytes, never inflates fully.
                inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)
                out += inflater.decompress(data, limit + 1 - len(out))
                if len(out) > limit:
                    raise self._too_large(limit + 1, "decompressed body")
                if not inflater.eof:
                    if inflater.unconsumed_tail:
                        raise self._too_large(limit + 1, "decompressed body")
                    raise HttpError(400, f"{encoding} body is truncated; send the complete compressed body")
                data = inflater.unused_data  # concatenated gzip members
        except zlib.error as exc:
            raise HttpError(
                400, f"body says Content-Encoding: {encoding} but is not valid {encoding} data ({exc})"
            ) from None
        return bytes(out)


def _too_many(reason: str, message: str, wait: float) -> HttpError:
    """A 429 decided before the body was read: counted by reason, and the connection closed (body unread)."""
    metrics.RATE_LIMITED.labels(reason).inc()
    return HttpError(
        429,
        message + "; retry after Retry-After seconds",
        close=True,
        headers={"Retry-After": str(max(1, math.ceil(wait)))},
    )


_clock: list = [None, None]  # [whole second, (date-time prefix, dt, hour)] cached per second


def _received_now() -> tuple[str, str, str]:
    """receivedAt (UTC, ms, Z) and the (dt, hour) partition of now; the formatting is cached per second."""
    now = time.time()
    second = int(now)
    if _clock[0] != second:
        moment = datetime.fromtimestamp(second, UTC)
        dt, hour = hour_key(moment)
        _clock[0], _clock[1] = second, (moment.strftime("%Y-%m-%dT%H:%M:%S."), dt, hour)
    prefix, dt, hour = _clock[1]
    return f"{prefix}{int((now - second) * 1000):03d}Z", dt, hour


def _header_write_key(auth: str | None) -> str | None:
    """The key of an Authorization header; None without one, "" (no key's value) when it is not basic auth of one."""
    if not auth:
        return None
    scheme, _, value = auth.strip().partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    user, _, password = decoded.partition(":")
    return user or password or None  # basic auth of ":" carries no key: the body's writeKey decides


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().removeprefix("::ffff:"))
    except ValueError:
        return None


def client_ip(peer: str, forwarded_for: str | None, proxies: Proxies) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy.

    Each proxy appends the address it received from to X-Forwarded-For, so only the
    right end of the list is trustworthy: walk it from the right past trusted proxies
    and take the first address that is not one. The leftmost entry is whatever the
    client wrote.
    """
    peer = peer.removeprefix("::ffff:")
    if not forwarded_for or not proxies.trusts(peer):  # no header: no address to parse
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    if not proxies.networks:  # one proxy in front, address unknown: the hop it appended is the last
        return hops[-1].removeprefix("::ffff:") if hops and _ip(hops[-1]) is not None else peer
    for hop in reversed(hops):
        if _ip(hop) is None:
            return peer  # a garbled list: do not guess
        if not proxies.trusts(hop):
            return hop.removeprefix("::ffff:")
    return hops[0].removeprefix("::ffff:") if hops else peer


@dataclass(frozen=True)
class Proxies:
    """Which peers may speak for the client (X-Forwarded-For, -Host, -Proto)."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    #: TRACKWAY_TRUST_FORWARDED_FOR without a list: the one proxy in front, whatever its address.
    any_peer: bool = False

    def trusts(self, address: str) -> bool:
        ip = _ip(address)
        if ip is None:
            return False
        return self.any_peer or any(ip in network for network in self.networks)


def loggable(text: str, limit: int = 200) -> str:
    """Client-controlled text for a log line: control characters escaped, so a decoded %0A forges no line."""
    return text[:limit].encode("unicode_escape").decode("ascii")


def error_json(status: int, message: str) -> bytes:
    """An error body in the collector's shape, for answers given outside the app (e.g. by the server)."""
    return orjson.dumps(
        {"success": False, "error": message, "code": ERROR_CODES.get(status, "error"), "message": message}
    )
