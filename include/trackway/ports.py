"""Free TCP ports on loopback, chosen together so that none is handed out twice."""

from __future__ import annotations

import contextlib
import socket


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free on ``host`` a moment ago.

    Each probe socket stays bound until all are chosen: probed one after another, the kernel may give the
    same port twice, and a collector then refuses its admin port as its public one. Another process can
    still take one before the caller binds it; callers that start servers retry.
    """
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
