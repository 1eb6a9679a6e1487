"""The erasure request ledger's records: requests, their append-only events, and the state they add up to.

A request never changes once written; everything that happens to it afterwards (subjects
linked through the identity map, each store's progress, the verification, the end) is a
new event with the next sequence number. The warehouse (``privacy.requests``,
``privacy.request_events``) and the object store (``_privacy/requests/``) hold the same
records, so either can be rebuilt from the other. Subjects are keyed hashes only.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from trackway.subjects.keys import SubjectKey

# Segment's names (Public API regulationType, lower case).
REQUEST_TYPES = ("suppress_with_delete", "delete_only", "suppress_only", "unsuppress")
DELETES = frozenset({"suppress_with_delete", "delete_only"})
SUPPRESSES = frozenset({"suppress_with_delete", "suppress_only"})
SUBJECT_KINDS = ("user_id", "anonymous_id")
#: Subjects per request at most (Segment accepts 5,000 ids per regulation).
MAX_SUBJECTS = 5000
MAX_ID_CHARS = 1024
MAX_REASON_CHARS = 500

# Event kinds, in the order a request usually meets them.
RECEIVED = "received"
LINKED = "subjects_linked"  # anonymous ids found linked to a requested user id (identity map, loads)
STORE = "store"  # one store's progress: status started | done | failed, detail counts
VERIFIED = "verified"  # the verification record: matching rows and objects per store
FINISHED = "finished"
FAILED = "failed"  # this attempt failed (detail: why); the next run retries

#: Stores an erasure reaches, in the order a run visits them.
STORES = ("suppression", "warehouse", "raw_objects")


class InvalidRequest(ValueError):
    """A request that cannot be recorded; the message says what to fix."""


@dataclass(frozen=True)
class Subject:
    kind: str  # user_id | anonymous_id (requested) | linked_anonymous_id (found later)
    hash: str


@dataclass(frozen=True)
class Request:
    request_id: str
    type: str
    subjects: tuple[Subject, ...]
    received_at: datetime
    due_at: datetime
    reason: str | None
    key_id: str
    source: str  # cli | api

    @property
    def deletes(self) -> bool:
        return self.type in DELETES

    @property
    def suppresses(self) -> bool:
        return self.type in SUPPRESSES

    def as_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "type": self.type,
            "subjects": [{"kind": s.kind, "hash": s.hash} for s in self.subjects],
            "received_at": self.received_at.isoformat(),
            "due_at": self.due_at.isoformat(),
            "reason": self.reason,
            "key_id": self.key_id,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Request:
        return cls(
            request_id=str(data["request_id"]),
            type=str(data["type"]),
            subjects=tuple(Subject(str(s["kind"]), str(s["hash"])) for s in data["subjects"]),
            received_at=_when(data["received_at"]),
            due_at=_when(data["due_at"]),
            reason=data.get("reason"),
            key_id=str(data["key_id"]),
            source=str(data.get("source") or "cli"),
        )


@dataclass(frozen=True)
class RequestEvent:
    request_id: str
    seq: int
    at: datetime
    kind: str
    store: str | None = None
    status: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "seq": self.seq,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "store": self.store,
            "status": self.status,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RequestEvent:
        detail = data.get("detail") or {}
        if isinstance(detail, str):
            detail = json.loads(detail)
        return cls(
            request_id=str(data["request_id"]),
            seq=int(data["seq"]),
            at=_when(data["at"]),
            kind=str(data["kind"]),
            store=data.get("store"),
            status=data.get("status"),
            detail=detail,
        )


def _when(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def new_request_id(now: datetime) -> str:
    """Sortable by receipt and unguessable: ``rq-20261122T101500-3f9a1c2b``."""
    return f"rq-{now.astimezone(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def _checked_ids(kind: str, ids: Iterable[object]) -> list[str]:
    out = []
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise InvalidRequest(f"a {kind} must be a string, not {type(value).__name__}")
        text = str(value)
        if not text.strip():
            raise InvalidRequest(f"a {kind} is empty; give the id exactly as the events carry it")
        if len(text) > MAX_ID_CHARS:
            raise InvalidRequest(f"a {kind} is longer than {MAX_ID_CHARS} characters")
        out.append(text)
    return out


def new_request(
    request_type: str,
    *,
    user_ids: Sequence[object] = (),
    anonymous_ids: Sequence[object] = (),
    key: SubjectKey,
    now: datetime,
    due_days: int,
    reason: str | None = None,
    source: str = "cli",
) -> Request:
    """A request ready to record: ids hashed (never kept in clear), deadline set."""
    if request_type not in REQUEST_TYPES:
        raise InvalidRequest(f"type {str(request_type)[:40]!r} is not one of {', '.join(REQUEST_TYPES)}")
    users = _checked_ids("user id", user_ids)
    anonymous = _checked_ids("anonymous id", anonymous_ids)
    if not users and not anonymous:
        raise InvalidRequest("a request needs at least one subject: --user-id ID or --anonymous-id ID")
    if len(users) + len(anonymous) > MAX_SUBJECTS:
        raise InvalidRequest(f"at most {MAX_SUBJECTS} subjects per request; split the list")
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        raise InvalidRequest(f"the reason is longer than {MAX_REASON_CHARS} characters")
    subjects: dict[str, Subject] = {}
    for kind, ids in (("user_id", users), ("anonymous_id", anonymous)):
        for value in ids:
            digest = key.hash(value)
            subjects.setdefault(digest, Subject(kind, digest))
    now = now.astimezone(UTC)
    return Request(
        request_id=new_request_id(now),
        type=request_type,
        subjects=tuple(subjects.values()),
        received_at=now,
        due_at=now + timedelta(days=due_days),
        reason=reason or None,
        key_id=key.key_id,
        source=source,
    )


def request_finished_at(events: Iterable[RequestEvent]) -> datetime | None:
    """When a request with these events last finished; None while pending again because ids were linked since."""
    events = list(events)
    last_finished = max((e for e in events if e.kind == FINISHED), key=lambda e: e.seq, default=None)
    last_linked = max((e.seq for e in events if e.kind == LINKED), default=0)
    return last_finished.at if last_finished is not None and last_finished.seq > last_linked else None


def request_status(events: Iterable[RequestEvent]) -> str:
    """A request's status from its events: pending | running | failed | finished.

    A failed attempt is retried by the next run; ids linked after it finished make it pending
    again. Its details are not needed, so the health checks read the events without them.
    """
    events = sorted(events, key=lambda e: e.seq)
    if request_finished_at(events) is not None:
        return "finished"
    status = "pending"
    for event in events:
        if event.kind == LINKED:
            status = "pending"  # new ids to delete
        elif event.kind == STORE and event.store in ("warehouse", "raw_objects"):
            status = "running"
        elif event.kind == FAILED:
            status = "failed"
    return status


@dataclass
class RequestState:
    """A request and everything its events say: what the status commands and runs read."""

    request: Request
    events: list[RequestEvent] = field(default_factory=list)

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def next_seq(self) -> int:
        return max((e.seq for e in self.events), default=0) + 1

    @property
    def finished_at(self) -> datetime | None:
        """When it last finished; None while pending again because ids were linked to it since."""
        return request_finished_at(self.events)

    @property
    def status(self) -> str:
        """pending | running | failed | finished (a failed attempt is retried by the next run)."""
        return request_status(self.events)

    @property
    def hashes(self) -> set[str]:
        """Every subject hash the request covers: the requested ids and the anonymous ids linked to them since."""
        found = {s.hash for s in self.request.subjects}
        for event in self.events:
            if event.kind == LINKED:
                found.update(event.detail.get("hashes", []))
        return found

    @property
    def user_hashes(self) -> set[str]:
        return {s.hash for s in self.request.subjects if s.kind == "user_id"}

    def store_status(self) -> dict[str, dict[str, Any]]:
        """Each store's latest status and detail."""
        stores: dict[str, dict[str, Any]] = {}
        for event in sorted(self.events, key=lambda e: e.seq):
            if event.store:
                stores[event.store] = {"status": event.status, "at": event.at.isoformat(), **event.detail}
        return stores

    @property
    def verification(self) -> dict[str, Any] | None:
        latest = None
        for event in sorted(self.events, key=lambda e: e.seq):
            if event.kind == VERIFIED:
                latest = {"at": event.at.isoformat(), **event.detail}
        return latest

    def summary(self) -> dict[str, Any]:
        """What ``trackway privacy status --json`` prints: no id in clear, only counts and hashes' count."""
        request = self.request
        return {
            "request_id": request.request_id,
            "type": request.type,
            "status": self.status,
            "subjects": {
                "requested": len(request.subjects),
                "linked": len(self.hashes) - len(request.subjects),
            },
            "received_at": request.received_at.isoformat(),
            "due_at": request.due_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "reason": request.reason,
            "source": request.source,
            "stores": self.store_status(),
            "verification": self.verification,
        }


def states(requests: Iterable[Request], events: Iterable[RequestEvent]) -> list[RequestState]:
    """Requests with their events, oldest request first; events of unknown requests are ignored."""
    by_id = {r.request_id: RequestState(r) for r in requests}
    for event in events:
        state = by_id.get(event.request_id)
        if state is not None and all(e.seq != event.seq for e in state.events):
            state.events.append(event)
    for state in by_id.values():
        state.events.sort(key=lambda e: e.seq)
    return sorted(by_id.values(), key=lambda s: (s.request.received_at, s.request_id))
