"""The tracking plan's verdict on one event, recorded with the event (adr/0029).

Where an event is validated against the plan (the collector in flag and block mode,
the loader for other systems' files, `trackway quarantine replay`), the verdict is
kept with it, so the warehouse never validates again:

    "_trackwayPlan": {"plan": "3f9a0c21d4e7", "eventVersion": "1",
                      "violations": [{"kind": "wrong_type", "property": "price"}]}

``plan`` is the plan version that judged the event (trackway.plan.model.plan_version), ``eventVersion``
the major version its properties were checked against (null for an unplanned event
that asked for none), ``violations`` what `trackway.plan.validate` found (an empty list
for a valid event). The collector adds the key to the line it stores (the client's
fields stay as sent; a client cannot send the key itself: trackway.segment_rules drops
it); the loader puts its verdict on a record of another system in
``raw.events_raw.plan_verdict`` and leaves the record untouched. dbt unnests it into
``intermediate.plan_violation_rows``.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from trackway.plan.validate import CompiledPlan, Violation
from trackway.segment_rules import PLAN_VERDICT_KEY

KEY = PLAN_VERDICT_KEY
_KEY_BYTES = b',"' + KEY.encode() + b'":'


def encode(version: str, event_version: str | None, violations: list[Violation]) -> bytes:
    """The verdict as compact JSON (kind and property only: the event itself holds the values)."""
    return orjson.dumps(
        {
            "plan": version,
            "eventVersion": event_version,
            "violations": [{"kind": v.kind, "property": v.property} for v in violations],
        }
    )


def annotate(line: bytes, verdict: bytes) -> bytes:
    """``line`` (one compact JSON object, as trackway.segment_rules serialises events) with the verdict key added last.

    Byte splicing, not a re-serialisation: every other byte of the line stays as it was.
    """
    return line[:-1] + _KEY_BYTES + verdict + b"}"


def record_judge(
    compiled: CompiledPlan, modes: dict[str, str], default_mode: str
) -> Callable[[dict, str | None, str | None, str | None], str | None]:
    """The loader's verdict for a record of another system's file (Firehose, Segment's S3 export).

    Called with the record and the type, event name and source id the loader mapped for it;
    returns the verdict as JSON text, or None where the source's mode is ``allow``. Block mode
    judges like flag: the loader never drops a line of a file it did not receive.
    """
    version = compiled.version

    def judge(record: dict, etype: str | None, name: str | None, source_id: str | None) -> str | None:
        if modes.get(source_id or "", default_mode) == "allow":
            return None
        event = record
        if record.get("type") != etype or (etype == "track" and record.get("event") != name):
            event = {**record, "type": etype, "event": name}
        event_version, violations = compiled.judge(event)
        return encode(version, event_version, violations).decode("utf-8")

    return judge
