"""A robust baseline for hourly counts: median and MAD over the same hour of earlier weeks.

Product traffic has a daily and a weekly rhythm, so an hour is compared with the
same hour of day (and, given enough history, the same weekday) rather than with the
hour before it. Median and MAD (median absolute deviation) ignore the odd outage or
launch-day spike in the history, where a mean and standard deviation would not.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

#: MAD x 1.4826 estimates the standard deviation of normally distributed counts.
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Baseline:
    """What an hour is expected to hold, and from which history."""

    median: float
    mad: float
    samples: int
    #: "weeks": the same hour on earlier weeks; "days": the same hour on the trailing days.
    basis: str
    #: Share of the history's hours that had any count (a steady stream has nearly all).
    presence: float

    @property
    def sigma(self) -> float:
        return self.mad * MAD_TO_SIGMA

    def describe(self) -> str:
        unit = "week" if self.basis == "weeks" else "day"
        return f"median {self.median:g}/h over {self.samples} {unit}{'s' if self.samples != 1 else ''}"


def baseline_hours(hour: datetime, *, min_weeks: int, max_weeks: int, trailing_days: int, history_start: datetime):
    """The earlier hours an hour is compared with, and their basis.

    The same hour on each of the previous ``max_weeks`` weeks, when at least
    ``min_weeks`` of them lie after ``history_start`` (the oldest data); otherwise
    the same hour on each of the trailing ``trailing_days`` days that do.
    """
    weeks = [hour - timedelta(weeks=n) for n in range(1, max_weeks + 1)]
    weeks = [h for h in weeks if h >= history_start]
    if len(weeks) >= min_weeks:
        return weeks, "weeks"
    days = [hour - timedelta(days=n) for n in range(1, trailing_days + 1)]
    return [h for h in days if h >= history_start], "days"


def baseline(counts: Mapping[datetime, int], hours: list[datetime], basis: str) -> Baseline | None:
    """Median and MAD of ``counts`` over ``hours`` (an hour missing from ``counts`` counted 0); None without history."""
    if not hours:
        return None
    values = [counts.get(h, 0) for h in hours]
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    presence = sum(1 for v in values if v > 0) / len(values)
    return Baseline(median=float(median), mad=float(mad), samples=len(values), basis=basis, presence=presence)
