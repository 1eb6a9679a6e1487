"""The pipeline_health DAG's tasks: one family of checks each, alerting through the one notifier path.

A task fails when a check in its family fails or cannot be read (the run shows red
and the family's tasks say which); a warning alerts and leaves the task green.
"""

from __future__ import annotations

from trackway.config import load_settings
from trackway.health.checks import CheckResult, State
from trackway.health.observe import run_checks
from trackway.orchestration.alerts import Alert, clear_alerts, send_alert


class HealthCheckFailed(RuntimeError):
    """A health check failed; the message lists each failing check and its runbook section."""


def check_family(family: str) -> list[dict]:
    settings = load_settings()
    report = run_checks(settings, families=(family,))
    problems = [r for r in report.results if r.state is not State.OK]
    for result in problems:
        send_alert(_alert(result), settings)
    clear_alerts(settings, [_key(r) for r in report.results if r.state is State.OK])
    failing = [r for r in problems if r.state in (State.FAIL, State.UNKNOWN)]
    if failing:
        raise HealthCheckFailed(
            "; ".join(f"{r.key}: {r.summary} (docs/runbook.md#{r.runbook.split('#')[1]})" for r in failing)
        )
    return [{"check": r.key, "state": r.state.label, "summary": r.summary} for r in report.results]


def _key(result: CheckResult) -> str:
    return f"health:{result.key}"


def _alert(result: CheckResult) -> Alert:
    subject = f" {result.subject}:" if result.subject else ""
    return Alert(
        key=_key(result),
        text=f"Trackway health {result.state.label.upper()}: {result.family}.{result.check}{subject} {result.summary}",
        severity="warn" if result.state is State.WARN else "fail",
        runbook=result.runbook.split("#")[1],
        details={"check": result.key, "state": result.state.label, "value": result.value},
    )
