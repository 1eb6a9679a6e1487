"""The collector's calls into the tracking plan, kept apart from the HTTP server.

`apply_to_batch()` is the plan's step of a batch check (after the Segment rules):
violations are listed for the response, and in block mode violating events move to
the quarantine. `check_plan()` + `blocked_record()` do the same for a single-event
call. Counters go to the collector's Prometheus metrics.
"""

from __future__ import annotations

import json
from collections import Counter as CountBy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge

from trackway.config import Settings
from trackway.plan.privacy import PlanPrivacy, Privacy
from trackway.plan.validate import CompiledPlan, PlanEnforcer, Violation, event_key
from trackway.pseudonym import keyring_from_settings
from trackway.segment_rules import CheckedBatch, RequestInfo

MAX_REPORTED = 100


@dataclass
class PlanVerdict:
    mode: str
    violations: dict[int, list[Violation]] = field(default_factory=dict)  # event index -> its violations

    def blocked(self, index: int) -> bool:
        return self.mode == "block" and bool(self.violations.get(index))

    def response(self, events: dict[int, Any], implied_type: str | None = None) -> list[dict[str, Any]]:
        """What the batch response lists: each violating event's index, name and violations."""
        out = []
        for index in sorted(self.violations)[:MAX_REPORTED]:
            event = events.get(index)
            _etype, name = event_key(event, implied_type) if isinstance(event, dict) else ("", "")
            out.append(
                {
                    "index": index,
                    "event": name,
                    "action": "quarantined" if self.blocked(index) else "flagged",
                    "violations": [v.as_dict() for v in self.violations[index]],
                }
            )
        return out


# Prometheus counters (multiprocess-safe like the collector's own): /metrics shows them by
# source and kind, /health their totals over all workers.
_P = "trackway_collector_plan_"
EVENTS_CHECKED = Counter(_P + "events_checked_total", "Events validated against the tracking plan", ["source"])
EVENTS_FLAGGED = Counter(_P + "events_flagged_total", "Events with violations let through (flag mode)", ["source"])
EVENTS_BLOCKED = Counter(_P + "events_blocked_total", "Events with violations quarantined (block mode)", ["source"])
VIOLATIONS = Counter(_P + "violations_total", "Tracking plan violations found, by source and kind", ["source", "kind"])
PLAN_EVENTS = Gauge(
    _P + "events", "Events in the tracking plan in force (the most over workers)", multiprocess_mode="livemax"
)


EVENTS_DROPPED = Counter(
    "trackway_collector_events_dropped_total",
    "Valid events not stored: consent_denied (context.consent denies the plan's category) or sampled_out",
    ["source", "reason"],
)


def privacy_from_settings(settings: Settings, plan: PlanEnforcer | Callable[[], CompiledPlan] | None) -> Privacy:
    """The privacy step: the plan's rules (as they reload, from an enforcer), the keyring, per-source settings."""
    ip_truncation = settings.ip_truncation
    defaults = PlanPrivacy(None, ip_truncation=ip_truncation)
    if plan is None:
        rules = lambda: defaults  # noqa: E731
    else:
        current = (lambda: plan.compiled) if isinstance(plan, PlanEnforcer) else plan
        derived: dict[int, tuple[object, PlanPrivacy]] = {}

        def rules() -> PlanPrivacy:
            compiled = current()
            if ip_truncation:
                return compiled.privacy
            found = derived.get(id(compiled))
            if found is None or found[0] is not compiled:  # TRACKWAY_IP_TRUNCATION=off: recompiled once per plan
                derived.clear()
                found = derived[id(compiled)] = (compiled, PlanPrivacy(compiled.plan, ip_truncation=False))
            return found[1]

    return Privacy(
        rules,
        keyring_from_settings(settings),
        hash_user_id=settings.hash_user_id_sources,
        sample_by_source=settings.sample_by_source,
    )


def check_privacy(settings: Settings) -> list[str]:
    """At collector start: the keyring reads and has a key valid now (KeyringError if not); warnings to log."""
    keyring = keyring_from_settings(settings)
    if keyring is None:
        return [
            "TRACKWAY_PSEUDONYM_KEYS is not set: fields classified hash (traits.email, traits.phone, ... and the "
            "plan's) are dropped, never stored in clear; `trackway privacy keys new` makes a keyring"
        ]
    keyring.current()  # NoValidKey: fail at start, not with every event
    return []


def privacy_health(privacy: Privacy | None, totals: dict[str, float]) -> dict[str, Any]:
    """The "privacy" part of /health: key ids (never a secret) and the events dropped before storage."""
    if privacy is None:
        return {}
    keyring = privacy.keyring
    current = None
    if keyring is not None:
        try:
            current = keyring.current().id
        except ValueError:
            current = None
    return {
        "privacy": {
            "keys": [k.id for k in keyring.keys] if keyring is not None else [],
            "current_key": current,
            "ip_truncation": privacy.rules().ip_truncation,
            "events_dropped": int(totals.get("events_dropped_total", 0)),
        }
    }


def publish_plan_size(enforcer: PlanEnforcer | None) -> None:
    """Each worker, on its timer: how many events its plan has, for the master's /health."""
    if enforcer is not None:
        PLAN_EVENTS.set(len(enforcer.compiled.plan.events))


def plan_health(plan_dir: Path | None, totals: dict[str, float]) -> dict[str, Any]:
    """The "plan" part of the admin /health, from the workers' summed metric totals."""
    if plan_dir is None:
        return {}
    return {
        "plan": {
            "dir": str(plan_dir),
            "events": int(totals.get("plan_events", 0)),
            "events_checked": int(totals.get("plan_events_checked_total", 0)),
            "events_flagged": int(totals.get("plan_events_flagged_total", 0)),
            "events_blocked": int(totals.get("plan_events_blocked_total", 0)),
            "violations": int(totals.get("plan_violations_total", 0)),
        }
    }


def check_plan(
    enforcer: PlanEnforcer | None,
    events: list[tuple[int, dict]],
    source: str,
    *,
    implied_type: str | None = None,
    batch_context: dict | None = None,
) -> PlanVerdict:
    """Validate (index, event) pairs that passed the Segment rules; no plan -> allow everything."""
    if enforcer is None:
        return PlanVerdict("allow")
    mode, found = enforcer.validate_batch(
        [e for _, e in events], source, implied_type=implied_type, batch_context=batch_context
    )
    verdict = PlanVerdict(mode, {index: v for (index, _), v in zip(events, found, strict=True) if v})
    if mode != "allow":
        EVENTS_CHECKED.labels(source).inc(len(events))
        for index, violations in verdict.violations.items():
            (EVENTS_BLOCKED if verdict.blocked(index) else EVENTS_FLAGGED).labels(source).inc()
            for violation in violations:
                VIOLATIONS.labels(source, violation.kind).inc()
    return verdict


def apply_to_batch(
    enforcer: PlanEnforcer | None,
    events: list,
    checked: CheckedBatch,
    info: RequestInfo,
    implied_type: str | None = None,
) -> CheckedBatch:
    """The plan's step of a batch check: flag (list violations) or block (move lines to the quarantine).

    ``checked`` is what the Segment rules made of ``events``: its lines are the valid
    events in order, its errors name the refused ones by index, ``dropped`` the ones the
    privacy step dropped (counted here, not validated).
    """
    if checked.dropped:
        for reason, count in CountBy(checked.dropped.values()).items():
            EVENTS_DROPPED.labels(info.source_id, reason).inc(count)
    if enforcer is None:
        return checked
    refused = {e["index"] for e in checked.errors} | checked.dropped.keys()
    valid = [i for i in range(len(events)) if i not in refused]
    verdict = check_plan(
        enforcer, [(i, events[i]) for i in valid], info.source_id, implied_type=implied_type, batch_context=info.context
    )
    if not verdict.violations:
        return checked
    checked.violations = verdict.response({i: events[i] for i in valid}, implied_type)
    if verdict.mode == "block":
        kept = []
        for index, line in zip(valid, checked.lines, strict=True):
            if verdict.blocked(index):
                checked.quarantine.append(blocked_record(line, verdict.violations[index], info.source_id))
                checked.plan_blocked += 1
            else:
                kept.append(line)
        checked.lines = kept
    return checked


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
