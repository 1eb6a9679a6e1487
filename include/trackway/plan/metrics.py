"""Funnels and experiment goals declared beside the tracking plan, in ``metrics.yaml``.

The product-metric marts (``include/dbt/models/marts/metrics/``) read their declarations
from dbt's ``var('metrics')``; Trackway fills it from ``<TRACKWAY_PLAN_DIR>/metrics.yaml``
through the ``TRACKWAY_DBT_METRICS`` environment variable, so the DAG's tasks,
``trackway transform`` and the demo build the same funnels. dbt checks the shape of the
declarations when it parses the project (``macros/metrics.sql``); here, at
``trackway transform compile``, every event and property they name is checked against
the plan, so a misspelt event stops the compile instead of showing as a step nobody reaches.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import yaml

from trackway.plan.model import Plan, PlanError

METRICS_FILE = "metrics.yaml"
DBT_ENV = "TRACKWAY_DBT_METRICS"


class MetricsError(PlanError):
    """metrics.yaml cannot be used; the message names the file and each problem."""


def metrics_path(plan_dir: Path | None) -> Path | None:
    """The plan folder's metrics.yaml, or None (no plan, or no declarations)."""
    if plan_dir is None:
        return None
    path = Path(plan_dir) / METRICS_FILE
    return path if path.is_file() else None


def load_metrics(path: Path) -> dict[str, Any]:
    """The declarations as a mapping (shape checked by dbt); MetricsError when it is not YAML or not a mapping."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MetricsError(f"{path}: not valid YAML ({exc}); fix the syntax") from None
    except UnicodeDecodeError:
        raise MetricsError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise MetricsError(f"{path}: must be a mapping with 'funnels' and/or 'experiments'")
    return doc


def dbt_metrics_env(plan_dir: Path | None) -> dict[str, str]:
    """TRACKWAY_DBT_METRICS for dbt: the declarations as JSON (empty with a plan but no metrics.yaml).

    Without a plan nothing is set, so var('metrics') in dbt_project.yml (or a value the
    operator exported) applies. Reads one small file: cheap enough for every DAG parse.
    """
    if plan_dir is None:
        return {}
    path = metrics_path(plan_dir)
    if path is None:
        return {DBT_ENV: ""}
    # dates and other YAML scalars JSON lacks become text; dbt reports them as bad values
    return {DBT_ENV: json.dumps({**load_metrics(path), "source": str(path)}, default=str)}


def _declared_events(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    """(where, declared event) for every funnel step and experiment goal; shapes dbt rejects are skipped."""
    out: list[tuple[str, Any]] = []
    funnels = doc.get("funnels")
    for funnel in funnels if isinstance(funnels, list) else []:
        if isinstance(funnel, dict) and isinstance(funnel.get("steps"), list):
            for j, step in enumerate(funnel["steps"]):
                out.append((f"funnel {funnel.get('name')!r} step {j + 1}", step))
    experiments = doc.get("experiments")
    for experiment in experiments if isinstance(experiments, list) else []:
        if isinstance(experiment, dict) and experiment.get("goal") is not None:
            out.append((f"experiment {experiment.get('experiment_id')!r} goal", experiment["goal"]))
    return out


def plan_problems(doc: dict[str, Any], plan: Plan) -> list[str]:
    """Events the plan does not define, and property filters on properties the event never had."""
    events = {event.name: event for event in plan.events}
    problems = []
    for where, declared in _declared_events(doc):
        spec = {"event": declared} if isinstance(declared, str) else declared
        if not isinstance(spec, dict) or not isinstance(spec.get("event"), str):
            continue
        name = spec["event"]
        event = events.get(name)
        if event is None:
            close = difflib.get_close_matches(name, list(events), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{where}: event {name!r} is not in the tracking plan{hint}")
            continue
        filters = spec.get("properties")
        known = {prop.name for version in event.versions for prop in version.properties}
        for key in filters if isinstance(filters, dict) else {}:
            top = str(key).split(".", 1)[0]
            if top not in known:
                problems.append(
                    f"{where}: {name!r} has no property {top!r} in the tracking plan "
                    f"(it has: {', '.join(sorted(known)) or 'none'})"
                )
    return problems


def check_metrics(plan_dir: Path | None, plan: Plan | None) -> None:
    """MetricsError listing every event or property of metrics.yaml the plan lacks; no-op without one."""
    path = metrics_path(plan_dir)
    if path is None or plan is None:
        return
    problems = plan_problems(load_metrics(path), plan)
    if problems:
        raise MetricsError(
            f"{path}: names what the tracking plan {plan.root} does not define "
            "(docs/models.md#declaring-funnels-and-experiment-goals):\n  - " + "\n  - ".join(problems)
        )
