"""uvicorn's HTTP protocol with the limits it lacks, for the public and the admin listener alike."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from trackway.collector import metrics
from trackway.collector.http_api import error_json
from trackway.config import CollectorLimits, default


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


def configure(limits: CollectorLimits) -> None:
    """Apply the configured limits to every connection this process serves."""
    GuardedHttpToolsProtocol.header_timeout = limits.header_timeout_seconds
    GuardedHttpToolsProtocol.body_timeout = limits.body_timeout_seconds
    GuardedHttpToolsProtocol.max_connections = limits.max_connections
    GuardedHttpToolsProtocol.max_header_bytes = limits.max_header_bytes
    GuardedHttpToolsProtocol.max_url_bytes = limits.max_url_bytes
