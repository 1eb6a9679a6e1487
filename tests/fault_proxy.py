"""A TCP proxy on loopback that can cut connections mid-body: a flaky network, for real clients.

Placed between a client (the loader's s3fs) and a real server (moto), it forwards
bytes both ways. While ``cut_after`` is set, any server-to-client stream is cut
(both sockets closed) after that many bytes, so a large GET ends mid-body the way
a reset connection or a dying load balancer ends it.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.cut_after: int | None = None
        #: Bytes the server may still send to clients, over all connections, before every response is cut.
        self.budget: int | None = None
        self.reset = True  # cut with RST (a reset connection); False: FIN (a connection closed early)
        self.cuts = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, self.cut_after, True), daemon=True).start()

    def _allowance(self, wanted: int, sent: int, cut_after: int | None) -> int | None:
        """How much of ``wanted`` bytes may pass now; None: all of it."""
        limits = []
        if cut_after is not None:
            limits.append(max(0, cut_after - sent))
        with self._lock:
            if self.budget is not None:
                limits.append(self.budget)
                self.budget = max(0, self.budget - wanted)
        if not limits or min(limits) >= wanted:
            return None
        return min(limits)

    def _pipe(
        self, source: socket.socket, sink: socket.socket, cut_after: int | None, downstream: bool = False
    ) -> None:
        sent = 0
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                allowed = self._allowance(len(data), sent, cut_after) if downstream else None
                if allowed is not None:
                    sink.sendall(data[:allowed])
                    self.cuts += 1
                    if self.reset:  # RST: the client sees a reset connection mid-body
                        sink.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.close()

    def close(self) -> None:
        self._stopping = True
        self._listener.close()
