"""Counters of one collector process, mirrored into Prometheus metrics when a worker serves them.

``Stats`` alone is what unit tests and one-off tools use; the collector's
workers use ``metrics.MetricStats``, which also feeds ``/metrics`` and the
cross-worker ``/health``.
"""

from __future__ import annotations

import threading
import time


class Stats:
    FIELDS = (
        "requests",
        "requests_rejected",
        "events_accepted",
        "events_quarantined",
        "segments_rotated",
        "objects_written",
        "late_objects_written",
        "upload_failures",
        "upload_retries",
        "segments_set_aside",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._values = dict.fromkeys(self.FIELDS, 0)
        self.backoff_seconds = 0.0

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def set_backoff(self, seconds: float) -> None:
        """The uploader's current retry delay (0 when uploads succeed)."""
        self.backoff_seconds = seconds

    def get(self, name: str) -> int:
        with self._lock:
            return self._values[name]

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            values: dict[str, float] = dict(self._values)
        values["uptime_seconds"] = round(time.monotonic() - self._started, 3)
        return values
