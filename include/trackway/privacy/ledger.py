"""The erasure request ledger in both of its stores, and the subject set derived from it.

Every record goes to the object store first (``_privacy/requests/``, written once) and
then to the warehouse (``privacy.requests``, ``privacy.request_events``, append-only).
``reconcile`` copies whatever one store lacks from the other, so losing either store
loses no request; every command starts with it. After each change the subject set is
published: ``_privacy/subjects.json`` (the collector and the loader read it) and
``privacy.erased_subjects`` (loads and the dbt test read it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from trackway.config import ConfigError
from trackway.objectstore import ObjectStore
from trackway.subjects import mirror
from trackway.subjects.keys import SubjectKey
from trackway.subjects.ledger import RECEIVED, Request, RequestEvent, RequestState, states
from trackway.subjects.sets import SubjectFilter, subject_filter
from trackway.warehouse import Warehouse
from trackway.warehouse.ddl import PRIVACY_SCHEMA, PRIVACY_TABLES

log = logging.getLogger(__name__)

REQUEST_COLUMNS = tuple(name for name, _ in PRIVACY_TABLES["requests"])
EVENT_COLUMNS = tuple(name for name, _ in PRIVACY_TABLES["request_events"])
ERASED_COLUMNS = tuple(name for name, _ in PRIVACY_TABLES["erased_subjects"])


def _request_row(request: Request) -> tuple:
    data = request.as_json()
    return (
        request.request_id,
        request.type,
        json.dumps(data["subjects"], separators=(",", ":")),
        request.received_at,
        request.due_at,
        request.reason,
        request.key_id,
        request.source,
    )


def _event_row(event: RequestEvent) -> tuple:
    detail = json.dumps(event.detail, sort_keys=True, separators=(",", ":"), default=str)
    return (event.request_id, event.seq, event.at, event.kind, event.store, event.status, detail)


def _request_from_row(row: tuple) -> Request:
    data: dict[str, Any] = dict(zip(REQUEST_COLUMNS, row, strict=True))
    data["type"] = data.pop("request_type")
    data["subjects"] = json.loads(data["subjects"])
    return Request.from_json(data)


def _event_from_row(row: tuple) -> RequestEvent:
    data: dict[str, Any] = dict(zip(EVENT_COLUMNS, row, strict=True))
    data["at"] = data.pop("event_at")
    return RequestEvent.from_json(data)


@dataclass
class Reconciled:
    to_warehouse: int = 0  # records copied from the object store into the warehouse
    to_store: int = 0  # records copied from the warehouse into the object store

    def __str__(self) -> str:
        return f"{self.to_warehouse} record(s) restored to the warehouse, {self.to_store} to the object store"


class Ledger:
    """The ledger over one warehouse connection and the raw object store."""

    def __init__(self, wh: Warehouse, store: ObjectStore, key: SubjectKey) -> None:
        self.wh = wh
        self.store = store
        self.key = key
        wh.ensure_privacy_tables()

    # -- reading ------------------------------------------------------------------------

    def _warehouse_records(self) -> tuple[list[Request], list[RequestEvent]]:
        requests = [
            _request_from_row(r)
            for r in self.wh.query(f"SELECT {', '.join(REQUEST_COLUMNS)} FROM {PRIVACY_SCHEMA}.requests")
        ]
        events = [
            _event_from_row(r)
            for r in self.wh.query(f"SELECT {', '.join(EVENT_COLUMNS)} FROM {PRIVACY_SCHEMA}.request_events")
        ]
        return requests, events

    def reconcile(self) -> Reconciled:
        """Copy what either store lacks from the other (a lost warehouse, a lost ``_privacy/`` prefix)."""
        requests, events = self._warehouse_records()
        in_warehouse = {mirror.request_key(r.request_id) for r in requests} | {mirror.event_key(e) for e in events}
        in_store = set(mirror.ledger_keys(self.store))
        done = Reconciled()
        missing = sorted(in_store - in_warehouse)
        if missing:
            new_requests, new_events = mirror.read_records(self.store, missing)
            self.wh.insert_rows(PRIVACY_SCHEMA, "requests", REQUEST_COLUMNS, [_request_row(r) for r in new_requests])
            self.wh.insert_rows(PRIVACY_SCHEMA, "request_events", EVENT_COLUMNS, [_event_row(e) for e in new_events])
            done.to_warehouse = len(new_requests) + len(new_events)
        for request in requests:
            if mirror.request_key(request.request_id) not in in_store:
                mirror.write_request(self.store, request)
                done.to_store += 1
        for event in events:
            if mirror.event_key(event) not in in_store:
                mirror.write_event(self.store, event)
                done.to_store += 1
        if done.to_warehouse or done.to_store:
            log.warning("erasure ledger reconciled: %s", done)
        if (requests or missing) and (done.to_warehouse or done.to_store or not self._published()):
            self.publish(self.states())  # the derived subject set, in whichever store lost it
        return done

    def _published(self) -> bool:
        """Both copies of the subject set are there (the published object, the warehouse table)."""
        rows = self.wh.query(f"SELECT count(*) FROM {PRIVACY_SCHEMA}.erased_subjects")
        return bool(rows[0][0]) and mirror.read_subjects(self.store) is not None

    def states(self) -> list[RequestState]:
        """Every request and its events, from the warehouse (after ``reconcile``); checks the key."""
        found = states(*self._warehouse_records())
        other = sorted({s.request.key_id for s in found} - {self.key.key_id})
        if other:
            raise ConfigError(
                f"the erasure ledger was written under key {', '.join(other)} but TRACKWAY_PRIVACY_LEDGER_KEY is key "
                f"{self.key.key_id}: set the key the ledger was written with (nothing could be matched otherwise)"
            )
        return found

    def state(self, request_id: str) -> RequestState | None:
        return next((s for s in self.states() if s.request_id == request_id), None)

    # -- writing ------------------------------------------------------------------------

    def record(self, request: Request) -> RequestState:
        """Record a new request in both stores, with its ``received`` event."""
        state = RequestState(request)
        mirror.write_request(self.store, request)
        self.wh.insert_rows(PRIVACY_SCHEMA, "requests", REQUEST_COLUMNS, [_request_row(request)])
        self.append(state, RECEIVED, status="pending", at=request.received_at)
        return state

    def append(
        self,
        state: RequestState,
        kind: str,
        *,
        store: str | None = None,
        status: str | None = None,
        detail: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> RequestEvent:
        event = RequestEvent(
            state.request_id, state.next_seq, at or datetime.now(UTC), kind, store, status, detail or {}
        )
        mirror.write_event(self.store, event)
        self.wh.insert_rows(PRIVACY_SCHEMA, "request_events", EVENT_COLUMNS, [_event_row(event)])
        state.events.append(event)
        return event

    def publish(self, all_states: list[RequestState], now: datetime | None = None) -> SubjectFilter:
        """Publish the subject set the ledger adds up to: the object the collector polls, the table loads read."""
        subjects = subject_filter(all_states, self.key.key_id)
        mirror.publish_subjects(self.store, subjects, now or datetime.now(UTC))
        with self.wh.transaction():
            self.wh.execute(f"DELETE FROM {PRIVACY_SCHEMA}.erased_subjects WHERE true")
            self.wh.insert_rows(PRIVACY_SCHEMA, "erased_subjects", ERASED_COLUMNS, subjects.rows())
        return subjects
