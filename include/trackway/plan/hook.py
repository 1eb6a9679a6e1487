"""The collector's one call into the tracking plan, kept apart from the HTTP server.

`check_plan()` takes the events of one request that passed the Segment rules and
says, per event, what the plan thinks; the server then stores blocked events in
the quarantine (`blocked_record`) and lists every event's violations in its
response. Any server (the stdlib one, an ASGI one) needs only these two calls.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from trackway.plan.validate import PlanEnforcer, Violation, event_key

MAX_REPORTED = 100


@dataclass
class PlanVerdict:
    mode: str
    violations: dict[int, list[Violation]] = field(default_factory=dict)  # event index -> its violations

    def blocked(self, index: int) -> bool:
        return self.mode == "block" and bool(self.violations.get(index))

    def response(self, events: dict[int, Any]) -> list[dict[str, Any]]:
        """What the batch response lists: each violating event's index, name and violations."""
        out = []
        for index in sorted(self.violations)[:MAX_REPORTED]:
            _etype, name = event_key(events[index]) if isinstance(events.get(index), dict) else ("", "")
            out.append(
                {
                    "index": index,
                    "event": name,
                    "action": "quarantined" if self.blocked(index) else "flagged",
                    "violations": [v.as_dict() for v in self.violations[index]],
                }
            )
        return out


class PlanCounters:
    """What /health shows under "plan": events checked, flagged, blocked, violations by kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def record(self, verdict: PlanVerdict, checked: int) -> None:
        with self._lock:
            self.counts["events_checked"] += checked
            for index, found in verdict.violations.items():
                self.counts["events_blocked" if verdict.blocked(index) else "events_flagged"] += 1
                for violation in found:
                    self.counts[f"violations_{violation.kind}"] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


def check_plan(
    enforcer: PlanEnforcer | None,
    events: list[tuple[int, dict]],
    source: str,
    *,
    implied_type: str | None = None,
    batch_context: dict | None = None,
    counters: PlanCounters | None = None,
) -> PlanVerdict:
    """Validate (index, event) pairs that passed the Segment rules; no plan -> allow everything."""
    if enforcer is None:
        return PlanVerdict("allow")
    mode, found = enforcer.validate_batch(
        [e for _, e in events], source, implied_type=implied_type, batch_context=batch_context
    )
    verdict = PlanVerdict(mode, {index: v for (index, _), v in zip(events, found, strict=True) if v})
    if counters is not None and mode != "allow":
        counters.record(verdict, len(events))
    return verdict


def blocked_record(line: bytes, violations: list[Violation], source_id: str) -> bytes:
    """A quarantine line for an event the plan blocked.

    The event is stored as the collector enriched it (messageId and receivedAt set), so
    `trackway quarantine replay` re-ingests it with the same id and arrival time.
    """
    event = json.loads(line)
    reason = "tracking plan: " + "; ".join(str(v) for v in violations)
    record = {
        "reason": reason,
        "receivedAt": event.get("receivedAt"),
        "sourceId": source_id,
        "event": event,
        "violations": [v.as_dict() for v in violations],
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
