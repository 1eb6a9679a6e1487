"""How a health report is shown: a table for people, JSON for scripts, a Prometheus textfile for alerting."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from trackway.health.checks import State
from trackway.health.observe import HealthReport


def table(report: HealthReport) -> str:
    from trackway.status import format_table

    order = sorted(report.results, key=lambda r: (-r.state, r.family, r.check, r.subject))
    rows = [(r.state.label.upper(), f"{r.family}.{r.check}", r.subject, r.summary) for r in order]
    lines = [format_table(["state", "check", "subject", "detail"], rows, indent="")]
    problems = [r for r in order if r.state not in (State.OK,)]
    if problems:
        lines.append("")
        lines.append("what to do:")
        for anchor in dict.fromkeys(r.runbook for r in problems):
            lines.append(f"  {anchor}")
    lines.append("")
    lines.append(summary(report))
    return "\n".join(lines)


def summary(report: HealthReport) -> str:
    by_state = {s: sum(1 for r in report.results if r.state is s) for s in State}
    parts = [f"{by_state[s]} {s.label}" for s in (State.FAIL, State.WARN, State.UNKNOWN, State.OK) if by_state[s]]
    return f"health: {report.state.label.upper()} ({', '.join(parts)}) as of {report.as_of:%Y-%m-%d %H:%M} UTC"


def as_json(report: HealthReport) -> dict:
    return {
        "state": report.state.label,
        "exit_status": int(report.state),
        "as_of": report.as_of.isoformat(),
        "checks": [
            {
                "family": r.family,
                "check": r.check,
                "subject": r.subject,
                "state": r.state.label,
                "summary": r.summary,
                "value": r.value,
                "runbook": r.runbook,
                "key": r.key,
            }
            for r in report.results
        ],
    }


def write_prometheus(report: HealthReport, path: Path) -> None:
    """A node_exporter textfile, replaced atomically so a scrape never reads half of it.

    ``trackway_health_last_run_timestamp_seconds`` lets an ``absent()`` or age rule
    page when the checks themselves stop running (ops/prometheus/trackway-alerts.yml).
    """
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    labels = ["family", "check", "subject"]
    state = Gauge("trackway_health_check_state", "0 ok, 1 warn, 2 fail, 3 unknown", labels, registry=registry)
    value = Gauge("trackway_health_check_value", "The figure the check measured", labels, registry=registry)
    overall = Gauge("trackway_health_state", "Worst state of all checks (the exit status)", registry=registry)
    last_run = Gauge("trackway_health_last_run_timestamp_seconds", "When the checks last ran", registry=registry)
    for r in report.results:
        state.labels(r.family, r.check, r.subject).set(int(r.state))
        if r.value is not None:
            value.labels(r.family, r.check, r.subject).set(r.value)
    overall.set(int(report.state))
    last_run.set(report.as_of.timestamp())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as out:
        out.write(generate_latest(registry))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
