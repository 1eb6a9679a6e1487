"""Suppressed subjects: their events are dropped before anything is stored, and counted (docs/privacy.md).

`trackway privacy` publishes the subject set (keyed hashes only) to the raw store as
``_privacy/subjects.json``. Each worker reads it at start and again every
``TRACKWAY_PRIVACY_POLL_SECONDS`` in a thread of its own, so a new suppression takes
effect within a poll interval, without a restart. The last set read is kept in the
spool folder: a worker restarting while the store is unreachable still suppresses.
Dropped events are answered like stored ones (the client cannot tell) and counted in
``trackway_collector_events_suppressed_total``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import orjson
from prometheus_client import Counter

from trackway.config import ConfigError, Settings
from trackway.objectstore import ObjectStore
from trackway.segment_rules import CheckedBatch
from trackway.subjects import mirror
from trackway.subjects.keys import SubjectKey, ledger_key
from trackway.subjects.sets import SubjectFilter, SubjectMatcher

log = logging.getLogger("trackway.collector.suppression")

EVENTS_SUPPRESSED = Counter(
    "trackway_collector_events_suppressed_total",
    "Events of suppressed subjects (erasure requests) dropped before storage, by source",
    ["source"],
)


class Suppression:
    """The suppressed subjects of one worker, kept current by a polling thread."""

    def __init__(self, store: ObjectStore, settings: Settings, cache: Path) -> None:
        self.store = store
        self.settings = settings
        self.key: SubjectKey | None = None
        self.poll_seconds = settings.privacy_poll_seconds
        self.cache = cache
        self.matcher: SubjectMatcher | None = None  # replaced whole by the poller: readers never see a mix
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error = ""

    def _matcher(self, subjects: SubjectFilter) -> SubjectMatcher | None:
        if not subjects.suppressed:
            return None
        if self.key is None:  # the embedded default's key file appears with the first request
            self.key = ledger_key(self.settings, required=False, create=False)
        if self.key is None:
            raise ConfigError(
                "subjects are suppressed (erasure requests) but this collector has no ledger key: set "
                "TRACKWAY_PRIVACY_LEDGER_KEY to the key `trackway privacy` uses; it cannot drop their events without it"
            )
        try:
            return SubjectMatcher(self.key, subjects)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    def load(self) -> None:
        """At start: the published set, else the cached copy; refuses to start when it cannot match them.

        A damaged set with no earlier copy stops the start (fail closed). An unreachable store does
        not: with no copy the worker starts without suppression, says so, and keeps polling; every
        load filters suppressed subjects too, so none of what it lets through reaches the warehouse.
        """
        try:
            # One attempt: an outage must not hold the worker's start; the poller reads it again.
            subjects = mirror.read_subjects(self.store, once=True)
        except ValueError as exc:  # damaged (JSON, format): an earlier copy, else refuse
            subjects = self._cached()
            if subjects is None:
                raise _damaged(self.store, exc) from exc
            log.error("the published suppressed subjects are damaged (%s); using the last copy read", exc)
        except Exception as exc:  # the store is down: fall back on the copy of the last set read
            log.error("cannot read the suppressed subjects from %s (%s); using the last copy read", self.store.url, exc)
            subjects = self._cached()
        self.matcher = self._matcher(subjects) if subjects is not None else None
        if subjects is not None:
            self._keep(subjects)

    def _cached(self) -> SubjectFilter | None:
        try:
            return SubjectFilter.from_document(json.loads(self.cache.read_text()))
        except FileNotFoundError:
            return None

    def _keep(self, subjects: SubjectFilter) -> None:
        tmp = self.cache.with_name(f".{self.cache.name}.{os.getpid()}.tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(subjects.document(datetime.now(UTC))))
        os.replace(tmp, self.cache)

    def poll(self) -> None:
        """Read the set again; a failure keeps the current one (and says so)."""
        try:
            subjects = mirror.read_subjects(self.store)
            if subjects is not None:
                self.matcher = self._matcher(subjects)
                self._keep(subjects)
            self._last_error = ""
        except Exception as exc:
            if str(exc) != self._last_error:  # once per distinct problem, not every poll
                log.error("suppressed subjects not refreshed, the previous set stays in force: %s", exc)
            self._last_error = str(exc)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="suppression-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.poll()

    def stop(self) -> None:
        self._stop.set()

    def apply(self, checked: CheckedBatch, source_id: str) -> CheckedBatch:
        """Drop the events (and quarantine records) of suppressed subjects from a checked batch."""
        matcher = self.matcher
        if matcher is None:
            return checked
        lines = [line for line in checked.lines if not matcher.suppresses_event(orjson.loads(line))]
        quarantine = [line for line in checked.quarantine if not matcher.suppresses_event(orjson.loads(line))]
        dropped = len(checked.lines) - len(lines) + len(checked.quarantine) - len(quarantine)
        if dropped:
            checked.lines, checked.quarantine = lines, quarantine
            checked.suppressed += dropped
            EVENTS_SUPPRESSED.labels(source_id).inc(dropped)
        return checked


def check_suppression(settings: Settings, store: ObjectStore) -> None:
    """For the master, before any worker starts: ConfigError when subjects are suppressed that it could not match.

    An unreachable store is no reason to stop: the workers fall back on their last copy.
    """
    try:
        subjects = mirror.read_subjects(store, once=True)  # before the socket is bound: no retries
    except ValueError as exc:  # damaged: a worker with an earlier copy could go on, a new one could not
        raise _damaged(store, exc) from exc
    except Exception as exc:
        log.warning("cannot read the suppressed subjects now (%s); the workers will retry", exc)
        return
    if subjects is not None:
        Suppression(store, settings, Path(os.devnull))._matcher(subjects)


def _damaged(store: ObjectStore, exc: Exception) -> ConfigError:
    return ConfigError(
        f"the published suppressed subjects ({store.url}/{mirror.SUBJECTS_KEY}) are damaged ({exc}) and there is "
        "no earlier copy; run `trackway privacy run` to publish them again"
    )
