"""The plan's dbt models: the ``analytics_x`` views of events whose properties reference application rows.

Typed views are not dbt models (adr/0029: `trackway plan deploy` creates them when the
plan changes). The analytics_x views are, because their tests (relationships, the
unresolved share) belong in dbt; there is one per event that references a synced table,
so their number follows the plan's references, not its size, and a plan without
references adds no model at all. They read the deployed typed views as a dbt source.

Written before every dbt run (`trackway transform`, the events_transform DAG) into a
copy of the dbt project under TRACKWAY_HOME/dbt/project, at models/plan/; the source
tree is never written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from trackway.plan import names, xgen
from trackway.plan.model import Plan
from trackway.plan.privacy import stored_plan
from trackway.plan.views import view_names

FOLDER = "plan"


def generate(plan: Plan, typed_schema: str = "analytics_typed", app_links: xgen.Links | None = None) -> dict[str, str]:
    """Relative path -> file text for the generated folder (empty when no property references a synced row)."""
    plan = stored_plan(plan)  # pseudonymised and dropped properties as the warehouse holds them
    aliases = view_names(plan)
    typed = [
        (event, aliases[event.key], names.unique_columns([p.name for p in event.current.properties]))
        for event in plan.events
    ]
    return xgen.generate(typed, app_links, typed_schema)


def project_with_plan(
    plan: Plan, source: Path, dest: Path, typed_schema: str = "analytics_typed", app_links: xgen.Links | None = None
) -> Path:
    """A copy of the dbt project at ``dest`` with the plan's models in models/plan/; returns ``dest``.

    Runs at every DAG parse, while tasks may be reading the copy: only changed files are
    rewritten and only vanished ones removed, so an unchanged project is left untouched
    (and its mtimes keep dbt's manifest fresh).
    """
    _sync_tree(source, dest, skip_top={"target", "logs", "dbt_packages", ".user.yml"}, keep={f"models/{FOLDER}"})
    write_dbt_models(plan, dest, typed_schema, app_links)
    return dest


def _sync_tree(source: Path, dest: Path, *, skip_top: set[str], keep: set[str]) -> None:
    """Make ``dest`` hold ``source``'s files, leaving paths under ``keep`` (and ``skip_top``) alone."""

    def managed(rel: str) -> bool:
        return rel.split("/", 1)[0] not in skip_top and not any(rel == k or rel.startswith(k + "/") for k in keep)

    wanted = {
        p.relative_to(source).as_posix(): p
        for p in source.rglob("*")
        if p.is_file() and managed(p.relative_to(source).as_posix())
    }
    if dest.exists():
        for path in sorted(dest.rglob("*"), reverse=True):  # children before their folders
            rel = path.relative_to(dest).as_posix()
            if not managed(rel) or rel in wanted:
                continue
            if path.is_dir():
                if not any(path.iterdir()):
                    path.rmdir()
            else:
                path.unlink()
    for rel, src in wanted.items():
        target = dest / rel
        if target.is_file() and target.stat().st_size == src.stat().st_size and target.read_bytes() == src.read_bytes():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def write_dbt_models(
    plan: Plan | None, project_dir: Path, typed_schema: str = "analytics_typed", app_links: xgen.Links | None = None
) -> list[Path]:
    """Replace models/plan/ with what the plan generates (or remove it when there is no plan)."""
    folder = project_dir / "models" / FOLDER
    files = generate(plan, typed_schema, app_links) if plan is not None else {}
    current = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}
    for rel, path in current.items():
        if rel not in files:
            path.unlink()
    written = []
    for rel, text in files.items():
        path = folder / rel
        if rel in current and path.read_text(encoding="utf-8") == text:
            written.append(path)
            continue  # unchanged: keep mtime so dbt's partial parse stays warm
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    if not files and folder.exists():
        shutil.rmtree(folder)
    return written
