"""Turn what a load run left for on call into a failed task, so the DAG run shows it and the notifier alerts.

The load task itself succeeds (its good objects are committed and the transform
should run on them); this separate task fails with the reason and the command
that fixes it.
"""

from __future__ import annotations


class LoadNeedsAttention(RuntimeError):
    """Damaged objects, or late objects the sweep cannot load; the message says what to run."""


def raise_if_needs_attention(report: dict) -> None:
    problem = report.get("needs_attention")
    if problem:
        raise LoadNeedsAttention(f"load {report.get('load_id')}: {problem}")
