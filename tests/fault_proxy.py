"""A TCP proxy on loopback that can cut connections mid-body: a flaky network, for real clients.

Placed between a client (the loader's s3fs) and a real server (moto), it forwards
bytes both ways. While ``cut_after`` is set, any server-to-client stream is reset
after that many bytes, so a large GET ends mid-body the way a reset connection or
a dying load balancer ends it.
"""

from __future__ import annotations

import contextlib
import socket
import threading

_RESET = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # SO_LINGER on, 0 s: close() sends RST, not FIN


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.cut_after: int | None = None
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
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
            threading.Thread(target=self._pipe, args=(upstream, client, self.cut_after), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, cut_after: int | None) -> None:
        sent = 0
        try:
            while data := source.recv(65536):
                if cut_after is not None and sent + len(data) > cut_after:
                    sink.sendall(data[: cut_after - sent])
                    self.cuts += 1
                    sink.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                    # The other direction's thread is blocked reading the client: wake it (SHUT_RD sends
                    # nothing), or the client's socket stays open until the client times out, and the reset
                    # the cut stands for becomes a stalled body.
                    sink.shutdown(socket.SHUT_RD)
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
        self._listener.close()
