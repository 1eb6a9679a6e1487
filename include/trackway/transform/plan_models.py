"""The plan's dbt models (its analytics_x views), built after the typed views they read.

The typed views are deployed, not built by dbt (adr/0029); the analytics_x views select
from them, so they are left out of the main build and built once the views are known to
be the plan's: by `trackway transform build`, by events_transform's last task and by
`trackway plan deploy`. One step whatever the plan's size: there is one view per event
that references application rows.
"""

from __future__ import annotations

from trackway.config import Settings
from trackway.transform.dbt_runner import DbtReport, project_dir, run_dbt

#: dbt's selector for the plan's generated models (models/plan/ of the project copy).
PLAN_MODELS = "path:models/plan"
#: The main build without them. An --exclude replaces selectors.yml's default, so unit tests are left out here too.
WITHOUT_PLAN_MODELS = ("--exclude", PLAN_MODELS, "resource_type:unit_test")


def has_plan_models(settings: Settings) -> bool:
    """Whether the plan generates any dbt model (a property that references a synced table)."""
    if settings.plan_dir is None:
        return False
    folder = project_dir(settings) / "models" / "plan"
    return folder.is_dir() and any(folder.rglob("*.sql"))


def build_plan_models(settings: Settings, *, raise_on_failure: bool = True) -> DbtReport | None:
    """`dbt build` of the plan's models and their tests; None when the plan has none."""
    if not has_plan_models(settings):
        return None
    return run_dbt(settings, "build", "--select", PLAN_MODELS, raise_on_failure=raise_on_failure)


def build_with_plan(settings: Settings, *extra: str) -> list[DbtReport]:
    """`trackway transform build` with no selection: the models, the typed views' check, then analytics_x.

    The first build of a new schema deploys the typed views (nothing a change could break
    yet); later plan changes wait for `trackway plan deploy` (PlanNotDeployed says so).
    """
    from trackway.plan.deploy import require_deployed

    if not has_plan_models(settings):
        return [run_dbt(settings, "build", *extra)]
    reports = [run_dbt(settings, "build", *WITHOUT_PLAN_MODELS, *extra)]
    require_deployed(settings, first_deploy=True)
    report = build_plan_models(settings)
    if report is not None:
        reports.append(report)
    return reports
