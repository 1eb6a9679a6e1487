"""`trackway quarantine replay`: quarantined events back into the events stream, once fixed.

Each quarantine record is checked again (Segment rules, and the current tracking
plan for events the plan blocked). Those that pass are written as a new object in
the events stream's current hour, so the scheduled load picks them up. They keep
their messageId and original receivedAt: the plan-blocked ones were stored enriched
by the collector; a Segment-invalid one that never got a messageId gets one derived
from its quarantine object and line, so every replay gives it the same id. The
warehouse keeps one row per messageId, so replaying twice still gives one row.
Each replayed event carries the current plan's verdict (trackway.plan.verdict), unless
its source's mode is ``allow``, as the collector would have recorded it.
The quarantine is not modified: it stays the record of what was refused and why.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from trackway.config import Settings
from trackway.objectstore import open_object_store
from trackway.plan.hook import privacy_from_settings
from trackway.plan.model import load_plan
from trackway.plan.privacy import Privacy
from trackway.plan.validate import CompiledPlan
from trackway.plan.verdict import annotate, encode
from trackway.rawdata.lines import parse_line
from trackway.rawdata.partitions import is_data_object, partition_path
from trackway.segment_rules import InvalidEvent, RequestInfo, dumps, enrich_event, validate_event

_NAMESPACE = uuid.UUID("7f0c7a52-5b2e-4d55-9a51-3c0a8c9a1e08")


@dataclass
class ReplayReport:
    objects_read: int = 0
    records: int = 0
    replayed: int = 0
    still_failing: Counter = field(default_factory=Counter)
    written: list[str] = field(default_factory=list)

    def summary(self) -> str:
        failing = sum(self.still_failing.values())
        lines = [
            f"quarantine replay: {self.records} quarantined event(s) in {self.objects_read} object(s); "
            f"{self.replayed} replayed into {', '.join(self.written) or 'nothing'}; {failing} still refused"
        ]
        for reason, count in self.still_failing.most_common(10):
            lines.append(f"  {count:>6}  {reason}")
        if self.replayed:
            lines.append("next: the events_load DAG loads them with this hour (or `trackway load --hour <this hour>`)")
        return "\n".join(lines)


def _records(data: bytes) -> list[tuple[int, dict]]:
    if data[:2] == b"\x1f\x8b":
        data = gzip.GzipFile(fileobj=io.BytesIO(data)).read()
    out = []
    for number, line in enumerate(data.splitlines(), start=1):
        _text, error, obj = parse_line(line)
        if error is None and obj is not None:
            out.append((number, obj))
    return out


class Dropped(InvalidEvent):
    """The privacy step drops the event (consent denied, sampled out): not replayed."""


def replay_event(
    record: dict, key: str, line: int, plan: CompiledPlan | None, force: bool, privacy: Privacy | None = None
) -> dict:
    """The event to re-ingest, or InvalidEvent saying why it is still refused.

    A plan-blocked event went through the collector's privacy step before it was blocked; an event
    the Segment rules refused only had its fields scrubbed, so it goes through the whole step now.
    """
    event = record.get("event")
    if "violations" in record:  # blocked by the tracking plan: stored as the collector enriched it
        if not isinstance(event, dict):
            raise InvalidEvent("quarantine record has no event object")
        if plan is not None and not force:
            found = plan.check(event)
            if found:
                raise InvalidEvent("still violates the tracking plan: " + "; ".join(str(v) for v in found[:3]))
        return event
    validate_event(event)  # raises InvalidEvent with the Segment reason
    assert isinstance(event, dict)
    context = event.get("context") if isinstance(event.get("context"), dict) else {}
    info = RequestInfo(
        source_id=str(record.get("sourceId") or "replay"),
        received_at=str(record.get("receivedAt")),
        client_ip=str((context or {}).get("ip") or ""),
    )
    if not event.get("messageId"):
        event = {**event, "messageId": str(uuid.uuid5(_NAMESPACE, f"{key}#{line}"))}
    enriched = enrich_event(event, info)
    if privacy is None:
        return enriched
    kept, dropped = privacy.process(enriched, info.source_id)
    if kept is None:
        raise Dropped(f"dropped by the privacy step: {dropped}")
    return kept


def replay_quarantine(
    settings: Settings, *, force: bool = False, progress: Callable[[str], None] = print
) -> ReplayReport:
    quarantine = open_object_store(settings.quarantine_url)
    events = open_object_store(settings.events_url)
    plan = CompiledPlan(load_plan(settings.plan_dir)) if settings.plan_dir is not None else None
    privacy = privacy_from_settings(settings, (lambda: plan) if plan is not None else None)
    report = ReplayReport()
    out_lines: list[bytes] = []
    digest = hashlib.sha256()
    for key in sorted(quarantine.list("")):
        if not is_data_object(key.rsplit("/", 1)[-1]):
            continue
        records = _records(quarantine.read_bytes(key))
        report.objects_read += 1
        replayed_here = 0
        for line, record in records:
            report.records += 1
            try:
                event = replay_event(record, key, line, plan, force, privacy)
            except InvalidEvent as exc:
                report.still_failing[str(exc)[:160]] += 1
                continue
            encoded = dumps(event)
            source = str(event.get("sourceId") or "")
            if plan is not None and settings.plan_modes.get(source, settings.plan_default_mode) != "allow":
                encoded = annotate(encoded, encode(plan.version, *plan.judge(event)))
            out_lines.append(encoded + b"\n")
            digest.update(encoded)
            replayed_here += 1
        progress(f"  {key}: {len(records)} record(s), {replayed_here} replayable")
    if out_lines:
        hour = datetime.now(UTC)
        name = f"{partition_path(hour)}/replay-{digest.hexdigest()[:16]}.ndjson.gz"
        events.put_bytes(name, gzip.compress(b"".join(out_lines), mtime=0))  # same input, same object: idempotent
        report.replayed = len(out_lines)
        report.written.append(events.url_for(name))
    return report
