"""A few deliberate tracking plan violations in the demo's traffic, as a real app ships them.

An unplanned event, a wrong type and a missing required property: the collector (in the
default `flag` mode) lets them through and lists them in its answers, and the warehouse's
analytics.tracking_plan_violations finds them again from the plan.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

from trackway.demo.marketplace import Call

PLAN_DIR = Path(__file__).resolve().parent / "plan"
_NAMESPACE = uuid.UUID("0b7e7c0e-4b8e-4a57-8f5e-2c9b8f0a4d11")


def deliberate_violations(calls: list[Call], seed: int = 7) -> list[Call]:
    """Three calls cloned from real ones, each breaking the plan in one documented way."""
    template = next((c for c in calls if c.method == "track" and c.kwargs.get("event") == "Listing Viewed"), None)
    if template is None:
        return []
    out = []

    def clone(suffix: str, **changes) -> Call:
        kwargs = copy.deepcopy(template.kwargs)
        kwargs["message_id"] = str(uuid.uuid5(_NAMESPACE, f"{seed}/{suffix}"))
        kwargs.update(changes)
        return Call("track", kwargs)

    props = template.kwargs["properties"]
    # 1. unplanned: a new feature shipped before its event was added to the plan
    out.append(
        clone(
            "unplanned", event="Listing Shared", properties={"listing_id": props["listing_id"], "channel": "whatsapp"}
        )
    )
    # 2. wrong type: the price sent as a formatted string
    out.append(clone("wrong-type", properties={**props, "price_per_night": f"{props['price_per_night']:.2f}"}))
    # 3. missing required property: a client that forgot the city
    out.append(clone("missing", properties={k: v for k, v in props.items() if k != "city"}))
    return out
