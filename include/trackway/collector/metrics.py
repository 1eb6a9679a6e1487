"""Prometheus metrics of the collector, shared by all its worker processes.

prometheus_client's multiprocess mode keeps each worker's values in files
under ``PROMETHEUS_MULTIPROC_DIR`` (the master sets it to ``<spool>/.metrics``
and empties it at start), so the master's admin listener (admin.py) answers
``/metrics`` and ``/health`` with the sum over all of them. That variable must
be set before this module is imported; without it (unit tests, tools) the
metrics are per process.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from trackway.collector.stats import Stats

__all__ = ["CONTENT_TYPE_LATEST", "MetricStats", "exposition", "health_counters"]

_P = "trackway_collector_"
REQUESTS = Counter(_P + "requests_total", "HTTP requests answered, by route and status", ["route", "status"])
REQUEST_SECONDS = Histogram(
    _P + "request_duration_seconds",
    "Time from request received to response sent (POSTs include the fsync), by route",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EVENTS_ACCEPTED = Counter(
    _P + "events_accepted_total", "Events stored (fsync'd) and acknowledged, by source", ["source"]
)
EVENTS_QUARANTINED = Counter(
    _P + "events_quarantined_total", "Invalid events of a batch kept in the quarantine, by source", ["source"]
)
SPOOL_PENDING_BYTES = Gauge(
    _P + "spool_pending_bytes", "Bytes in the spool not yet uploaded (all workers)", multiprocess_mode="livesum"
)
SPOOL_PENDING_SEGMENTS = Gauge(
    _P + "spool_pending_segments", "Spool segments not yet uploaded, open or sealed", multiprocess_mode="livesum"
)
SPOOL_PENDING_CAP = Gauge(
    _P + "spool_pending_cap_bytes",
    "TRACKWAY_SPOOL_MAX_PENDING_BYTES: past it, POSTs get 503 until uploads catch up",
    multiprocess_mode="livesum",
)
UPLOAD_LAG = Gauge(
    _P + "upload_lag_seconds",
    "Age of the oldest spool segment not yet uploaded (open segments count from creation)",
    multiprocess_mode="livemax",
)
UPLOAD_BACKOFF = Gauge(
    _P + "upload_backoff_seconds", "Current upload retry delay (0 when uploads succeed)", multiprocess_mode="livemax"
)
UPLOAD_FAILURES = Counter(_P + "upload_failures_total", "Failed attempts to store a segment in the object store")
UPLOAD_RETRIES = Counter(_P + "upload_retries_total", "Upload retries scheduled (exponential backoff with jitter)")
REQUESTS_OVERSIZED = Counter(
    _P + "requests_oversized_total", "Requests cut off for an over-long URL (414) or headers (431)", ["status"]
)
OBJECTS_WRITTEN = Counter(_P + "objects_written_total", "Objects stored in the object store")
SEGMENTS_SET_ASIDE = Counter(
    _P + "segments_set_aside_total",
    "Spool segments moved to .set-aside/ after repeated failures while others uploaded (kept, never deleted)",
)
LATE_OBJECTS_WRITTEN = Counter(
    _P + "late_objects_written_total",
    "Objects stored more than an hour after their partition's hour ended (after an outage); each has a pointer in late/",
)
SEGMENTS_SEALED = Counter(_P + "segments_sealed_total", "Spool segments sealed for upload")
FSYNC_SECONDS = Histogram(
    _P + "fsync_duration_seconds",
    "Time of one group commit's fsync(s)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
LINES_PER_FSYNC = Histogram(
    _P + "lines_per_fsync",
    "Event lines (accepted and quarantined) covered by one group commit",
    buckets=(1, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000),
)
CONNECTIONS_REFUSED = Counter(
    _P + "connections_refused_total", "Connections closed at once because TRACKWAY_MAX_CONNECTIONS was reached"
)
CONNECTIONS_TIMED_OUT = Counter(
    _P + "connections_timed_out_total", "Connections closed for sending headers or body too slowly"
)
AUTH_FAILURES = Counter(
    _P + "auth_failures_total", "Requests answered 401: write key missing, malformed or unknown (one answer for all)"
)
RATE_LIMITED = Counter(
    _P + "rate_limited_total",
    "Requests answered 429 before their body was read, by reason: events (TRACKWAY_RATE_LIMIT_EVENTS_PER_SECOND "
    "of a key and address) or auth_failures (TRACKWAY_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE of an address)",
    ["reason"],
)
WORKERS_SERVING = Gauge(
    _P + "workers_serving",
    "Worker processes started and serving (a worker counts from its start-up until it begins to stop)",
    multiprocess_mode="livesum",
)
WORKER_RESTARTS = Counter(_P + "worker_restarts_total", "Worker processes that died and were started again")

_children: dict[tuple, Any] = {}


def count_request(route: str, status: int, seconds: float) -> None:
    """requests_total and the latency histogram for one answered request (children cached: hot path)."""
    key = (route, status)
    pair = _children.get(key)
    if pair is None:
        pair = _children[key] = (REQUESTS.labels(route, str(status)), REQUEST_SECONDS.labels(route))
    pair[0].inc()
    pair[1].observe(seconds)


def events_accepted(source: str) -> Counter:
    key = ("accepted", source)
    child = _children.get(key)
    if child is None:
        child = _children[key] = EVENTS_ACCEPTED.labels(source)
    return child


_STATS_COUNTERS = {
    "upload_failures": UPLOAD_FAILURES,
    "upload_retries": UPLOAD_RETRIES,
    "objects_written": OBJECTS_WRITTEN,
    "late_objects_written": LATE_OBJECTS_WRITTEN,
    "segments_set_aside": SEGMENTS_SET_ASIDE,
    "segments_rotated": SEGMENTS_SEALED,
}


class MetricStats(Stats):
    """Stats whose spool/upload counters also go to Prometheus."""

    def add(self, name: str, amount: int = 1) -> None:
        super().add(name, amount)
        counter = _STATS_COUNTERS.get(name)
        if counter is not None:
            counter.inc(amount)

    def set_backoff(self, seconds: float) -> None:
        super().set_backoff(seconds)
        UPLOAD_BACKOFF.set(seconds)


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _multiprocess.MultiProcessCollector(registry)
        return registry
    from prometheus_client import REGISTRY

    return REGISTRY


def exposition() -> bytes:
    """The Prometheus text format of every worker's metrics together."""
    return generate_latest(_registry())


def health_counters() -> dict[str, float]:
    """Totals over all workers, for ``/health``: sample name (with the route for requests) -> value."""
    totals: dict[str, float] = defaultdict(float)
    for family in _registry().collect():
        for sample in family.samples:
            if sample.name == _P + "requests_total":
                totals["requests_rejected" if sample.labels["status"] != "200" else "requests_ok"] += sample.value
                if sample.labels["route"].startswith("/v1/") and sample.labels["route"] != "/v1/projects/settings":
                    totals["tracking_requests"] += sample.value
            else:
                totals[sample.name.removeprefix(_P)] += sample.value
    return totals


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay in the totals)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _multiprocess.mark_process_dead(pid)


def now() -> float:
    return time.perf_counter()
