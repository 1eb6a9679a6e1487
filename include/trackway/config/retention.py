"""Retention rules as written in the tracking plan and the sources file: ``{full_days: 90, then: sanitize}``.

Parsed here (the lowest layer) because both the sources file (config) and the plan
(trackway.plan) carry them; what a rule does to an event is ``trackway.plan.retention``.
"""

from __future__ import annotations

from dataclasses import dataclass

from trackway.config.errors import ConfigError

#: What happens to an event once it is older than ``full_days``: ``keep`` is "no retention".
RETENTION_ACTIONS = ("sanitize", "delete", "keep")
#: At most ten years: a longer retention is a typo (days for hours) more often than a policy.
MAX_FULL_DAYS = 3650
EXAMPLE = "{full_days: 90, then: sanitize}"


@dataclass(frozen=True)
class Retention:
    """Keep events whole for ``full_days`` after arrival (``receivedAt``), then sanitize or delete them."""

    full_days: int
    then: str
    origin: str = "default"  # event | source | plan | default: where the rule came from (docs, dry run)

    @property
    def expires(self) -> bool:
        return self.then != "keep"

    def label(self) -> str:
        return "kept whole" if not self.expires else f"{self.full_days} days, then {self.then}"


#: The built-in default (docs/privacy.md#retention): Wikimedia's 90 days, then only the allowlist.
DEFAULT_RETENTION = Retention(90, "sanitize", "default")


def parse_default(text: str) -> Retention:
    """``TRACKWAY_RETENTION_DEFAULT``: ``90:sanitize``, ``30:delete`` or ``keep``; ValueError naming the fix."""
    value = text.strip().lower()
    if value == "keep":
        return Retention(0, "keep", "default")
    days, _, then = value.partition(":")
    try:
        found = parse_retention(
            {"full_days": int(days), "then": then or "sanitize"}, "TRACKWAY_RETENTION_DEFAULT", "default", ValueError
        )
    except ValueError as exc:
        raise ValueError(
            f"TRACKWAY_RETENTION_DEFAULT={text[:40]!r}: write DAYS:sanitize, DAYS:delete or keep, e.g. 90:sanitize"
            + (f" ({exc})" if "full_days" in str(exc) or "then" in str(exc) else "")
        ) from None
    assert found is not None
    return found


def parse_retention(value: object, where: str, origin: str, error: type[Exception] = ConfigError) -> Retention | None:
    """A ``retention:`` value (None when absent); ``error`` names ``where`` and the fix."""
    if value is None:
        return None
    if value == "keep":
        return Retention(0, "keep", origin)
    if not isinstance(value, dict) or set(value) - {"full_days", "then"}:
        raise error(f"{where}: retention must be {EXAMPLE} (then: sanitize | delete) or 'keep'")
    days, then = value.get("full_days"), value.get("then", "sanitize")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_FULL_DAYS:
        raise error(f"{where}: retention.full_days must be a whole number of days from 1 to {MAX_FULL_DAYS}, e.g. 90")
    if then not in RETENTION_ACTIONS:
        raise error(f"{where}: retention.then {then!r} is not one of {', '.join(RETENTION_ACTIONS)}")
    return Retention(days, str(then), origin)
