"""`trackway plan deploy`: the plan's typed views, created in the warehouse when the plan changes (adr/0029).

A deploy compares each view's definition with what the warehouse records as deployed
(``<typed schema>._plan_views``) and, in one transaction, creates the new views,
replaces the changed ones, drops the views of events that left the plan, and appends a
row to ``<typed schema>._plan_deploys`` with the plan version and a hash of all the
views' definitions. Unchanged views are not touched. The hourly transform compares that
row with the plan (``deployed_state``) and alerts when they differ.

On PostgreSQL a changed view is dropped and created again (CREATE OR REPLACE cannot
drop or retype columns); a view someone built on top of it makes the deploy fail with
PostgreSQL's message and leaves everything as it was. Plan descriptions become
PostgreSQL comments on the views and their columns.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from trackway.config import Settings
from trackway.plan import names
from trackway.plan.model import Plan, plan_version
from trackway.plan.views import DIALECTS, TypedView, typed_views, views_version
from trackway.warehouse import open_warehouse
from trackway.warehouse.base import Warehouse

DEPLOYS_TABLE = "_plan_deploys"
VIEWS_TABLE = "_plan_views"
DEPLOY_COMMAND = "trackway plan deploy"


class PlanDeployError(RuntimeError):
    """The typed views cannot be deployed; the message says why and what to do."""


@dataclass
class DeployReport:
    plan_version: str
    views_version: str
    schema: str
    created: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    unchanged: int = 0
    column_changes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.created or self.replaced or self.dropped)

    def summary(self) -> str:
        verb = "would deploy" if self.dry_run else "deployed"
        return (
            f"plan {self.plan_version} {verb} to {self.schema}: {len(self.created)} view(s) created, "
            f"{len(self.replaced)} replaced, {len(self.dropped)} dropped, {self.unchanged} unchanged "
            f"in {self.seconds:.1f}s"
        )


@dataclass(frozen=True)
class DeployedState:
    """What the hourly transform compares: the plan as it is against the last deploy."""

    plan_version: str
    views_version: str
    deployed_plan: str | None
    deployed_views: str | None
    deployed_at: datetime | None
    schema: str

    @property
    def current(self) -> bool:
        return self.deployed_plan == self.plan_version and self.deployed_views == self.views_version

    def line(self) -> str:
        if self.current:
            return f"typed views: plan {self.plan_version} deployed to {self.schema} at {self.deployed_at}"
        if self.deployed_plan is None:
            return f"typed views: plan {self.plan_version} was never deployed to {self.schema}; run `{DEPLOY_COMMAND}`"
        if self.deployed_plan != self.plan_version:
            what = f"the plan changed since the last deploy ({self.deployed_plan} deployed at {self.deployed_at})"
        else:
            what = "the code that writes the views changed (a Trackway upgrade) since the last deploy"
        return f"typed views in {self.schema} are out of date: {what}; now {self.plan_version}; run `{DEPLOY_COMMAND}`"


def _q(schema: str, name: str) -> str:
    return f"{names.quote_ident(schema)}.{names.quote_ident(name)}"


def _dialect(wh: Warehouse) -> str:
    if wh.kind not in DIALECTS:
        raise PlanDeployError(
            f"typed views are deployed on DuckDB and PostgreSQL; {wh.kind} is not supported yet "
            "(the violations table works there: it needs no views)"
        )
    return wh.kind


def _state_ddl(schema: str, dialect: str) -> list[str]:
    ts = "timestamptz" if dialect == "postgres" else "timestamp with time zone"
    return [
        f"create schema if not exists {names.quote_ident(schema)}",
        f"create table if not exists {_q(schema, DEPLOYS_TABLE)} (plan_version text not null, views_version text "
        f"not null, plan_name text, views bigint not null, deployed_at {ts} not null, deployed_by text)",
        f"create table if not exists {_q(schema, VIEWS_TABLE)} (view_name text not null, event_type text not null, "
        f"event_name text not null, definition_hash text not null, columns text not null, plan_version text not null, "
        f"deployed_at {ts} not null)",
    ]


def _recorded(wh: Warehouse, schema: str) -> dict[str, tuple[str, list[list[str]]]]:
    """view name -> (definition hash, [[column, type], ...]) as last deployed; empty before the first deploy."""
    if not wh.table_exists(schema, VIEWS_TABLE):
        return {}
    rows = wh.query(f"select view_name, definition_hash, columns from {_q(schema, VIEWS_TABLE)}")
    return {name: (digest, json.loads(columns)) for name, digest, columns in rows}


def _columns(view: TypedView) -> list[list[str]]:
    return [[c.name, c.type] for c in view.columns]


def column_changes(name: str, before: list[list[str]], after: list[list[str]]) -> list[str]:
    """What a redeploy does to one view's columns, one line each (empty when the columns stay)."""
    old = {col: kind for col, kind in before}  # noqa: C416 (pairs from JSON lists)
    new = {col: kind for col, kind in after}  # noqa: C416
    out = [f"view {name}: column {c} ({t}) removed" for c, t in old.items() if c not in new]
    out += [f"view {name}: column {c} ({t}) added" for c, t in new.items() if c not in old]
    out += [f"view {name}: column {c} {old[c]} -> {new[c]}" for c in old if c in new and old[c] != new[c]]
    return out


def _create(view: TypedView, schema: str, dialect: str, replace: bool) -> list[str]:
    target = _q(schema, view.name)
    if dialect == "postgres":
        out = [f"drop view if exists {target}"] if replace else []
        out.append(f"create view {target} as\n{view.select}")
        out.append(f"comment on view {target} is {names.sql_string(view.description)}")
        out += [
            f"comment on column {target}.{names.quote_ident(c.name)} is {names.sql_string(c.description)}"
            for c in view.columns
            if c.description
        ]
        return out
    return [f"create or replace view {target} as\n{view.select}"]


def deploy(settings: Settings, plan: Plan, *, dry_run: bool = False) -> DeployReport:
    """Create, replace and drop typed views so the warehouse holds exactly the plan's; record the deploy."""
    started = time.monotonic()
    schema = settings.typed_schema
    with open_warehouse(settings.warehouse, read_only=dry_run) as wh:
        dialect = _dialect(wh)
        if not wh.table_exists("analytics", "events"):
            raise PlanDeployError(
                f"analytics.events does not exist in {settings.warehouse.display_url} yet: the typed views select "
                "from it; run the transform first (the events_transform DAG, or `trackway transform`)"
            )
        views = typed_views(plan, dialect)
        version = plan_version(plan)
        report = DeployReport(version, views_version(version, schema, dialect), schema, dry_run=dry_run)
        recorded = _recorded(wh, schema)
        statements = [] if dry_run else _state_ddl(schema, dialect)
        wanted = {v.name for v in views}
        for name in sorted(set(recorded) - wanted):
            report.dropped.append(name)
            report.column_changes.append(f"view {name}: dropped (its event left the plan)")
            statements.append(f"drop view if exists {_q(schema, name)}")
        now = datetime.now(UTC)
        for view in views:
            before = recorded.get(view.name)
            if before is not None and before[0] == view.definition_hash:
                report.unchanged += 1
                continue
            (report.replaced if before is not None else report.created).append(view.name)
            if before is not None:
                report.column_changes += column_changes(view.name, before[1], _columns(view))
            # A view the plan did not record (a first deploy, an older Trackway's dbt view) is replaced too.
            statements += _create(view, schema, dialect, replace=True)
        if dry_run:
            report.seconds = time.monotonic() - started
            return report
        touched = report.dropped + report.replaced + report.created
        for start in range(0, len(touched), 500):
            chunk = ", ".join(names.sql_string(n) for n in touched[start : start + 500])
            statements.append(f"delete from {_q(schema, VIEWS_TABLE)} where view_name in ({chunk})")
        by_name = {v.name: v for v in views}
        rows = [
            "("
            + ", ".join(
                [
                    names.sql_string(name),
                    names.sql_string(by_name[name].event.type),
                    names.sql_string(by_name[name].event.name),
                    names.sql_string(by_name[name].definition_hash),
                    names.sql_string(json.dumps(_columns(by_name[name]))),
                    names.sql_string(report.plan_version),
                    f"cast({names.sql_string(now.isoformat())} as timestamp with time zone)",
                ]
            )
            + ")"
            for name in report.replaced + report.created
        ]
        for start in range(0, len(rows), 500):
            statements.append(f"insert into {_q(schema, VIEWS_TABLE)} values " + ", ".join(rows[start : start + 500]))
        statements.append(
            f"insert into {_q(schema, DEPLOYS_TABLE)} values ({names.sql_string(report.plan_version)}, "
            f"{names.sql_string(report.views_version)}, {names.sql_string(plan.name)}, {len(views)}, "
            f"cast({names.sql_string(now.isoformat())} as timestamp with time zone), "
            f"{names.sql_string(os.environ.get('USER') or 'trackway')})"
        )
        try:
            wh.run_script(statements)
        except Exception as exc:
            raise PlanDeployError(
                f"deploy of plan {report.plan_version} to {schema} failed, nothing was changed: "
                f"{str(exc).strip().splitlines()[0]}"
            ) from exc
    report.seconds = time.monotonic() - started
    return report


def deployed_state(settings: Settings, plan: Plan) -> DeployedState:
    """The plan's version and views against the last deploy recorded in the warehouse (read-only)."""
    schema = settings.typed_schema
    with open_warehouse(settings.warehouse, read_only=True) as wh:
        dialect = _dialect(wh)
        version = plan_version(plan)
        views = views_version(version, schema, dialect)
        if not wh.table_exists(schema, DEPLOYS_TABLE):
            return DeployedState(version, views, None, None, None, schema)
        rows = wh.query(
            f"select plan_version, views_version, deployed_at from {_q(schema, DEPLOYS_TABLE)} "
            "order by deployed_at desc limit 1"
        )
    if not rows:
        return DeployedState(version, views, None, None, None, schema)
    return DeployedState(version, views, rows[0][0], rows[0][1], rows[0][2], schema)


class PlanNotDeployed(RuntimeError):
    """The typed views in the warehouse are not the plan's; the message says which command fixes it."""


def require_deployed(settings: Settings, *, first_deploy: bool = False) -> str:
    """The hourly transform's check: a line to log, or PlanNotDeployed (the task fails and alerts).

    With ``first_deploy``, a schema where no plan was ever deployed gets its views now: there
    is nothing yet that a change could break, and the first run of a new installation (or of
    one upgraded from the dbt-built views) should not wait for someone. Every later change
    waits for `trackway plan deploy`, so it can be reviewed (`trackway plan diff`) first.
    """
    if settings.plan_dir is None:
        return "typed views: no tracking plan (TRACKWAY_PLAN_DIR is not set)"
    if settings.warehouse.kind not in DIALECTS:
        return f"typed views: not deployed on {settings.warehouse.kind} (DuckDB and PostgreSQL only)"
    from trackway.plan.model import load_plan

    plan = load_plan(settings.plan_dir)
    state = deployed_state(settings, plan)
    if state.current:
        return state.line()
    if first_deploy and state.deployed_plan is None:
        return "typed views: first deploy: " + deploy(settings, plan).summary()
    raise PlanNotDeployed(state.line())
