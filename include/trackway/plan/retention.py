"""Retention: how long an event stays whole, and what is left of it afterwards (docs/privacy.md#retention).

A rule is ``{full_days: 90, then: sanitize | delete}`` (or ``keep``). The rule of an event,
first found wins:

1. its event file's ``retention:`` in the tracking plan;
2. the ``retention:`` of the sources-file source whose objects hold it (other systems' buckets);
3. plan.yaml's ``retention:``, the plan's default;
4. ``TRACKWAY_RETENTION_DEFAULT``: 90 days then ``sanitize`` unless set (``trackway.config.retention``).

Age is counted from ``receivedAt`` (the collector's clock, not the client's). ``sanitize``
keeps the allowlist only (Wikimedia's model): the envelope (``ENVELOPE``: type, names, ids,
timestamps, messageId...), ``context.library``, ``context.trackway`` and
``context.experiments``, and every property, trait or context field the plan marks
``retain: true``. Everything else becomes null. A kept pseudonym (``h1:...``) is made again
under the run's retention key, which is never stored: once the run ends, nothing can link it
to the person or to the pseudonyms of newer events. A sanitised event carries
``context.trackway.sanitized_at``, so it is never sanitised twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from trackway.config import Source
from trackway.config.retention import DEFAULT_RETENTION, Retention
from trackway.plan.model import IMPLIED_NAMES, Plan, load_plan
from trackway.plan.privacy import schema_fields
from trackway.pseudonym import Key, is_pseudonym, new_key
from trackway.pseudonym.hashing import pseudonym_with

#: Top-level keys every sanitised event keeps: what it was, whose, when, and its id.
ENVELOPE = frozenset(
    {
        "type",
        "event",
        "name",
        "category",
        "messageId",
        "userId",
        "anonymousId",
        "previousId",
        "groupId",
        "sourceId",
        "timestamp",
        "originalTimestamp",
        "sentAt",
        "receivedAt",
        "channel",
        "version",
    }
)
#: Context fields every sanitised event keeps: the SDK, Trackway's own marks, experiment assignments.
CONTEXT_KEPT = frozenset({"library", "trackway", "experiments"})
#: Where a sanitised event says so (and the byte pattern that finds it in a line or a JSON column).
SANITIZED_MARK = "sanitized_at"
SANITIZED_BYTES = b'"sanitized_at"'
#: Keys of a quarantine record beside the refused event: kept (the reason says why it was refused).
QUARANTINE_KEPT = frozenset({"reason", "receivedAt", "sourceId"})

Tree = dict[str, "Tree | bool"]  # True: keep the whole value; a dict: keep these keys inside it


def _add(tree: Tree, path: tuple[str, ...]) -> None:
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if child is True:
            return
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = True


def received_at(obj: Any) -> datetime | None:
    """An event's (or a quarantine record's) ``receivedAt`` as UTC; None when missing or unreadable."""
    text = obj.get("receivedAt") if isinstance(obj, dict) else None
    if not isinstance(text, str) and isinstance(obj, dict) and isinstance(obj.get("event"), dict):
        text = obj["event"].get("receivedAt")
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _name(event: dict) -> Any:
    etype = event.get("type")
    if etype == "track":
        return event.get("event")
    return IMPLIED_NAMES.get(etype, etype) if isinstance(etype, str) else None


class RetentionRules:
    """The plan's and the sources file's retention rules and allowlists, compiled once."""

    def __init__(
        self, plan: Plan | None, sources: Sequence[Source] = (), default: Retention = DEFAULT_RETENTION
    ) -> None:
        self.default = (plan.retention if plan is not None else None) or default
        self.sources = [(s.url.rstrip("/") + "/", s.retention) for s in sources if s.retention is not None]
        self.events: dict[tuple[str, str], Retention] = {}
        common: Tree = {}
        for path, sub in schema_fields(plan.common, ("context",)) if plan is not None else ():
            if sub.get("retain") is True:
                _add(common, path)
        self.common = common
        self.allowlists: dict[tuple[str, str], Tree] = {}
        for event in plan.events if plan is not None else ():
            if event.retention is not None:
                self.events[event.key] = event.retention
            tree: Tree = {k: (dict(v) if isinstance(v, dict) else v) for k, v in common.items()}
            containers = [(event.payload_field,)] + ([("context", "traits")] if event.payload_field == "traits" else [])
            for version in event.versions:
                for container in containers:
                    for path, sub in schema_fields(version.schema, container):
                        if sub.get("retain") is True:
                            _add(tree, path)
            self.allowlists[event.key] = tree

    def rules(self) -> list[Retention]:
        return [self.default, *(r for _, r in self.sources), *self.events.values()]

    @property
    def shortest(self) -> int | None:
        """The fewest full days of any rule that expires (None: everything is kept whole)."""
        days = [r.full_days for r in self.rules() if r.expires]
        return min(days) if days else None

    def rule(self, event: Any, source_object: str | None = None) -> Retention:
        if isinstance(event, dict) and "reason" in event and isinstance(event.get("event"), dict):
            event = event["event"]  # a quarantine record: its event's rule
        if isinstance(event, dict):
            found = self.events.get((event.get("type"), _name(event)))  # type: ignore[arg-type]
            if found is not None:
                return found
        if source_object is not None:
            for prefix, rule in self.sources:
                if source_object.startswith(prefix):
                    return rule
        return self.default

    def allowlist(self, event: dict) -> Tree:
        return self.allowlists.get((event.get("type"), _name(event)), self.common)  # type: ignore[arg-type]

    def sanitize(self, obj: dict, key: Key, as_of: datetime) -> dict:
        """The event (or quarantine record) reduced to its allowlist; kept pseudonyms re-made under ``key``."""
        if "reason" in obj and isinstance(obj.get("event"), dict):
            record = {k: (v if k in QUARANTINE_KEPT else None) for k, v in obj.items()}
            record["event"] = self.sanitize(obj["event"], key, as_of)
            return record
        allow = self.allowlist(obj)
        out: dict[str, Any] = {}
        for name, value in obj.items():
            if name in ENVELOPE:
                out[name] = value
            elif name == "context" and isinstance(value, dict):
                out[name] = {
                    k: (v if k in CONTEXT_KEPT else _kept(v, _sub(allow.get("context"), k), key))
                    for k, v in value.items()
                }
            elif name in ("properties", "traits") and isinstance(value, dict):
                # Their own keys stay (field names, as the plan names them) with null values; deeper, a
                # key may itself be data (a map keyed by email), so an object not allowlisted is null.
                out[name] = {k: _kept(v, _sub(allow.get(name), k), key) for k, v in value.items()}
            else:
                out[name] = _kept(value, allow.get(name), key)
        context = out.get("context")
        context = dict(context) if isinstance(context, dict) else {}
        mark = context.get("trackway")
        context["trackway"] = {**(mark if isinstance(mark, dict) else {}), SANITIZED_MARK: as_of.date().isoformat()}
        out["context"] = context
        return out


def _sub(tree: Tree | bool | None, key: str) -> Tree | bool | None:
    if tree is True:
        return True
    return tree.get(key) if isinstance(tree, dict) else None


def _kept(value: Any, allow: Tree | bool | None, key: Key) -> Any:
    """``value`` with only the allowlisted parts left (the rest null)."""
    if allow is None or allow is False:
        return None
    if allow is True:
        return _rekeyed(value, key)
    if not isinstance(value, dict):
        return None
    return {k: _kept(v, allow.get(k), key) for k, v in value.items()}


def _rekeyed(value: Any, key: Key) -> Any:
    if is_pseudonym(value):
        return pseudonym_with(key, value)
    if isinstance(value, dict):
        return {k: _rekeyed(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [_rekeyed(v, key) for v in value]
    return value


def retention_key(as_of: datetime) -> Key:
    """A fresh key for one run's pseudonyms: 32 random bytes, held in memory only and dropped with the run."""
    return new_key(f"ret-{as_of:%Y%m%d}", as_of)


@dataclass
class Expiry:
    """What retention does to each event as of a moment: ``decide`` a parsed event, ``edit`` a raw line."""

    rules: RetentionRules
    as_of: datetime
    key: Key
    deleted: int = 0
    sanitized: int = 0

    @classmethod
    def at(cls, rules: RetentionRules, as_of: datetime) -> Expiry:
        return cls(rules, as_of, retention_key(as_of))

    @property
    def bound(self) -> datetime | None:
        """Nothing received at or after this can be expired (None: no rule expires anything)."""
        days = self.rules.shortest
        return None if days is None else self.as_of - timedelta(days=days)

    def decide(self, obj: Any, source_object: str | None = None) -> str | None:
        """``delete``, ``sanitize`` or None (kept as it is) for one parsed event or quarantine record."""
        if not isinstance(obj, dict):
            return None
        rule = self.rules.rule(obj, source_object)
        if not rule.expires:
            return None
        moment = received_at(obj)
        if moment is None or moment >= self.as_of - timedelta(days=rule.full_days):
            return None  # no readable arrival time: the loader kept it as is, so does retention
        if rule.then == "sanitize" and _already_sanitized(obj):
            return None
        return rule.then

    def apply(self, obj: dict, action: str) -> dict | None:
        """The event after ``action``: None when deleted."""
        return None if action == "delete" else self.rules.sanitize(obj, self.key, self.as_of)

    def edit_line(self, line: bytes, source_object: str | None = None) -> bytes | None:
        """A raw line after retention: ``b""`` (deleted: a blank line), the sanitised line, or None (unchanged)."""
        if not line or line.isspace():
            return None
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        action = self.decide(obj, source_object)
        if action is None:
            return None
        if action == "delete":
            self.deleted += 1
            return b""
        self.sanitized += 1
        return orjson.dumps(self.apply(obj, action))


def _already_sanitized(obj: dict) -> bool:
    event = obj.get("event") if "reason" in obj and isinstance(obj.get("event"), dict) else obj
    context = event.get("context") if isinstance(event, dict) else None
    mark = context.get("trackway") if isinstance(context, dict) else None
    return isinstance(mark, dict) and SANITIZED_MARK in mark


def rules_from_settings(settings: Any) -> RetentionRules:
    """The rules of the configured plan (``TRACKWAY_PLAN_DIR``) and sources file."""
    plan = load_plan(settings.plan_dir) if settings.plan_dir is not None else None
    return RetentionRules(plan, settings.sources(), settings.retention_default)
