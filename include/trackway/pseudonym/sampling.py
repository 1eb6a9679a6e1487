"""Deterministic sampling: whether a unit (a user, a device, a session) is in a sample.

The answer comes from a hash of the unit alone, so a kept user is kept in every event,
every stream, every collector process and every run; and the sample at a lower rate is
a subset of the sample at a higher one. The hash needs no secret: being in the sample
reveals nothing about the unit.
"""

from __future__ import annotations

import hashlib
from typing import Any

from trackway.pseudonym.hashing import canonical_text

_SCALE = float(1 << 64)
_PERSON = b"trackway-sample"  # BLAKE2b's personalisation: these points are for sampling only


def sample_point(unit_value: Any) -> float:
    """The unit's place in [0, 1): it is in every sample of a rate above it (BLAKE2b-64 of the unit)."""
    digest = hashlib.blake2b(canonical_text(unit_value), digest_size=8, person=_PERSON).digest()
    return int.from_bytes(digest, "big") / _SCALE


def sampled(unit_value: Any, rate: float) -> bool:
    """True when ``unit_value`` is in the sample of ``rate`` (1 keeps everything, 0 nothing)."""
    if rate >= 1:
        return True
    if rate <= 0:
        return False
    return sample_point(unit_value) < rate
