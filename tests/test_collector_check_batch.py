"""The collector's batch check (``check_events``, one loop per request, the privacy step bound once
per request) stores exactly what the per-event reference (``process_event``) makes of each event.

``check_events`` inlines validation, enrichment, the privacy step and serialisation for speed
(ADR 0006, issue 20); ``process_event`` is the same rules one event at a time. Hostile shapes,
batch-level fields, implied types and every privacy setting must give the same bytes, the same
refusal reasons and the same drops.
"""

from __future__ import annotations

import random
import uuid

import pytest

from collector_helpers import make_keyring
from trackway.plan.privacy import PlanPrivacy, Privacy
from trackway.segment_rules import InvalidEvent, RequestInfo, check_events, dumps, process_event, quarantine_record

_VALUES = [None, "", " ", "u1", 0, 1.5, True, [], {}, {"a": 1}, "2026-01-01T00:00:00Z", 2**70]
_KEYS = ["type", "userId", "anonymousId", "event", "groupId", "previousId", "messageId", "context", "integrations"]
_KEYS += ["properties", "traits", "timestamp", "originalTimestamp", "sentAt", "writeKey", "_trackwayPlan", "x"]
_CONTEXTS = [
    None,
    {},
    {"ip": "10.1.2.3"},
    {"ip": ""},
    {"ip": "not an address"},
    {"library": {"name": "x"}},
    {"traits": {"email": "a@example.com"}, "device": {"advertisingId": "ad", "id": "d"}},
    {"trackway": {"sample_rate": 0.5, "other": 1}},
    "a string",
]


def _corpus(n: int = 600) -> list:
    rng = random.Random(20)
    events: list = []
    for _ in range(n):
        event = {key: rng.choice(_VALUES) for key in rng.sample(_KEYS, rng.randint(0, len(_KEYS)))}
        if rng.random() < 0.7:
            event["type"] = rng.choice(["track", "page", "identify", "group", "alias", "bogus", None, 3, ["track"]])
        if rng.random() < 0.6:
            event["userId"] = rng.choice(["u", "", "  ", 5, None, True])
        if rng.random() < 0.5:
            event["event"] = rng.choice(["Order Completed", "", 3])
        if rng.random() < 0.6:
            event["context"] = rng.choice(_CONTEXTS)
        if rng.random() < 0.3:
            event["traits"] = {"email": "z@example.com", "phone": "1", "plan": "pro"}
        events.append(event if rng.random() < 0.95 else rng.choice([1, "s", None, [1]]))
    return events


def _reference(events: list, info: RequestInfo, max_bytes: int, implied: str | None, policy) -> tuple:
    lines, quarantine, errors, dropped = [], [], [], {}
    for index, event in enumerate(events):
        try:
            line = process_event(event, info, implied, max_bytes, policy)
        except InvalidEvent as exc:
            errors.append({"index": index, "reason": str(exc)})
            kept = event if policy is None else policy.scrub(event, info.source_id)
            quarantine.append(dumps(quarantine_record(kept, str(exc), info)))
            continue
        if isinstance(line, str):
            dropped[index] = line
        else:
            lines.append(line)
    return lines, quarantine, errors, dropped


@pytest.mark.parametrize("variant", ["none", "defaults", "keyring", "sampled", "ip kept"])
def test_the_batch_loop_stores_what_the_per_event_rules_store(variant, tmp_path, monkeypatch):
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=7))  # assigned messageIds comparable
    keyring = make_keyring(tmp_path / "keys.yaml") if variant in ("keyring", "sampled") else None
    policy = None
    if variant != "none":
        policy = Privacy(
            lambda: PlanPrivacy(None, ip_truncation=variant != "ip kept"),
            keyring,
            hash_user_id=frozenset({"web"}) if variant == "sampled" else frozenset(),
            sample_by_source={"web": (0.5, "anonymous_id")} if variant == "sampled" else None,
        )
    events = _corpus()
    batch_levels = [
        (None, None, None),
        ({"ip": "9.9.9.9", "library": {"v": 2}}, {"All": False}, "2026-01-01T00:00:00Z"),
    ]
    compared = 0
    all_lines: list[bytes] = []
    all_dropped: list[str] = []
    for context, integrations, sent_at in batch_levels:
        info = RequestInfo("web", "2026-12-02T10:00:00.000Z", "127.0.0.1", context, integrations, sent_at)
        for implied in (None, "track", "identify"):
            for start in range(0, len(events), 50):
                chunk = events[start : start + 50]
                checked = check_events(chunk, info, 400, implied, policy)
                lines, quarantine, errors, dropped = _reference(chunk, info, 400, implied, policy)
                assert checked.lines == lines
                assert checked.quarantine == quarantine
                assert checked.errors == errors
                assert checked.dropped == dropped
                compared += len(chunk)
                all_lines += lines
                all_dropped += dropped.values()
    assert compared == 6 * len(events) and len(all_lines) > 50  # valid events too, not only refusals
    if variant == "sampled":  # about half the users sampled out; the rest carry the rate
        assert all_dropped and set(all_dropped) == {"sampled_out"}
        assert all(b'"sample_rate":0.5' in line for line in all_lines)
    else:
        assert not all_dropped
    if variant == "defaults":  # the collector's own address, truncated, where the client sent none
        assert any(b'"ip":"127.0.0.0"' in line for line in all_lines)


def test_an_event_of_exactly_the_size_limit_is_stored_and_one_byte_over_is_refused():
    event = {"type": "track", "event": "Order Completed", "userId": "u1", "messageId": "m1", "properties": {"a": 1}}
    info = RequestInfo("web", "2026-12-02T10:00:00.000Z", "127.0.0.1")
    size = len(process_event(event, info, max_event_bytes=10**6))  # type: ignore[arg-type]
    at_limit = check_events([event], info, size)
    assert len(at_limit.lines[0]) == size and not at_limit.errors
    over = check_events([event], info, size - 1)
    assert not over.lines and over.too_large == 1
    assert over.errors[0]["reason"].startswith(f"event is {size} bytes; the limit is {size - 1} bytes per event")
