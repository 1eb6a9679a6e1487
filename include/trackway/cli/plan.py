"""`trackway plan ...` and `trackway quarantine ...`: argument parsing and printing only."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from trackway.config import ConfigError, load_settings
from trackway.plan.model import PlanError, load_plan


def _plan_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    settings = load_settings()
    if settings.plan_dir is None:
        raise ConfigError("no plan folder given and TRACKWAY_PLAN_DIR is not set; pass the folder or set the variable")
    return settings.plan_dir


def _lint(args: argparse.Namespace) -> int:
    from trackway.plan.lint import ERROR, lint_dir, report, summary

    started = time.perf_counter()
    plan, findings = lint_dir(_plan_dir(args.plan_dir), Path(args.baseline) if args.baseline else None)
    for line in report(findings, args.max_findings):
        print(line)
    print(summary(findings, len(plan.events), time.perf_counter() - started), file=sys.stderr)
    if any(f.severity == ERROR for f in findings):
        return 2
    return 1 if findings and not args.allow_warnings else 0


def _diff(args: argparse.Namespace) -> int:
    from trackway.plan.diff import BREAKING, diff_plans, view_changes, worst

    old, new = load_plan(args.old), load_plan(args.new)
    changes = diff_plans(old, new)
    for change in changes:
        print(change.line())
    views = view_changes(old, new, load_settings().typed_schema)
    if views:
        print("typed views (what `trackway plan deploy` would change):")
        for change in views:
            print("  " + change.line())
    kind = worst(changes + views)
    print(
        f"plan diff: {len(changes)} change(s), {len(views)} to the typed views; overall: {kind or 'no change'}",
        file=sys.stderr,
    )
    return 1 if args.fail_on_breaking and kind == BREAKING else 0


def _deploy(args: argparse.Namespace) -> int:
    from trackway.plan.deploy import PlanDeployError, deploy

    settings = load_settings()
    try:
        report = deploy(settings, load_plan(_plan_dir(args.plan_dir)), dry_run=args.dry_run)
    except PlanDeployError as exc:
        print(f"trackway plan deploy: {exc}", file=sys.stderr)
        return 1
    for line in report.column_changes[: args.show]:
        print(line)
    if len(report.column_changes) > args.show:
        print(f"... and {len(report.column_changes) - args.show} more column change(s)")
    print(report.summary())
    if not report.dry_run:
        from trackway.transform.dbt_runner import DbtBuildError
        from trackway.transform.plan_models import build_plan_models

        try:
            built = build_plan_models(settings)
        except DbtBuildError as exc:
            print(f"trackway plan deploy: the typed views are deployed, but analytics_x is not: {exc}", file=sys.stderr)
            return 1
        if built is not None:
            print(f"analytics_x: {built.summary()}")
    return 0


def _test(args: argparse.Namespace) -> int:
    from trackway.plan.querytest import run_plan_queries

    settings = load_settings()
    plan = load_plan(_plan_dir(args.plan_dir))
    results = run_plan_queries(settings, plan)
    for result in results:
        print(result.line())
    failed = [r for r in results if not r.ok]
    print(f"plan test: {len(results) - len(failed)} of {len(results)} analyst queries passed", file=sys.stderr)
    return 1 if failed else 0


def _import(args: argparse.Namespace) -> int:
    from trackway.plan.importers import import_plan

    started = time.perf_counter()
    imported = import_plan(args.fmt, Path(args.source), Path(args.to))
    for warning in imported.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    kept = imported.kept
    for line in kept[: args.max_notes] if args.max_notes > 0 else kept:
        print(f"not translated, kept as an annotation: {line}", file=sys.stderr)
    if 0 < args.max_notes < len(kept):
        print(
            f"... and {len(kept) - args.max_notes} more not translated (--max-notes 0 lists them all)", file=sys.stderr
        )
    translated = imported.translated()
    if translated:
        detail = ", ".join(f"{code} {n}" for code, n in sorted(translated.items()))
        print(f"translated into JSON Schema 2020-12: {detail}", file=sys.stderr)
    seconds = time.perf_counter() - started
    print(
        f"imported {len(imported.events)} events from {args.fmt} {args.source} into {args.to} in {seconds:.2f}s; "
        f"next: trackway plan lint {args.to}"
    )
    return 0


def _docs(args: argparse.Namespace) -> int:
    from trackway.plan.docs import write_docs

    settings = load_settings()
    plan = load_plan(_plan_dir(args.plan_dir))
    out = Path(args.out or (settings.home / "plan-docs"))
    html, md, stats_note = write_docs(plan, out, settings if not args.no_warehouse else None)
    print(f"data dictionary: {html} and {md} ({stats_note})")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from trackway.plan.views import typed_views

    settings = load_settings()
    plan = load_plan(_plan_dir(args.plan_dir))
    out = Path(args.out) if args.out else settings.home / "plan-views"
    dialect = args.dialect or (settings.warehouse.kind if settings.warehouse.kind == "postgres" else "duckdb")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.sql"):
        old.unlink()
    views = typed_views(plan, dialect)
    for view in views:
        (out / f"{view.name}.sql").write_text(
            f"-- {view.description}\ncreate or replace view {settings.typed_schema}.{view.name} as\n{view.select};\n",
            encoding="utf-8",
        )
    print(f"{len(views)} typed view(s) for {dialect} in {out}; `trackway plan deploy` creates them")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from trackway.plan.replay import replay_quarantine

    report = replay_quarantine(load_settings(), force=args.force, progress=lambda m: print(m, flush=True))
    print(report.summary())
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    plan = sub.add_parser(
        "plan",
        help="tracking plan: lint, diff, deploy, test, import, docs, generate",
        description="Work with the tracking plan (a folder of YAML, one file per event; TRACKWAY_PLAN_DIR).",
    )
    psub = plan.add_subparsers(dest="plan_command", metavar="PLAN_COMMAND", required=True)

    lint = psub.add_parser(
        "lint",
        help="check JSON Schema, names, descriptions, owners, column collisions; exit 2 on errors, 1 on warnings",
        description="Print one line per finding (file: error|warning: event: property: what to fix [rule]): "
        "errors first (the collector or dbt cannot use the plan: a file that does not load, an invalid JSON Schema, "
        "a $ref that cannot be followed, a NUL in a name, two versions with one major; with --baseline, a breaking "
        "change that keeps its major version), then style warnings (naming conventions, description, owner, type, "
        "privacy class, column names, missing query files), grouped by rule. A summary with the count of each "
        "kind goes to stderr. Exit status: 0 nothing found, 1 warnings only (0 with --allow-warnings), "
        "2 errors (or a plan folder that cannot be read).",
    )
    lint.add_argument("plan_dir", nargs="?", help="plan folder (default TRACKWAY_PLAN_DIR)")
    lint.add_argument("--baseline", help="the plan as it was (e.g. a checkout of main) to check version bumps against")
    lint.add_argument(
        "--max-findings",
        type=int,
        default=20,
        metavar="N",
        help="list at most N findings of each rule, then count the rest (default 20; 0 lists all)",
    )
    lint.add_argument(
        "--allow-warnings", action="store_true", help="exit 0 when there are warnings but no errors (gate on errors)"
    )
    lint.set_defaults(func=_lint)

    diff = psub.add_parser(
        "diff",
        help="classify changes between two plans as addition, revision or breaking (SchemaVer)",
        description="Compare OLD_DIR and NEW_DIR event by event and print each change with its SchemaVer class.",
    )
    diff.add_argument("old", help="old plan folder")
    diff.add_argument("new", help="new plan folder")
    diff.add_argument("--fail-on-breaking", action="store_true", help="exit 1 when any change is breaking")
    diff.set_defaults(func=_diff)

    test = psub.add_parser(
        "test",
        help="run the plan's analyst queries against the warehouse; fail if one errors or returns no rows",
        description="Run every SQL file the plan's events list under `queries:` as TRACKWAY_READ_WAREHOUSE_URL "
        "(default TRACKWAY_WAREHOUSE_URL); each must be one read-only SELECT, as in `trackway query`.",
    )
    test.add_argument("plan_dir", nargs="?", help="plan folder (default TRACKWAY_PLAN_DIR)")
    test.set_defaults(func=_test)

    imp = psub.add_parser(
        "import",
        help="convert a Segment Protocols, RudderStack rudder-cli or Snowplow Iglu plan into a plan folder",
        description="Read SOURCE (a file or a folder) in the given format and write a plan folder at --to. "
        "Names are kept exactly. Vendor JSON Schema is translated into JSON Schema 2020-12 (Segment's 'any' type "
        "becomes no type constraint, draft-04/07 forms their 2020-12 equivalents, $ref into the export is inlined); "
        "what has no equivalent is kept as an x-<vendor>-... annotation and listed. Every schema is checked as the "
        "collector compiles it: the import fails, naming file and property, rather than write a plan the collector "
        "refuses. Run `trackway plan lint` on the result.",
    )
    imp.add_argument("--from", dest="fmt", required=True, choices=("segment", "rudderstack", "iglu"))
    imp.add_argument("source", help="export file or folder")
    imp.add_argument("--to", required=True, help="new plan folder to write")
    imp.add_argument(
        "--max-notes",
        type=int,
        default=50,
        metavar="N",
        help="list at most N constructs kept as annotations because they have no JSON Schema equivalent (0: all)",
    )
    imp.set_defaults(func=_import)

    docs = psub.add_parser(
        "docs",
        help="write the data dictionary (searchable HTML + Markdown)",
        description="Write index.html (self-contained, searchable) and data-dictionary.md, with volumes and "
        "violations from the warehouse when it is reachable.",
    )
    docs.add_argument("plan_dir", nargs="?", help="plan folder (default TRACKWAY_PLAN_DIR)")
    docs.add_argument("--out", help="output folder (default $TRACKWAY_HOME/plan-docs)")
    docs.add_argument("--no-warehouse", action="store_true", help="do not read volumes from the warehouse")
    docs.set_defaults(func=_docs)

    dep = psub.add_parser(
        "deploy",
        help="create or replace the plan's typed views in TRACKWAY_TYPED_SCHEMA and record the plan version",
        description="Make the typed views in TRACKWAY_TYPED_SCHEMA (one per planned event) match the plan, in one "
        "transaction: create new views, replace changed ones, drop those of events that left the plan; unchanged "
        "views are left alone. Records the plan version in the warehouse; the hourly transform alerts while the "
        "deployed version is not the plan's. Run it after every plan change (DuckDB and PostgreSQL).",
    )
    dep.add_argument("plan_dir", nargs="?", help="plan folder (default TRACKWAY_PLAN_DIR)")
    dep.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")
    dep.add_argument("--show", type=int, default=50, help="column changes to print (default 50)")
    dep.set_defaults(func=_deploy)

    gen = psub.add_parser(
        "generate",
        help="write the typed views' SQL (what `trackway plan deploy` runs) to inspect it",
        description="Write one CREATE VIEW file per planned event to --out (default $TRACKWAY_HOME/plan-views). "
        "Nothing is run; `trackway plan deploy` creates the views.",
    )
    gen.add_argument("plan_dir", nargs="?", help="plan folder (default TRACKWAY_PLAN_DIR)")
    gen.add_argument("--out", help="output folder (default $TRACKWAY_HOME/plan-views)")
    gen.add_argument("--dialect", choices=("duckdb", "postgres"), help="default: the warehouse's")
    gen.set_defaults(func=_generate)

    quarantine = sub.add_parser(
        "quarantine",
        help="replay quarantined events after the plan or the sender is fixed",
        description="Work with the collector's quarantine (TRACKWAY_RAW_URL/quarantine).",
    )
    qsub = quarantine.add_subparsers(dest="quarantine_command", metavar="QUARANTINE_COMMAND", required=True)
    replay = qsub.add_parser(
        "replay",
        help="re-ingest quarantined events that now pass, keeping messageId and receivedAt",
        description="Read every quarantine object, re-check each event against the Segment rules and the "
        "current plan, and write those that pass into the events stream (current hour) with their original "
        "messageId and receivedAt; the warehouse keeps one row per messageId, so replaying twice is harmless.",
    )
    replay.add_argument("--force", action="store_true", help="replay plan-blocked events even if they still violate it")
    replay.set_defaults(func=_replay)


__all__ = ["PlanError", "add_parsers"]
