"""Send generated calls through the official Segment Python SDK.

The demo goes through ``segment.analytics.Client`` rather than hand-made HTTP
so the collector is proven against what customers actually run. The SDK is
fire-and-forget; this module turns it into an honest delivery report:

* ``Client._enqueue`` drops a message (returns ``(False, msg)``) when its queue
  is full. We feed the queue in chunks and ``flush()`` after each, with a queue
  twice the chunk size, and still retry a refused enqueue, so nothing is dropped.
* Failures surface only through ``on_error(exc, batch)``; we count those
  messages. After ``flush()`` returns, every message of the chunk has been
  either accepted (2xx) or reported there, because the consumer calls
  ``on_error`` before ``task_done``.
* The SDK writes ``context.library`` into the context dict it is handed, so
  each call's kwargs are deep-copied: the caller's ``Call`` objects stay intact.
* Each call carries its own ``message_id``; a retried batch therefore carries
  the same ids and the warehouse deduplicates it.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time as _time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from segment.analytics import Client

from trackway.demo.marketplace import Call

# The SDK's defaults (10 retries, backoff to 60 s) would keep a demo against a
# stopped collector busy for minutes per batch; a few quick retries ride out a
# restart without that.
MAX_RETRIES = 4
# Batches are cut when this much time passes without filling one; the SDK's
# 0.5 s would add that much latency at the end of every chunk.
UPLOAD_INTERVAL_S = 0.05


@dataclass
class SendReport:
    calls: int  # calls handed to the SDK
    failed: int  # reported by the SDK's on_error callback (events the collector did not accept)
    seconds: float
    skipped: int = 0  # not handed to the SDK: sending stopped after a chunk failed entirely
    errors: list[str] = field(default_factory=list)  # distinct error messages, first few

    @property
    def acknowledged(self) -> int:
        return self.calls - self.failed


class _Failures:
    """Collects on_error reports from the SDK's consumer thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.errors: list[str] = []

    def __call__(self, exc: Exception, batch: list[dict]) -> None:
        with self._lock:
            self.count += len(batch)
            text = f"{type(exc).__name__}: {exc}"
            if text not in self.errors and len(self.errors) < 5:
                self.errors.append(text)


def send_calls(
    calls: Iterable[Call],
    host: str,
    write_key: str,
    *,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = 100,
) -> SendReport:
    """Deliver ``calls`` to the Segment-compatible API at ``host`` and report what was accepted.

    ``progress(done, total)`` is called after each chunk is settled (accepted
    or failed). The first chunk is a single batch, a probe: if every call of a
    chunk fails (wrong write key, collector down) sending stops there and the
    rest is reported as ``skipped``, since the next chunk would only fail the
    same way, slowly (each batch retries with backoff).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    calls = list(calls)
    total = len(calls)
    chunk = max(batch_size * 10, 1000)
    failures = _Failures()
    started = _time.monotonic()
    client = Client(
        write_key=write_key,
        host=host,
        upload_size=batch_size,
        upload_interval=UPLOAD_INTERVAL_S,
        max_queue_size=2 * chunk,
        max_retries=MAX_RETRIES,
        on_error=failures,
        sync_mode=False,
    )
    handed = 0
    bounds = [0, *range(batch_size, total, chunk), total] if total > batch_size else [0, total]
    try:
        for start, end in itertools.pairwise(bounds):
            failed_before = failures.count
            part = calls[start:end]
            for call in part:
                _enqueue(client, call)
                handed += 1
            client.flush()
            if progress is not None:
                progress(handed, total)
            if failures.count - failed_before >= len(part):
                break
    finally:
        client.shutdown()
    return SendReport(
        calls=handed,
        failed=min(failures.count, handed),
        seconds=_time.monotonic() - started,
        skipped=total - handed,
        errors=list(failures.errors),
    )


def _enqueue(client: Client, call: Call) -> None:
    send = getattr(client, call.method, None)
    if call.method not in ("track", "page", "screen", "identify", "group", "alias") or send is None:
        raise ValueError(f"unknown Segment call method {call.method!r}")
    while True:
        queued, _ = send(**copy.deepcopy(call.kwargs))
        if queued:
            return
        # Queue full: only possible if the consumer re-queued rate-limited
        # batches on top of a chunk. Wait for room rather than lose the event.
        _time.sleep(0.01)
