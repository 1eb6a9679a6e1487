"""Personal data in the tracking plan, and what the collector does with it before anything is stored.

Every field (event properties, traits, context) has a PII class and an action:

* class ``direct`` (email, phone, name), ``indirect`` (IP, device ids, free text) or ``none``;
* action ``hash`` (keyed pseudonym, trackway.pseudonym), ``drop``, ``truncate`` (IP: /24, /48) or
  ``keep``. A class without an action gets the class's default: direct -> hash, else keep.

Where a field's class comes from, first match wins:

1. the plan: ``pii:``/``action:`` on a property of the event (or of ``common.yaml``'s context);
2. the plan's name rules, ``plan.yaml`` ``privacy: {fields: [{name: "*email*", pii: direct}]}``,
   matched (case-insensitively, ``*`` wildcards) on the keys of ``properties``, ``traits`` and
   ``context.traits`` of every event, planned or not;
3. the well-known Segment fields (``WELL_KNOWN``): ``context.ip`` indirect/truncate, the personal
   traits direct/hash (not a group call's traits: they describe the group), ``context.device.advertisingId``
   indirect/hash, ``context.device.id`` indirect/keep.

``Privacy.process()`` is the collector's step for a valid event: consent, sampling, then the
field actions and the per-source ``userId`` pseudonym. ``Privacy.scrub()`` applies the field
actions alone to an event the Segment rules refused (the quarantine keeps it). Neither mutates
its input: the tracking plan validates the event as the client sent it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from trackway.plan.model import IMPLIED_NAMES, EventSpec, EventVersion, Plan, PlanError, PropertySpec
from trackway.pseudonym import Key, Keyring, NoValidKey, is_pseudonym, sampled, truncate_ip
from trackway.pseudonym.hashing import pseudonym_with

log = logging.getLogger("trackway.privacy")

PII_CLASSES = ("direct", "indirect", "none")
ACTIONS = ("hash", "drop", "truncate", "keep")
DEFAULT_ACTION = {"direct": "hash", "indirect": "keep", "none": "keep"}
SAMPLE_UNITS = ("anonymous_id", "session_id", "user_id")
NAME_RULE_CONTAINERS = (("properties",), ("traits",), ("context", "traits"))
SESSION_PATHS = (("context", "sessionId"), ("context", "session_id"), ("properties", "session_id"))
# Where the collector records the sampling rate of a kept event (analytics.events.sample_rate).
SAMPLE_RATE_PATH = ("context", "trackway", "sample_rate")
DROP_CONSENT = "consent_denied"
DROP_SAMPLED = "sampled_out"


@dataclass(frozen=True)
class FieldClass:
    """A field's PII class and action, and where they come from: plan, rule or default."""

    pii: str | None
    action: str
    origin: str

    def label(self) -> str:
        return f"{self.pii or 'unclassified'} · {self.action}"


_DIRECT = FieldClass("direct", "hash", "default")
# Segment's reserved traits that name a person; in traits, and in context.traits (RudderStack
# sends identify traits there, and analytics.js copies traits into it on request).
DIRECT_TRAITS = (
    "email",
    "phone",
    "name",
    "firstName",
    "lastName",
    "first_name",
    "last_name",
    "username",
    "address",
    "birthday",
)
WELL_KNOWN: dict[tuple[str, ...], FieldClass] = {
    ("context", "ip"): FieldClass("indirect", "truncate", "default"),
    ("context", "device", "id"): FieldClass("indirect", "keep", "default"),
    ("context", "device", "advertisingId"): FieldClass("indirect", "hash", "default"),
    **{("traits", t): _DIRECT for t in DIRECT_TRAITS},
    **{("context", "traits", t): _DIRECT for t in DIRECT_TRAITS},
}


@dataclass(frozen=True)
class Sample:
    rate: float
    unit: str


@dataclass(frozen=True)
class NameRule:
    pattern: str  # lower-case fnmatch pattern
    field: FieldClass


def field_class(schema: dict[str, Any], where: str, origin: str = "plan") -> FieldClass | None:
    """The class and action written on one property schema; PlanError names a bad value."""
    pii, action = schema.get("pii"), schema.get("action")
    if pii is None and action is None:
        return None
    if pii is not None and pii not in PII_CLASSES:
        raise PlanError(f"{where}: pii {pii!r} is not one of {', '.join(PII_CLASSES)}")
    if action is not None and action not in ACTIONS:
        raise PlanError(f"{where}: action {action!r} is not one of {', '.join(ACTIONS)}")
    return FieldClass(pii, action or DEFAULT_ACTION[str(pii)], origin)


def parse_sample(value: Any, where: str) -> Sample | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"rate", "unit"}:
        raise PlanError(f"{where}: sample must be {{rate: 0.1, unit: anonymous_id}}")
    rate, unit = value.get("rate"), value.get("unit", "anonymous_id")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise PlanError(f"{where}: sample rate must be a number from 0 to 1, e.g. 0.1")
    if unit not in SAMPLE_UNITS:
        raise PlanError(f"{where}: sample unit must be one of {', '.join(SAMPLE_UNITS)}")
    return Sample(float(rate), str(unit))


def schema_fields(schema: dict[str, Any], prefix: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], dict]]:
    """(path, schema) of every property of an object schema, nested objects included."""
    props = schema.get("properties")
    if not isinstance(props, dict):
        return
    for name, sub in props.items():
        if isinstance(sub, dict):
            yield (*prefix, str(name)), sub
            yield from schema_fields(sub, (*prefix, str(name)))


class Node:
    """A rule tree: key -> FieldClass (applies to the whole value) or Node (applies inside it).

    ``named``: the plan's name rules also apply to this object's keys that have no rule here
    (the nodes of properties, traits and context.traits).
    """

    __slots__ = ("children", "named")

    def __init__(self) -> None:
        self.children: dict[str, FieldClass | Node] = {}
        self.named = False

    def insert(self, path: tuple[str, ...], rule: FieldClass) -> None:
        node = self
        for key in path[:-1]:
            child = node.children.get(key)
            if isinstance(child, FieldClass):
                if child.action != "keep":
                    return  # the whole object is already hashed or dropped
                child = None
            if child is None:
                child = node.children[key] = Node()
            node = child
        if rule.action == "keep" and isinstance(node.children.get(path[-1]), Node):
            return  # keeping an object keeps the rules inside it
        node.children[path[-1]] = rule

    def node_at(self, path: tuple[str, ...]) -> Node | None:
        """The node at ``path``, created on the way unless a rule covers the whole value."""
        node = self
        for key in path:
            child = node.children.get(key)
            if isinstance(child, FieldClass):
                return None
            if child is None:
                child = node.children[key] = Node()
            node = child
        return node

    def acting(self) -> Node | None:
        """A copy without the ``keep`` rules (they change nothing): what the collector walks per event."""
        out = Node()
        out.named = self.named
        for key, child in self.children.items():
            kept = child.acting() if isinstance(child, Node) else (child if child.action != "keep" else None)
            if kept is not None:
                out.children[key] = kept
        return out if out.children or out.named else None

    def lookup(self, path: tuple[str, ...]) -> FieldClass | None:
        node: FieldClass | Node | None = self
        for key in path:
            if not isinstance(node, Node):
                return None
            node = node.children.get(key)
            if isinstance(node, FieldClass):
                return node
        return None


@dataclass(frozen=True)
class EventPrivacy:
    """What the collector does to one event type: its rule tree, consent category and sample."""

    tree: Node
    consent_category: str | None = None
    sample: Sample | None = None

    @property
    def acting(self) -> Node:
        """The tree without its ``keep`` rules, computed once."""
        found = self.__dict__.get("_acting")
        if found is None:
            found = self.tree.acting() or Node()
            object.__setattr__(self, "_acting", found)
        return found


class PlanPrivacy:
    """The plan's privacy rules compiled once per plan load (``None`` plan: the defaults alone)."""

    def __init__(self, plan: Plan | None, *, ip_truncation: bool = True) -> None:
        self.ip_truncation = ip_truncation
        self.name_rules = self._name_rules(plan)
        self._name_cache: dict[str, FieldClass | None] = {}
        defaults: dict[tuple[str, ...], FieldClass] = {}
        for path, known in WELL_KNOWN.items():
            if path == ("context", "ip") and not ip_truncation:
                known = FieldClass("indirect", "keep", "default")  # noqa: PLW2901
            named = self.rule_for_name(path[-1]) if path[:-1] in NAME_RULE_CONTAINERS else None
            defaults[path] = named or known
        common: dict[tuple[str, ...], FieldClass] = {}
        if plan is not None:
            for path, sub in schema_fields(plan.common, ("context",)):
                found = field_class(sub, f"{plan.root / 'common.yaml'}: context property '{'.'.join(path[1:])}'")
                if found is not None:
                    common[path] = found
        # A group call's traits describe the group (a company), not a person: no trait defaults there.
        group_defaults = {path: rule for path, rule in defaults.items() if path[0] != "traits"}
        self.unplanned = EventPrivacy(self._tree({**defaults, **common}))
        self.unplanned_group = EventPrivacy(self._tree({**group_defaults, **common}))
        self.events: dict[tuple[str, str], EventPrivacy] = {}
        for event in plan.events if plan is not None else ():
            own = dict(common)
            for path, rule in self.event_fields(event):
                own[path] = rule
            self.events[event.key] = EventPrivacy(
                self._tree({**(group_defaults if event.type == "group" else defaults), **own}),
                event.consent_category,
                parse_sample(event.sample, f"{event.path}: event '{event.name}'"),
            )

    @staticmethod
    def _name_rules(plan: Plan | None) -> tuple[NameRule, ...]:
        if plan is None:
            return ()
        where = f"{plan.root / 'plan.yaml'}: privacy.fields"
        entries = plan.privacy.get("fields") or []
        unknown = set(plan.privacy) - {"fields"}
        if unknown:
            raise PlanError(f"{plan.root / 'plan.yaml'}: privacy has unknown keys {sorted(unknown)}; allowed: fields")
        if not isinstance(entries, list):
            raise PlanError(f"{where} must be a list of {{name, pii, action}}")
        rules = []
        for n, entry in enumerate(entries, start=1):
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("name"), str)
                or set(entry) - {"name", "pii", "action"}
            ):
                raise PlanError(f'{where} #{n} must be {{name: "*email*", pii: direct, action: hash}}')
            found = field_class(entry, f"{where} #{n}", "rule")
            if found is None:
                raise PlanError(f"{where} #{n} ({entry['name']!r}) needs pii: and/or action:")
            rules.append(NameRule(entry["name"].lower(), found))
        return tuple(rules)

    @staticmethod
    def event_fields(event: EventSpec) -> Iterator[tuple[tuple[str, ...], FieldClass]]:
        """(path, class) written on the event's properties, older versions first so the current wins."""
        containers: list[tuple[str, ...]] = [(event.payload_field,)]
        if event.payload_field == "traits":
            containers.append(("context", "traits"))
        for version in reversed(event.versions):
            for container in containers:
                for path, sub in schema_fields(version.schema, container):
                    found = field_class(sub, f"{event.path}: event '{event.name}' property '{'.'.join(path[1:])}'")
                    if found is not None:
                        yield path, found

    def _tree(self, rules: dict[tuple[str, ...], FieldClass]) -> Node:
        tree = Node()
        for path in sorted(rules, key=len):  # parents first: a hashed object covers its children
            tree.insert(path, rules[path])
        if self.name_rules:
            for container in NAME_RULE_CONTAINERS:
                node = tree.node_at(container)
                if node is not None:
                    node.named = True
        return tree

    def rule_for_name(self, key: str) -> FieldClass | None:
        """The first plan-wide name rule matching ``key``, cached (keys repeat in every event)."""
        cache = self._name_cache
        found = cache.get(key, cache)
        if found is not cache:
            return found  # type: ignore[return-value]
        lowered = key.lower()
        result = next((r.field for r in self.name_rules if fnmatch.fnmatchcase(lowered, r.pattern)), None)
        if len(cache) < 10_000:
            cache[key] = result
        return result

    def for_event(self, etype: Any, name: Any) -> EventPrivacy:
        found = self.events.get((etype, name)) if isinstance(etype, str) and isinstance(name, str) else None
        return found or (self.unplanned_group if etype == "group" else self.unplanned)

    def class_of(self, event: EventSpec | None, path: tuple[str, ...]) -> FieldClass | None:
        """The effective class of ``path`` in ``event`` (None: an unplanned track), as the collector applies it."""
        rules = self.for_event(event.type, event.name) if event is not None else self.unplanned
        found = rules.tree.lookup(path)
        if found is None and path[:-1] in NAME_RULE_CONTAINERS:
            found = self.rule_for_name(path[-1])
        return found

    def property_class(self, event: EventSpec, prop: PropertySpec) -> FieldClass | None:
        return self.class_of(event, (event.payload_field, prop.name))


def stored_plan(plan: Plan) -> Plan:
    """The plan as the warehouse sees its events: after the collector's actions.

    A hashed property is a string pseudonym (no format, enum or other type); a dropped one
    is never present (not required). The generated dbt models (typed views, violations,
    tests) are built from this, so pseudonyms are not reported as bad formats.
    """
    rules = PlanPrivacy(plan)

    def schema(event: EventSpec | None, value: dict[str, Any], container: tuple[str, ...]) -> dict[str, Any]:
        props = value.get("properties")
        if not isinstance(props, dict):
            return value
        required = list(value.get("required") or [])
        out: dict[str, Any] = {}
        for name, sub in props.items():
            found = rules.class_of(event, (*container, str(name)))
            if found is not None and found.action == "hash" and isinstance(sub, dict):
                types = PropertySpec(str(name), sub, False).types
                kept = {k: v for k, v in sub.items() if k in ("description", "privacy", "pii", "action")}
                out[name] = {**kept, "type": ["string", "null"] if "null" in types else "string"}
            else:
                out[name] = sub
                if found is not None and found.action == "drop" and name in required:
                    required.remove(name)
        stored = {**value, "properties": out}
        if "required" in value:
            stored["required"] = required
        return stored

    events = tuple(
        dataclasses.replace(
            event,
            current=EventVersion(event.version, schema(event, event.current.schema, (event.payload_field,))),
            previous=tuple(
                EventVersion(v.version, schema(event, v.schema, (event.payload_field,))) for v in event.previous
            ),
        )
        for event in plan.events
    )
    return dataclasses.replace(plan, events=events, common=schema(None, plan.common, ("context",)))


_DROP = object()
_CACHE_MAX = 65_536  # pseudonyms of recent values, per process


class Privacy:
    """The collector's privacy step: the current plan's rules, the keyring and the per-source settings.

    ``rules`` is called for every event and returns the current PlanPrivacy (it changes when the
    plan reloads). Without a keyring, a ``hash`` field is dropped: never stored in clear.
    """

    def __init__(
        self,
        rules: Callable[[], PlanPrivacy],
        keyring: Keyring | None,
        *,
        hash_user_id: frozenset[str] = frozenset(),
        sample_by_source: dict[str, tuple[float, str]] | None = None,
    ) -> None:
        self.rules = rules
        self.keyring = keyring
        self.hash_user_id = hash_user_id
        self.sample_by_source = {s: Sample(rate, unit) for s, (rate, unit) in (sample_by_source or {}).items()}
        self._warned_at = 0.0
        self._pseudonyms: dict[str | int, str] = {}  # value -> its pseudonym under _cache_key
        self._cache_key: Key | None = None

    def reload_keyring(self, keyring: Keyring | None) -> None:
        self.keyring = keyring  # one assignment: an event sees the old or the new keyring
        self._cache_key, self._pseudonyms = None, {}  # a key deleted from the file must not live on in the cache

    # -- per value ------------------------------------------------------------

    def _current_key(self) -> Key | None:
        """The key for this event's pseudonyms; None (so ``hash`` drops) without a keyring or a valid key."""
        if self.keyring is None:
            return None
        try:
            return self.keyring.current()
        except NoValidKey as exc:
            now = time.monotonic()
            if now - self._warned_at > 60:  # once a minute, not once per event
                self._warned_at = now
                log.error("%s; values classified hash are dropped until a key is valid", exc)
            return None

    def _hash(self, value: Any, key: Key | None) -> Any:
        if value is None or (value.__class__ is str and value.startswith("h1:") and is_pseudonym(value)):
            return value
        if key is None:
            return _DROP
        if value.__class__ is not str and value.__class__ is not int:
            return pseudonym_with(key, value)
        # A person's email or id comes back in event after event (RudderStack repeats context.traits
        # in every call): the pseudonyms of recent values under the current key are kept, bounded.
        if key is not self._cache_key:
            self._cache_key, self._pseudonyms = key, {}
        found = self._pseudonyms.get(value)
        if found is None:
            if len(self._pseudonyms) >= _CACHE_MAX:
                self._pseudonyms = {}
            found = self._pseudonyms[value] = pseudonym_with(key, value)
        return found

    def _act(self, action: str, value: Any, key: Key | None) -> Any:
        if action == "hash":
            return self._hash(value, key)
        if action == "drop":
            return _DROP
        if action == "truncate":
            if value is None:
                return value
            truncated = truncate_ip(value) if isinstance(value, str) else None
            return _DROP if truncated is None else truncated  # not an address: may be anything, so dropped
        return value

    def _apply(self, container: dict, node: Node, policy: PlanPrivacy, pkey: Key | None) -> dict | None:
        """A copy of ``container`` with the tree's actions applied, or None when nothing changed.

        The hot path of the collector (every event, every rule): plain loops, no allocation
        unless a value changes.
        """
        changed: dict | None = None
        for key, rule in node.children.items():
            if key not in container:
                continue
            value = container[key]
            if rule.__class__ is Node:
                if value.__class__ is not dict:
                    continue
                result = self._apply(value, rule, policy, pkey)
                if result is None:
                    continue
            else:
                action = rule.action  # type: ignore[union-attr]
                result = self._hash(value, pkey) if action == "hash" else self._act(action, value, pkey)
                if result is value:
                    continue
            changed = _put(changed, container, key, result)
        if node.named and policy.name_rules:  # the plan's name rules, for keys without a rule of their own
            for key in container.keys() - node.children.keys():
                found = policy.rule_for_name(key)
                result = self._act(found.action, container[key], pkey) if found is not None else container[key]
                if result is not container[key]:
                    changed = _put(changed, container, key, result)
        return changed

    def _fields(
        self, event: dict, rules: EventPrivacy, policy: PlanPrivacy, source: str, pkey: Key | object | None = _DROP
    ) -> dict:
        if pkey is _DROP:  # not bound to a request: this event's key
            pkey = self._current_key()
        out = self._apply(event, rules.acting, policy, pkey) or event  # type: ignore[arg-type]
        if self.hash_user_id and (source in self.hash_user_id or "*" in self.hash_user_id):
            for key in ("userId", "previousId") if out.get("type") == "alias" else ("userId",):
                if out.get(key) is not None:
                    if out is event:
                        out = dict(event)
                    hashed = self._hash(out[key], pkey)  # type: ignore[arg-type]
                    if hashed is _DROP:
                        del out[key]
                    else:
                        out[key] = hashed
        return out

    # -- per event ------------------------------------------------------------

    def process(self, event: dict, source: str) -> tuple[dict | None, str | None]:
        """(the event to store, None), or (None, why it was dropped: consent_denied, sampled_out)."""
        return self.bind(source)(event)

    def bind(self, source: str) -> Callable[[dict], tuple[dict | None, str | None]]:
        """``process`` for the events of one request from ``source``.

        What is the same for all of them is looked up once: the current rules (a plan reload
        applies from the next request), the pseudonym key and the source's sample.
        """
        policy = self.rules()
        pkey = self._current_key()
        by_source = self.sample_by_source
        source_sample = by_source.get(source) or by_source.get("*")
        for_event = policy.for_event

        def process(event: dict) -> tuple[dict | None, str | None]:
            etype = event.get("type")
            rules = for_event(etype, _event_name(event))
            context: Any = event.get("context")
            if context.__class__ is not dict and not isinstance(context, dict):
                context = {}
            if rules.consent_category is not None:
                consent = context.get("consent")
                prefs = consent.get("categoryPreferences") if isinstance(consent, dict) else None
                # Segment: no consent object, no enforcement; with categoryPreferences, a category
                # that is missing counts as not consented.
                if isinstance(prefs, dict) and prefs.get(rules.consent_category) is not True:
                    return None, DROP_CONSENT
            sample = rules.sample or source_sample
            rate = 1.0
            if sample is not None and sample.rate < 1:
                if not sampled(_unit_value(event, sample.unit), sample.rate):
                    return None, DROP_SAMPLED
                rate = sample.rate
            out = self._fields(event, rules, policy, source, pkey)
            marker = context.get("trackway")
            if marker is not None and marker.__class__ is not dict and not isinstance(marker, dict):
                marker = None
            if rate < 1 or (marker is not None and "sample_rate" in marker):  # only the collector sets it
                own = {k: v for k, v in marker.items() if k != "sample_rate"} if marker is not None else {}
                if rate < 1:
                    own["sample_rate"] = rate
                if out is event:
                    out = event.copy()
                current = out.get("context")
                if current is not context and isinstance(current, dict):  # already a copy of the field actions
                    current["trackway"] = own
                else:
                    out["context"] = {**context, "trackway": own}
            return out, None

        return process

    def scrub(self, event: Any, source: str) -> Any:
        """The field actions alone, for an event the Segment rules refused (it goes to the quarantine)."""
        if not isinstance(event, dict):
            return event
        policy = self.rules()
        return self._fields(event, policy.for_event(event.get("type"), _event_name(event)), policy, source)


def _put(changed: dict | None, container: dict, key: str, result: Any) -> dict:
    """``result`` (or its removal, for _DROP) written into the copy of ``container``, made on first write."""
    if changed is None:
        changed = container.copy()
    if result is _DROP:
        del changed[key]
    else:
        changed[key] = result
    return changed


def _event_name(event: dict) -> Any:
    etype = event.get("type")
    return (
        event.get("event") if etype == "track" else IMPLIED_NAMES.get(etype, etype) if isinstance(etype, str) else None
    )


def _unit_value(event: dict, unit: str) -> Any:
    """The sampling unit's value; an event without it is decided by its anonymousId, else its userId."""
    if unit == "user_id" and event.get("userId") not in (None, ""):
        return event["userId"]
    if unit == "session_id":
        for first, second in SESSION_PATHS:
            container = event.get(first)
            value = container.get(second) if isinstance(container, dict) else None
            if value not in (None, ""):
                return value
    anonymous = event.get("anonymousId")
    return anonymous if anonymous not in (None, "") else event.get("userId")
