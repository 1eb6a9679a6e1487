"""The collector's calls into the tracking plan, kept apart from the HTTP server.

`apply_to_batch()` is the plan's step of a batch check (after the Segment rules):
violations are listed for the response, in block mode violating events move to the
quarantine, and every event stored gets the verdict recorded with it (flag and block
mode: trackway.plan.verdict, adr/0029), which is where the warehouse's violations come from. `check_plan()` + `blocked_record()` do the same for a single-event
call. Counters go to the collector's Prometheus metrics.
"""

from __future__ import annotations

import json
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge

from trackway.config import Settings
from trackway.plan import verdict as recorded
from trackway.plan.privacy import PlanPrivacy, Privacy
from trackway.plan.validate import CompiledPlan, PlanEnforcer, Violation, event_key
from trackway.pseudonym import keyring_from_settings
from trackway.segment_rules import CheckedBatch, RequestInfo

MAX_REPORTED = 100


@dataclass
class PlanVerdict:
    mode: str
    violations: dict[int, list[Violation]] = field(default_factory=dict)  # event index -> its violations
    plan: str = ""  # the plan version that judged the batch ("" in allow mode)
    event_versions: dict[int, str | None] = field(default_factory=dict)  # event index -> major checked against

    def encoded(self, index: int) -> bytes:
        """The verdict to record with event ``index`` (trackway.plan.verdict)."""
        return recorded.encode(self.plan, self.event_versions.get(index), self.violations.get(index, []))

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
    mode, version, judged = enforcer.judge_batch(
        [e for _, e in events], source, implied_type=implied_type, batch_context=batch_context
    )
    verdict = PlanVerdict(mode, plan=version)
    for (index, _), (event_version, violations) in zip(events, judged, strict=True):
        verdict.event_versions[index] = event_version
        if violations:
            verdict.violations[index] = violations
    if mode != "allow":
        # One increment per counter and batch: each is a write to the multiprocess metrics file.
        EVENTS_CHECKED.labels(source).inc(len(events))
        if verdict.violations:
            (EVENTS_BLOCKED if mode == "block" else EVENTS_FLAGGED).labels(source).inc(len(verdict.violations))
            for kind, count in Tally(v.kind for found in verdict.violations.values() for v in found).items():
                VIOLATIONS.labels(source, kind).inc(count)
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
    privacy step dropped (counted here, not validated). Each line stored gets its verdict;
    a line blocked goes to the quarantine as it was (replay judges it again).
    """
    if checked.dropped:
        for reason, count in Tally(checked.dropped.values()).items():
            EVENTS_DROPPED.labels(info.source_id, reason).inc(count)
    if enforcer is None:
        return checked
    refused = {e["index"] for e in checked.errors} | checked.dropped.keys()
    valid = [i for i in range(len(events)) if i not in refused]
    verdict = check_plan(
        enforcer, [(i, events[i]) for i in valid], info.source_id, implied_type=implied_type, batch_context=info.context
    )
    if verdict.mode == "allow":
        return checked
    if verdict.violations:
        checked.violations = verdict.response({i: events[i] for i in valid}, implied_type)
    kept = []
    clean: dict[str | None, bytes] = {}  # the verdict of a valid event depends only on its version: encode once
    for index, line in zip(valid, checked.lines, strict=True):
        if verdict.blocked(index):
            checked.quarantine.append(blocked_record(line, verdict.violations[index], info.source_id))
            checked.plan_blocked += 1
            continue
        if index in verdict.violations:
            encoded = verdict.encoded(index)
        else:
            major = verdict.event_versions.get(index)
            encoded = clean.get(major) or clean.setdefault(major, verdict.encoded(index))
        kept.append(recorded.annotate(line, encoded))
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
