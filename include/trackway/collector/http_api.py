"""The Segment HTTP Tracking API over the stdlib threaded HTTP server.

Endpoints (Segment field names; the single-event endpoints imply ``type``):
  POST /v1/batch  (alias /v1/import)   {"batch": [...], "context"?, "integrations"?, "sentAt"?, "writeKey"?}
  POST /v1/track /v1/page /v1/screen /v1/identify /v1/group /v1/alias   one event
  POST /v1/t /v1/p /v1/s /v1/i /v1/g /v1/a, /v1/b   analytics.js' short paths (its
       standard dispatcher posts to ``<apiHost>/<first letter of type>``, batching to ``/b``)
  GET  /v1/projects/<writeKey>/settings   what analytics.js fetches from its ``cdnURL``
       before sending: only the 'Segment.io' destination, its apiHost the Host header
       the request came in on + ``/v1`` and its protocol this request's (X-Forwarded-Host
       and X-Forwarded-Proto win when TRACKWAY_TRUST_FORWARDED_FOR), so a page needs
       only ``cdnURL`` set to the collector. 404 for an unknown key, 400 for a bad Host
  GET  /health    live counters as JSON
  OPTIONS *       CORS preflight (browser SDKs)

The write key comes from HTTP basic auth (key as user name, empty password)
or from ``writeKey`` in the body. Bodies may be ``Content-Encoding: gzip``
and ``Content-Type`` may be anything (analytics.js sends text/plain): the
body is always parsed as JSON.

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
  401  write key missing or unknown
  404  unknown path, or settings asked for an unknown write key
  405  wrong method
  411  no Content-Length and not chunked
  413  body (raw or after gunzip) larger than TRACKWAY_MAX_BODY_BYTES
  415  Content-Encoding other than gzip/deflate/identity
  503  shutting down or the spool could not be written; nothing stored, retry
  500  unexpected bug; nothing acknowledged
A 4xx/5xx therefore always means nothing from that request was acknowledged.
"""

from __future__ import annotations

import base64
import binascii
import logging
import sys
import zlib
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from trackway.collector.analytics_js import SETTINGS_PATH, settings_document, valid_host
from trackway.collector.segment import (
    InvalidBody,
    InvalidEvent,
    RequestInfo,
    batch_level,
    dumps,
    format_received_at,
    parse_json_body,
    process_event,
    quarantine_record,
)
from trackway.collector.spool import SpoolClosed, SpoolWriteError, hour_key

log = logging.getLogger("trackway.collector.http")

BATCH = "batch"
ROUTES = {
    "/v1/batch": BATCH,
    "/v1/import": BATCH,
    "/v1/track": "track",
    "/v1/page": "page",
    "/v1/screen": "screen",
    "/v1/identify": "identify",
    "/v1/group": "group",
    "/v1/alias": "alias",
    # analytics.js (analytics-next) short paths: "/" + the type's first letter, "/b" for batches
    "/v1/t": "track",
    "/v1/p": "page",
    "/v1/i": "identify",
    "/v1/g": "group",
    "/v1/a": "alias",
    "/v1/s": "screen",
    "/v1/b": BATCH,
}
# Machine-readable ``code`` for each error status, as Segment-style clients expect.
ERROR_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_encoding",
    500: "internal_error",
    503: "unavailable",
}
_MAX_REASONS_IN_MESSAGE = 5
_MAX_ERRORS_IN_RESPONSE = 100


class HttpError(Exception):
    def __init__(self, status: int, message: str, *, close: bool = False, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close
        self.headers = headers or {}


class CollectorHTTPServer(ThreadingHTTPServer):
    """One thread per connection; handlers block on the spool's group commit."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address, collector):
        self.collector = collector
        super().__init__(address, CollectorHandler)

    def handle_error(self, request, client_address):
        # Dropped and timed-out connections are routine; only log real bugs with a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, (TimeoutError, ConnectionError)):
            log.debug("connection from %s ended: %s", client_address[0], exc)
        else:
            log.exception("error serving %s", client_address[0])


def make_server(host: str, port: int, collector) -> CollectorHTTPServer:
    return CollectorHTTPServer((host, port), collector)


class CollectorHandler(BaseHTTPRequestHandler):
    server: CollectorHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive: SDKs reuse connections
    server_version = "trackway-collector"
    sys_version = ""
    timeout = 30  # seconds a connection may sit idle or stall mid-body
    disable_nagle_algorithm = True  # headers and body go out in two writes; don't wait 40 ms for an ACK

    # -- plumbing --------------------------------------------------------

    def log_message(self, format, *args):
        log.debug("%s %s", self.address_string(), format % args)

    def handle_expect_100(self):
        # Refuse an oversized body before the client sends it.
        length = self.headers.get("Content-Length")
        if length and length.strip().isdigit() and int(length) > self.server.collector.settings.max_body_bytes:
            self.server.collector.stats.add("requests")
            self._send_error(self._too_large(int(length)))
            return False
        return super().handle_expect_100()

    def _cors_headers(self) -> dict:
        return {"Access-Control-Allow-Origin": self.headers.get("Origin") or "*", "Vary": "Origin"}

    def _send_json(self, status: int, payload: dict, *, close: bool = False, headers: dict | None = None) -> None:
        body = dumps(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in {**self._cors_headers(), **(headers or {})}.items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _send_error(self, err: HttpError) -> None:
        collector = self.server.collector
        collector.stats.add("requests_rejected")
        level = logging.WARNING if err.status >= 500 else logging.INFO
        log.log(
            level,
            "%d %s %s from %s: %s",
            err.status,
            self.command,
            self.path[:200],
            self.client_address[0],
            err.message,
        )
        payload = {
            "success": False,
            "error": err.message,
            "code": ERROR_CODES.get(err.status, "error"),
            "message": err.message,
        }
        self._send_json(err.status, payload, close=err.close, headers=err.headers)

    def _too_large(self, size: int, what: str = "body") -> HttpError:
        limit = self.server.collector.settings.max_body_bytes
        return HttpError(
            413,
            f"{what} is {size} bytes or more; the limit is {limit} bytes (TRACKWAY_MAX_BODY_BYTES): send fewer events per batch",
            close=True,
        )

    # -- methods ---------------------------------------------------------

    def do_OPTIONS(self):
        requested = (
            self.headers.get("Access-Control-Request-Headers") or "Content-Type, Authorization, Content-Encoding"
        )
        self.send_response(204)
        for name, value in self._cors_headers().items():
            self.send_header(name, value)
        self.send_header("Access-Control-Allow-Methods", "POST, GET, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", requested)
        self.send_header("Access-Control-Max-Age", "86400")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        path = _route_path(self.path)
        settings_match = SETTINGS_PATH.match(path)
        if path == "/health":
            self._send_json(200, self.server.collector.health())
        elif settings_match:
            try:
                self._send_json(200, self._analytics_js_settings(unquote(settings_match["key"])))
            except HttpError as err:
                self._send_error(err)
        elif path in ROUTES:
            self._send_error(HttpError(405, f"{path} accepts POST only", headers={"Allow": "POST, OPTIONS"}))
        else:
            self._send_error(
                HttpError(
                    404,
                    f"no endpoint {path}; use POST /v1/batch, /v1/track, /v1/page, ... GET /v1/projects/<writeKey>/settings or /health",
                )
            )

    def do_PUT(self):
        self._send_error(HttpError(405, "use POST", close=True, headers={"Allow": "POST, GET, OPTIONS"}))

    do_DELETE = do_PATCH = do_PUT

    def do_POST(self):
        collector = self.server.collector
        collector.stats.add("requests")
        if not collector.begin_request():
            self._send_error(
                HttpError(
                    503, "collector is shutting down; retry in a moment", close=True, headers={"Retry-After": "1"}
                )
            )
            return
        try:
            try:
                status, payload = self._post()
            except HttpError as err:
                self._send_error(err)
                return
            except (TimeoutError, ConnectionError):
                raise
            except Exception:
                log.exception("unexpected error handling %s %s", self.command, self.path[:200])
                self._send_error(
                    HttpError(
                        500, "internal error; nothing was stored; retry later and report it if it persists", close=True
                    )
                )
                return
            self._send_json(status, payload)
        except (TimeoutError, ConnectionError) as exc:
            # If this happened after storing, the client saw no 200 and will resend: messageId dedups.
            log.info(
                "%s %s from %s: connection failed (%s)", self.command, self.path[:200], self.client_address[0], exc
            )
            self.close_connection = True
        finally:
            collector.end_request()

    def _analytics_js_settings(self, key: str) -> dict:
        settings = self.server.collector.settings
        if key not in settings.write_keys:
            raise HttpError(404, "no settings for this write key; use a key configured in TRACKWAY_WRITE_KEYS")
        host = self.headers.get("Host") or ""
        protocol = "http"  # the collector itself serves plain HTTP; TLS is a proxy's job
        if settings.trust_forwarded_for:
            host = (self.headers.get("X-Forwarded-Host") or "").split(",")[0].strip() or host
            forwarded = (self.headers.get("X-Forwarded-Proto") or "").split(",")[0].strip().lower()
            if forwarded in ("http", "https"):
                protocol = forwarded
        host = host.strip()
        if not valid_host(host):
            raise HttpError(
                400, "the Host header is missing or not a host[:port]; analytics.js is told to send events to that host"
            )
        return settings_document(key, host, protocol)

    # -- the tracking API ------------------------------------------------

    def _post(self) -> tuple[int, dict]:
        collector = self.server.collector
        settings = collector.settings
        path = _route_path(self.path)
        route = ROUTES.get(path)
        if route is None:
            raise HttpError(
                404,
                f"no endpoint {path}; use POST /v1/batch, /v1/track, /v1/page, /v1/screen, /v1/identify, /v1/group or /v1/alias",
                close=True,
            )

        header_key = self._header_write_key()
        if header_key is not None and header_key not in settings.write_keys:
            raise HttpError(401, "unknown write key; use a key configured in TRACKWAY_WRITE_KEYS", close=True)

        raw = self._decode(self._read_body())
        try:
            body = parse_json_body(raw)
        except InvalidBody as exc:
            raise HttpError(400, str(exc)) from None

        key = header_key
        if key is None:
            key = body.get("writeKey")
            if key is None:
                raise HttpError(
                    401,
                    'no write key; send it as the HTTP basic auth user name (empty password) or as "writeKey" in the body',
                )
            if not isinstance(key, str) or key not in settings.write_keys:
                raise HttpError(401, "unknown write key; use a key configured in TRACKWAY_WRITE_KEYS")
        source_id = settings.write_keys[key]

        received = datetime.now(UTC)
        dt, hour = hour_key(received)
        info = RequestInfo(source_id=source_id, received_at=format_received_at(received), client_ip=self._client_ip())

        if route != BATCH:
            try:
                line = process_event(body, info, implied_type=route)
            except InvalidEvent as exc:
                raise HttpError(400, f"{exc}; nothing was stored") from None
            self._store([("events", dt, hour, line + b"\n")])
            collector.stats.add("events_accepted")
            return 200, {"success": True}

        events = body.get("batch")
        if not isinstance(events, list):
            got = "no 'batch'" if events is None else f"'batch' is a JSON {type(events).__name__}"
            raise HttpError(400, f'body has {got}; send {{"batch": [event, ...]}} (or one event to /v1/track etc.)')
        try:
            context, integrations, sent_at = batch_level(body)
        except InvalidBody as exc:
            raise HttpError(400, f"{exc}; nothing was stored") from None
        info = RequestInfo(info.source_id, info.received_at, info.client_ip, context, integrations, sent_at)

        items, errors = [], []
        for index, event in enumerate(events):
            try:
                items.append(("events", dt, hour, process_event(event, info) + b"\n"))
            except InvalidEvent as exc:
                errors.append({"index": index, "reason": str(exc)})
                items.append(("quarantine", dt, hour, dumps(quarantine_record(event, str(exc), info)) + b"\n"))
        accepted = len(events) - len(errors)
        if events and accepted == 0:
            reasons = "; ".join(f"event {e['index']}: {e['reason']}" for e in errors[:_MAX_REASONS_IN_MESSAGE])
            more = (
                f" (and {len(errors) - _MAX_REASONS_IN_MESSAGE} more)" if len(errors) > _MAX_REASONS_IN_MESSAGE else ""
            )
            raise HttpError(
                400, f"none of the {len(events)} events in the batch is valid, nothing was stored: {reasons}{more}"
            )
        self._store(items)
        collector.stats.add("events_accepted", accepted)
        collector.stats.add("events_quarantined", len(errors))
        payload: dict[str, object] = {"success": True, "accepted": accepted, "quarantined": len(errors)}
        if errors:
            payload["errors"] = errors[:_MAX_ERRORS_IN_RESPONSE]
        return 200, payload

    def _store(self, items) -> None:
        try:
            self.server.collector.spool.append(items)
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
                f"could not store events durably ({exc}); nothing was stored; retry later",
                headers={"Retry-After": "5"},
            ) from None

    def _header_write_key(self) -> str | None:
        auth = self.headers.get("Authorization")
        if not auth:
            return None
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() != "basic":
            raise HttpError(
                401,
                "Authorization must be HTTP basic auth with the write key as user name and an empty password",
                close=True,
            )
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise HttpError(401, "Authorization header is not valid base64 of 'writeKey:'", close=True) from None
        user, _, password = decoded.partition(":")
        return user or password or None

    def _client_ip(self) -> str:
        ip = self.client_address[0]
        if self.server.collector.settings.trust_forwarded_for:
            forwarded = (self.headers.get("X-Forwarded-For") or "").split(",")[0].strip()
            if forwarded:
                ip = forwarded
        return ip.removeprefix("::ffff:")

    def _read_body(self) -> bytes:
        limit = self.server.collector.settings.max_body_bytes
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked(limit)
        length = self.headers.get("Content-Length")
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
        body = self.rfile.read(size)
        if len(body) < size:
            raise HttpError(
                400, f"body ended after {len(body)} of {size} bytes announced by Content-Length", close=True
            )
        return body

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise HttpError(400, "malformed chunked body", close=True) from None
            if size == 0:
                while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            total += size
            if total > limit:
                raise self._too_large(total)
            data = self.rfile.read(size)
            if len(data) < size:
                raise HttpError(400, "chunked body ended early", close=True)
            parts.append(data)
            self.rfile.readline(8)

    def _decode(self, body: bytes) -> bytes:
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding in ("", "identity"):
            return body
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise HttpError(415, f"Content-Encoding {encoding[:40]!r} is not supported; send gzip or uncompressed JSON")
        limit = self.server.collector.settings.max_body_bytes
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


def _route_path(raw_path: str) -> str:
    return urlsplit(raw_path).path.rstrip("/") or "/"
