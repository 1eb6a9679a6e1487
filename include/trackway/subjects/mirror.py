"""The ledger's copy in the raw object store, and the published subject set.

Layout, under the raw store's root (``_`` keeps it out of every listing of data, so no
load ever reads it as events)::

    _privacy/requests/<request id>/request.json          the request, written once
    _privacy/requests/<request id>/events/<seq>.json     each event, written once
    _privacy/subjects.json                               the subject set (hashes, intervals)

Works on any object with the object-store seam's ``list``/``read_bytes``/``put_bytes``/
``exists`` (``trackway.objectstore``), which is passed in: this module imports no SDK.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Protocol

from trackway.subjects.ledger import Request, RequestEvent
from trackway.subjects.sets import SubjectFilter

PREFIX = "_privacy/"
REQUESTS = PREFIX + "requests/"
SUBJECTS_KEY = PREFIX + "subjects.json"
_REQUEST_ID = re.compile(r"rq-\d{8}T\d{6}-[0-9a-f]{8}")


class Store(Protocol):
    def list(self, prefix: str = "") -> list[str]: ...

    def read_bytes(self, key: str, *, once: bool = False) -> bytes: ...

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def exists(self, key: str) -> bool: ...


def valid_request_id(request_id: str) -> bool:
    return bool(_REQUEST_ID.fullmatch(request_id))


def request_key(request_id: str) -> str:
    if not valid_request_id(request_id):
        raise ValueError(f"{request_id[:40]!r} is not a request id (rq-YYYYMMDDTHHMMSS-xxxxxxxx)")
    return f"{REQUESTS}{request_id}/request.json"


def event_key(event: RequestEvent) -> str:
    return f"{REQUESTS}{event.request_id}/events/{event.seq:06d}.json"


def _dump(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def write_request(store: Store, request: Request) -> None:
    key = request_key(request.request_id)
    if not store.exists(key):  # written once: a retry finds it there
        store.put_bytes(key, _dump(request.as_json()))


def write_event(store: Store, event: RequestEvent) -> None:
    key = event_key(event)
    if not store.exists(key):
        store.put_bytes(key, _dump(event.as_json()))


def ledger_keys(store: Store, request_id: str | None = None) -> list[str]:
    """Every key of the mirror (or of one request)."""
    prefix = f"{REQUESTS}{request_id}/" if request_id else REQUESTS
    return [k for k in store.list(prefix) if k.endswith(".json")]


def read_records(store: Store, keys: list[str]) -> tuple[list[Request], list[RequestEvent]]:
    requests, events = [], []
    for key in keys:
        data = json.loads(store.read_bytes(key))
        if key.endswith("/request.json"):
            requests.append(Request.from_json(data))
        else:
            events.append(RequestEvent.from_json(data))
    return requests, events


def publish_subjects(store: Store, subjects: SubjectFilter, generated_at: datetime) -> None:
    """Replace the published subject set (one atomic put)."""
    store.put_bytes(SUBJECTS_KEY, _dump(subjects.document(generated_at)))


def read_subjects(store: Store, *, once: bool = False) -> SubjectFilter | None:
    """The published subject set; None when there is none yet. A damaged one raises (fail closed).

    ``once``: one attempt, no retries (a start-up read; the collector's poller reads it again).
    """
    try:
        data = store.read_bytes(SUBJECTS_KEY, once=once)
    except FileNotFoundError:
        return None
    return SubjectFilter.from_document(json.loads(data))
