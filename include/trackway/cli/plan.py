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
    from trackway.plan.diff import BREAKING, diff_plans, worst

    changes = diff_plans(load_plan(args.old), load_plan(args.new))
    for change in changes:
        print(change.line())
    kind = worst(changes)
    print(f"plan diff: {len(changes)} change(s); overall: {kind or 'no change'}", file=sys.stderr)
    return 1 if args.fail_on_breaking and kind == BREAKING else 0


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
    from trackway.plan.dbtgen import FOLDER, project_with_plan

    settings = load_settings()
    plan_dir = _plan_dir(args.plan_dir).resolve()
    out = Path(args.out) if args.out else settings.home / "dbt" / "project"
    if not args.out and settings.plan_dir is not None:
        if plan_dir != settings.plan_dir:
            raise ConfigError(
                f"{out} is the project events_transform runs, built from TRACKWAY_PLAN_DIR={settings.plan_dir}; "
                f"give --out DIR to write {plan_dir}'s models elsewhere"
            )
        # The DAG's own copy: written together with the manifest it loads (adr/0014), never alone.
        from trackway.transform.manifest import compile_manifest

        result = compile_manifest(settings)
        print(
            f"dbt project with the plan's generated models: {out} (models in {out / 'models' / FOLDER}); "
            f"dbt manifest for events_transform: {result.manifest} (`trackway transform compile`)"
        )
        return 0
    from trackway.plan.xgen import app_links

    links = app_links(settings.app_databases())
    project_with_plan(load_plan(plan_dir), settings.dbt_project_dir, out, settings.typed_schema, links)
    print(f"dbt project with the plan's generated models: {out} (models in {out / 'models' / FOLDER})")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from trackway.plan.replay import replay_quarantine

    report = replay_quarantine(load_settings(), force=args.force, progress=lambda m: print(m, flush=True))
    print(report.summary())
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    plan = sub.add_parser(
        "plan",
        help="tracking plan: lint, diff, test, import, docs, generate",
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

    gen = psub.add_parser(
        "generate",
        help="write the plan's dbt models (typed views, violations, tests); with TRACKWAY_PLAN_DIR and no --out, "
        "as `trackway transform compile`",
        description="Write a copy of the dbt project with the plan's generated models (typed views in "
        "TRACKWAY_TYPED_SCHEMA, analytics.tracking_plan_violations, compliance, tests) under models/plan/. "
        "With --out, to inspect them. Without it, for TRACKWAY_PLAN_DIR's plan, this is `trackway transform "
        "compile`: the copy events_transform runs and the dbt manifest it loads, written together; run it "
        "after every plan change (until then the DAG fails to import, saying so). Never edit them by hand.",
    )
    gen.add_argument("plan_dir", nargs="?", help="plan folder (default TRACKWAY_PLAN_DIR)")
    gen.add_argument("--out", help="where to write the project (default $TRACKWAY_HOME/dbt/project)")
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
