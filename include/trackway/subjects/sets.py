"""Which subjects' events must not be stored, and since when: derived from the ledger, published, matched.

Per subject hash, a list of drop intervals of arrival time ``[from, until)``
(``None`` is unbounded):

* a deletion (``delete_only``, ``suppress_with_delete``) drops everything while it is
  pending, and everything received before it finished once it has;
* a suppression (``suppress_only``, ``suppress_with_delete``) drops everything received
  from its request on, until an ``unsuppress`` of that subject.

Loads, reloads, backfills and full refreshes filter by this (so nothing erased comes back);
the collector drops what is suppressed now. A line whose arrival time cannot be read is
dropped when its subject has any interval (fail closed). The published document
(``<raw store>/_privacy/subjects.json``) carries hashes only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from trackway.subjects.keys import SubjectKey
from trackway.subjects.ledger import LINKED, RequestState

Interval = tuple[datetime | None, datetime | None]
#: The JSON keys that name the person an event is about (Segment's spec); previousId is an alias's old id.
SUBJECT_KEYS = ("userId", "anonymousId", "previousId")
FORMAT_VERSION = 1
_CACHE_LIMIT = 500_000
_UNKNOWN: Any = object()


def id_text(value: Any) -> str | None:
    """An id as the warehouse holds it: strings as they are (blank: none), numbers as their JSON text."""
    if type(value) is str:
        return value if value and not value.isspace() else None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return None


def subject_values(obj: Any) -> list[str]:
    """The ids an event (or a quarantine record's ``event``) names: userId, anonymousId, previousId."""
    if type(obj) is not dict:
        return []
    if "reason" in obj and type(obj.get("event")) is dict:  # a quarantine record
        obj = obj["event"]
    found = []
    for key in SUBJECT_KEYS:
        value = obj.get(key)
        if value is not None and (text := id_text(value)) is not None:
            found.append(text)
    return found


def parse_time(text: Any) -> datetime | None:
    """receivedAt as a datetime (UTC when it names no zone); None when missing or unreadable."""
    if isinstance(text, datetime):
        moment = text
    elif isinstance(text, str) and text:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _inside(moment: datetime | None, interval: Interval) -> bool:
    start, until = interval
    if moment is None:
        return True
    return (start is None or moment >= start) and (until is None or moment < until)


@dataclass(frozen=True)
class SubjectFilter:
    """Drop intervals by subject hash, and the hashes suppressed now (what the collector drops)."""

    key_id: str | None = None
    intervals: dict[str, tuple[Interval, ...]] = field(default_factory=dict)
    suppressed: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.intervals)

    def drops(self, subject_hash: str, received_at: datetime | None) -> bool:
        return any(_inside(received_at, interval) for interval in self.intervals.get(subject_hash, ()))

    def union(self, other: SubjectFilter) -> SubjectFilter:
        if not other:
            return self
        if not self:
            return other
        if self.key_id and other.key_id and self.key_id != other.key_id:
            raise ValueError(f"two erasure ledgers under different keys ({self.key_id}, {other.key_id})")
        merged: dict[str, tuple[Interval, ...]] = dict(self.intervals)
        for digest, intervals in other.intervals.items():
            merged[digest] = tuple(dict.fromkeys(merged.get(digest, ()) + intervals))
        return SubjectFilter(self.key_id or other.key_id, merged, self.suppressed | other.suppressed)

    def rows(self) -> list[tuple[str, datetime | None, datetime | None, bool]]:
        """(hash, from, until, suppressed now) rows, as ``privacy.erased_subjects`` holds them."""
        return [
            (digest, start, until, digest in self.suppressed)
            for digest, intervals in sorted(self.intervals.items())
            for start, until in intervals
        ]

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[Any, ...]], key_id: str | None) -> SubjectFilter:
        """From ``privacy.erased_subjects`` rows (hash, from, until, suppressed)."""
        intervals: dict[str, list[Interval]] = {}
        suppressed = set()
        for digest, start, until, now_suppressed in rows:
            intervals.setdefault(str(digest), []).append((parse_time(start), parse_time(until)))
            if now_suppressed:
                suppressed.add(str(digest))
        return cls(key_id, {d: tuple(v) for d, v in intervals.items()}, frozenset(suppressed))

    def document(self, generated_at: datetime) -> dict[str, Any]:
        """The published JSON (``_privacy/subjects.json``): hashes and times only."""
        return {
            "version": FORMAT_VERSION,
            "key_id": self.key_id,
            "generated_at": generated_at.isoformat(),
            "subjects": {
                digest: [[_iso(start), _iso(until)] for start, until in intervals]
                for digest, intervals in sorted(self.intervals.items())
            },
            "suppressed": sorted(self.suppressed),
        }

    @classmethod
    def from_document(cls, data: dict[str, Any]) -> SubjectFilter:
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise ValueError(f"not a version {FORMAT_VERSION} subject set")
        intervals = {
            str(digest): tuple((parse_time(a), parse_time(b)) for a, b in pairs)
            for digest, pairs in (data.get("subjects") or {}).items()
        }
        return cls(data.get("key_id"), intervals, frozenset(map(str, data.get("suppressed") or ())))


def everything_of(hashes: Iterable[str], key_id: str | None) -> SubjectFilter:
    """A filter naming these subjects at every time: what verification and deletions match."""
    return SubjectFilter(key_id, dict.fromkeys(hashes, ((None, None),)))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _links(state: RequestState) -> dict[str, set[str]]:
    """Requested user hash -> anonymous hashes found linked to it."""
    links: dict[str, set[str]] = {}
    for event in state.events:
        if event.kind == LINKED:
            for user, linked in (event.detail.get("links") or {}).items():
                links.setdefault(user, set()).update(linked)
    return links


def subject_filter(requests: Iterable[RequestState], key_id: str | None) -> SubjectFilter:
    """The filter the ledger adds up to (see the module docstring)."""
    ordered = sorted(requests, key=lambda s: (s.request.received_at, s.request_id))
    intervals: dict[str, list[Interval]] = {}
    suppressed: set[str] = set()
    for n, state in enumerate(ordered):
        request = state.request
        if request.deletes:
            for digest in state.hashes:
                intervals.setdefault(digest, []).append((None, state.finished_at))
        if not request.suppresses:
            continue
        links = _links(state)
        for digest in state.hashes:
            until = None
            for later in ordered[n + 1 :]:
                if later.request.type != "unsuppress":
                    continue
                named = {s.hash for s in later.request.subjects}
                if digest in named or any(digest in links.get(user, ()) for user in named):
                    until = later.request.received_at
                    break
            intervals.setdefault(digest, []).append((request.received_at, until))
            if until is None:
                suppressed.add(digest)
    merged = {digest: tuple(dict.fromkeys(found)) for digest, found in intervals.items()}
    return SubjectFilter(key_id, merged, frozenset(suppressed))


class SubjectMatcher:
    """Decides, line by line, whether an event belongs to a filtered subject; caches hashes per id."""

    def __init__(self, key: SubjectKey, subjects: SubjectFilter) -> None:
        if subjects.key_id and subjects.key_id != key.key_id:
            raise ValueError(
                f"the erasure ledger was written under key {subjects.key_id} but TRACKWAY_PRIVACY_LEDGER_KEY is "
                f"key {key.key_id}: set the key the ledger was written with (nothing can be matched otherwise)"
            )
        self.key = key
        self.subjects = subjects
        self._known: dict[str, str | None] = {}

    def __bool__(self) -> bool:
        return bool(self.subjects)

    def filtered(self, value: str) -> str | None:
        """The value's hash when the filter names it, else None (cached)."""
        found = self._known.get(value, _UNKNOWN)
        if found is not _UNKNOWN:
            return found
        if len(self._known) >= _CACHE_LIMIT:
            self._known.clear()
        digest = self.key.hash(value)
        found = digest if digest in self.subjects.intervals else None
        self._known[value] = found
        return found

    def matching(self, values: Iterable[str | None]) -> list[str]:
        """Those of ``values`` the filter names (for SQL ``IN`` lists)."""
        return [v for v in dict.fromkeys(values) if v is not None and self.filtered(v)]

    def drops_ids(self, values: Iterable[str | None], received_at: Any) -> bool:
        moment: Any = _UNKNOWN  # read only when an id is filtered: most lines name nobody filtered
        for value in values:
            if value is None:
                continue
            digest = self.filtered(value)
            if digest is not None:
                if moment is _UNKNOWN:
                    moment = parse_time(received_at)
                if self.subjects.drops(digest, moment):
                    return True
        return False

    def hashes_in(self, obj: Any) -> list[str]:
        """The filtered hashes an event names (whatever its arrival time): what verification counts."""
        return [digest for value in subject_values(obj) if (digest := self.filtered(value)) is not None]

    def drops_event(self, obj: Any) -> bool:
        """A parsed raw line (event or quarantine record): is it a filtered subject's, received in an interval?"""
        if type(obj) is not dict:
            return False
        event = obj.get("event") if "reason" in obj else None  # a quarantine record names its event's ids
        named = event if type(event) is dict else obj
        filtered = self.filtered
        for key in SUBJECT_KEYS:  # the hot path of rewrites and verification: no list, no generator
            value = named.get(key)
            if value is None:
                continue
            text = value if type(value) is str and value and not value.isspace() else id_text(value)
            if text is not None and filtered(text) is not None:
                return self.drops_ids(subject_values(obj), obj.get("receivedAt")) or False
        return False

    def suppresses_event(self, obj: Any) -> bool:
        """The collector's question: is this event from a subject suppressed now?"""
        if not self.subjects.suppressed:
            return False
        for value in subject_values(obj):
            digest = self.filtered(value)
            if digest is not None and digest in self.subjects.suppressed:
                return True
        return False
