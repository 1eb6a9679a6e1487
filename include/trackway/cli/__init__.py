"""The ``trackway`` command: one entry point for operators and the demo."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from trackway.config import ConfigError, load_settings
from trackway.plan.model import PlanError
from trackway.warehouse.base import WarehouseBusy


def _cmd_collect(args: argparse.Namespace) -> int:
    from trackway.collector.app import run_collector

    settings = load_settings()
    return run_collector(
        settings,
        host=args.host or settings.collector_host,
        port=args.port or settings.collector_port,
        workers=args.workers,
        log_json=True if args.log_json else None,
        admin_host=args.admin_host,
        admin_port=args.admin_port,
    )


def _parse_hour(text: str) -> datetime:
    """Accept 2026-11-22T10, 2026-11-22T10:00, 2026-11-22 10:00:00+00:00 (UTC when no zone)."""
    cleaned = text.strip().replace(" ", "T")
    if len(cleaned) == 13:  # YYYY-MM-DDTHH
        cleaned += ":00"
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time; write e.g. 2026-11-22T10 (UTC)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _cmd_load(args: argparse.Namespace) -> int:
    from trackway.load.loader import load_interval
    from trackway.rawdata.partitions import hour_floor

    start = hour_floor(args.hour)
    end = hour_floor(args.until) if args.until else start + timedelta(hours=1)
    if end <= start:
        raise SystemExit("trackway load: --until must be after --hour")
    report = load_interval(load_settings(), start, end, reload=args.reload, progress=lambda msg: print(msg, flush=True))
    problem = report.needs_attention()
    if problem:
        print(f"trackway load: needs attention: {problem}", file=sys.stderr)
        return 1
    return 0


def _cmd_app_sync(args: argparse.Namespace) -> int:
    from trackway.load.app_sync import AppSyncError, sync_database

    settings = load_settings()
    databases = [settings.app_database(args.database)] if args.database else settings.app_databases()
    if not databases:
        print(
            f"trackway app-sync: no database is declared (kind: database) in {settings.sources_file or 'no sources file'}"
        )
        return 0
    failed = 0
    for database in databases:
        try:
            report = sync_database(settings, database)
        except AppSyncError as exc:
            print(f"trackway app-sync: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{database.name} -> {report.warehouse} {report.schema} in {report.seconds:.1f}s")
        for line in report.lines():
            print("  " + line)
    return 1 if failed else 0


def _cmd_transform(args: argparse.Namespace) -> int:
    from trackway.plan.deploy import PlanNotDeployed
    from trackway.transform.dbt_runner import DbtBuildError, run_dbt
    from trackway.transform.plan_models import build_with_plan

    # `trackway transform build --help` is this command's help; dbt's own is `trackway transform build -- --help`.
    ours = args.dbt_args[: args.dbt_args.index("--")] if "--" in args.dbt_args else args.dbt_args
    if {"-h", "--help"} & set(ours):
        args.help_parser.print_help()
        return 0
    # Any selection of the caller's (`--select x` or `--select=x`) is run as given, analytics_x included.
    flags = ("-s", "-m", "--select", "--models", "--selector", "--exclude")
    selects = any(a.split("=", 1)[0] in flags for a in args.dbt_args)
    try:
        if args.dbt_command == "compile":
            return _compile(args)
        if args.dbt_command == "build" and not selects:
            reports = build_with_plan(load_settings(), *[a for a in args.dbt_args if a != "--"])
        else:
            reports = [run_dbt(load_settings(), args.dbt_command, *args.dbt_args)]
    except (DbtBuildError, PlanNotDeployed) as exc:
        print(f"trackway transform: {exc}", file=sys.stderr)
        return 1
    for report in reports:
        print(report.summary())
    return 0


def _compile(args: argparse.Namespace) -> int:
    """`trackway transform compile`: the project copy and the manifest events_transform loads (adr/0014)."""
    from trackway.transform.manifest import compile_manifest

    extra = [a for a in args.dbt_args if a != "--"]
    if extra not in ([], ["--force"]):
        raise SystemExit(
            f"trackway transform compile: unexpected {' '.join(extra)}; it takes only --force "
            "(for dbt's own `dbt compile`, run dbt directly)"
        )
    result = compile_manifest(load_settings(), force=bool(extra))
    done = "compiled" if result.compiled else "current already, not recompiled (--force to recompile)"
    print(f"dbt manifest {done}: {result.manifest} ({result.seconds:.1f}s)")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from trackway.status import manifest_state, stage_counts, status_json, status_rows, status_table

    settings = load_settings()
    rows = status_rows(stage_counts(settings))  # a missing warehouse is reported by main()
    manifest = manifest_state(settings)
    if args.json:
        data = status_json(settings.read_warehouse.display_url, rows)
        data["dbt_manifest"] = {"status": manifest.status, "detail": manifest.line()}
        print(json.dumps(data, indent=2))
        return 0
    print(f"warehouse: {settings.read_warehouse.display_url}")
    print(status_table(rows))
    print(manifest.line())
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    from trackway.status import format_table
    from trackway.warehouse import ReadOnlyQueryError, open_warehouse

    settings = load_settings()
    with open_warehouse(settings.read_warehouse, read_only=True) as wh:
        try:
            headers, rows = wh.query_with_headers(args.sql, limit=args.limit)
        except ReadOnlyQueryError as exc:
            print(f"trackway query: refused: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # the database's own message is the useful part
            print(f"trackway query: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    limited = len(rows) == args.limit
    if args.json:
        result = {"columns": list(headers), "rows": [list(row) for row in rows], "limited": limited}
        print(json.dumps(result, default=_json_value))
        return 0
    print(format_table(headers, rows, indent=""))
    print(f"({len(rows)} rows{', limited' if limited else ''})")
    return 0


def _cmd_warehouse(args: argparse.Namespace) -> int:
    """`trackway warehouse grant`: one PostgreSQL role per job (docs/reference/warehouse-roles.md)."""
    from trackway.warehouse.roles import GrantError, grant, grant_statements, job_roles

    settings = load_settings()
    admin = settings.warehouse
    roles = job_roles(
        admin,
        {
            "load": ("TRACKWAY_LOAD_WAREHOUSE_URL", settings.load_warehouse),
            "transform": ("TRACKWAY_TRANSFORM_WAREHOUSE_URL", settings.transform_warehouse),
            "read": ("TRACKWAY_READ_WAREHOUSE_URL", settings.read_warehouse),
        },
    )
    # The schemas app_sync writes: app, and any other the sources file's databases name.
    app_schemas = tuple(dict.fromkeys(["app", *(d.schema for d in settings.app_databases())]))
    if args.dry_run:
        print(f"-- as {admin.display_url}; passwords masked. First, for each role that does not exist yet:")
        print("\n".join(f'-- CREATE ROLE "{role.name}";' for role in roles.values()))
        statements = grant_statements(
            admin.database or "", roles, settings.typed_schema, masked=True, app_schemas=app_schemas
        )
        for statement in statements:
            print(statement.as_string() + ";")
        return 0
    try:
        grant(admin, roles, settings.typed_schema, app_schemas)
    except GrantError as exc:
        print(f"trackway warehouse grant: {exc}", file=sys.stderr)
        return 1
    print(f"roles granted on {admin.display_url}:")
    for role in roles.values():
        print(f"  {role.job:<10} {role.name:<20} {_ROLE_JOBS[role.job]}")
    return 0


_ROLE_JOBS = {
    "load": "owns schema raw (landing tables, ledger) and app (the product's tables, app_sync); nothing else",
    "transform": "reads raw.events_raw; owns dbt's schemas; may create schemas",
    "read": "reads analytics schemas, raw's ledger and lineage columns; sessions read-only",
}


def _json_value(value: object) -> object:
    """What json cannot encode itself: times as ISO 8601, decimals as numbers, the rest as text."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _cmd_env(args: argparse.Namespace) -> int:
    from trackway.orchestration.airflow_env import shell_exports

    print(shell_exports(load_settings()))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from trackway.demo.runner import DemoError, run_demo
    from trackway.stack.state import running_stack

    running = running_stack(load_settings())
    if running is not None:  # the demo wipes its home: never under a running stack
        print(
            f"trackway demo: a stack is running for TRACKWAY_HOME={running.home} (`make up`, pid {running.pid}); "
            "stop it first (`make down`) or give the demo another TRACKWAY_HOME",
            file=sys.stderr,
        )
        return 1
    try:
        return run_demo(people=args.people, seed=args.seed)
    except DemoError as exc:
        print(f"\ntrackway demo failed: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trackway",
        description="Trackway: Segment-compatible collector, Airflow loads and dbt models for product analytics.",
        epilog="Configuration comes from TRACKWAY_* environment variables: `trackway config check`.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    collect = sub.add_parser(
        "collect",
        help="run the Segment-compatible HTTP collector",
        description="Serve the Segment HTTP tracking API (/v1/batch, /v1/import, /v1/track, /v1/page, "
        "/v1/screen, /v1/identify, /v1/group, /v1/alias; GET /health for liveness, /openapi.json for the API "
        "description) with uvicorn worker processes. /metrics (Prometheus) and /health with the live counters of "
        "all workers are on a separate admin listener, 127.0.0.1:8082 by default, never open to browsers. "
        "Events are acknowledged only after they are fsync'd to the local spool (TRACKWAY_SPOOL_DIR, one "
        "folder per worker); spool segments are uploaded to TRACKWAY_RAW_URL as gzip'd NDJSON by hour received, "
        "invalid events of a batch to its quarantine/ folder. SIGTERM/SIGINT uploads everything, then exits; "
        "SIGHUP re-reads the write keys (TRACKWAY_WRITE_KEYS_FILE).",
    )
    collect.add_argument("--host", help="address to listen on (default TRACKWAY_COLLECTOR_HOST or 127.0.0.1)")
    collect.add_argument("--port", type=int, help="port to listen on (default TRACKWAY_COLLECTOR_PORT or 8080)")
    collect.add_argument(
        "--admin-host",
        help="address of the admin listener, /metrics and /health (default TRACKWAY_COLLECTOR_ADMIN_HOST or "
        "127.0.0.1; it never follows --host)",
    )
    collect.add_argument(
        "--admin-port", type=int, help="port of the admin listener (default TRACKWAY_COLLECTOR_ADMIN_PORT or 8082)"
    )
    collect.add_argument(
        "--workers",
        type=int,
        help="worker processes (default TRACKWAY_COLLECTOR_WORKERS or the number of CPUs)",
    )
    collect.add_argument(
        "--log-json", action="store_true", help="log one JSON object per line (default TRACKWAY_LOG_FORMAT=text)"
    )
    collect.set_defaults(func=_cmd_collect)

    load = sub.add_parser(
        "load",
        help="load raw objects of one hour (or a range) into raw.events_raw, without Airflow",
        description="Load the raw objects received in [--hour, --until) into raw.events_raw. "
        "Objects already loaded are skipped (exactly once), unless --reload. The events_load DAG "
        "does the same on a schedule; use this for one-off repairs.",
    )
    load.add_argument("--hour", type=_parse_hour, required=True, help="first hour, UTC, e.g. 2026-11-22T10")
    load.add_argument("--until", type=_parse_hour, help="end hour, exclusive (default: --hour + 1h)")
    load.add_argument("--reload", action="store_true", help="reload objects even if the ledger has them")
    load.set_defaults(func=_cmd_load)

    app_sync = sub.add_parser(
        "app-sync",
        help="copy the product databases of the sources file into schema app, without Airflow",
        description="Copy the tables of each database the sources file declares (kind: database) into the "
        "warehouse's app schema: new and changed rows merged on the primary key, deletes applied, schema changes "
        "reported (docs/app-data.md). The app_sync DAG does the same hourly.",
    )
    app_sync.add_argument("--database", help="only this database (its name in the sources file)")
    app_sync.set_defaults(func=_cmd_app_sync)

    transform = sub.add_parser(
        "transform",
        help="compile the dbt manifest (`compile`), or run dbt (default `dbt build`) against the warehouse",
        description="`trackway transform compile` is the ahead-of-time step: it writes the dbt project the "
        "events_transform DAG runs (with a tracking plan, a copy under $TRACKWAY_HOME/dbt/project holding the "
        "plan's generated models) and `dbt parse`s it into $TRACKWAY_HOME/dbt/manifest/manifest.json with a "
        "fingerprint.json beside it. The DAG only loads that manifest; when it is missing or stale the DAG "
        "fails to import and `trackway status` says so. Run compile after installing, after changing a dbt "
        "model or the tracking plan, upgrading dbt or switching warehouse type; it needs no warehouse "
        "connection, and does nothing when the manifest is current (--force recompiles). "
        "Any other COMMAND is passed to dbt against TRACKWAY_WAREHOUSE_URL, with extra arguments after --, "
        "e.g. `trackway transform build -- --select events`.",
    )
    transform.add_argument(
        "dbt_command",
        nargs="?",
        default="build",
        metavar="COMMAND",
        help="compile (the manifest, see above), or a dbt command passed through (default: build)",
    )
    transform.add_argument("dbt_args", nargs=argparse.REMAINDER, help="arguments passed to dbt")
    transform.set_defaults(func=_cmd_transform, help_parser=transform)

    status = sub.add_parser(
        "status",
        help="show row counts and freshness of each stage",
        description="Show what each stage of the pipeline holds, from the warehouse.",
    )
    status.add_argument("--json", action="store_true", help="print one JSON object (numbers, null if not there yet)")
    status.set_defaults(func=_cmd_status)

    query = sub.add_parser(
        "query",
        help="run a SQL query against the warehouse and print the result",
        description="Run one read-only SELECT as TRACKWAY_READ_WAREHOUSE_URL (default TRACKWAY_WAREHOUSE_URL), e.g. "
        'trackway query "SELECT event_name, count(*) FROM analytics.events GROUP BY 1". '
        "Writes, DDL, COPY, SET and a second statement are refused, and nothing outside the warehouse is read.",
    )
    query.add_argument("sql", help="the SQL to run")
    query.add_argument("--limit", type=int, default=100, help="rows to print at most (default 100)")
    query.add_argument("--json", action="store_true", help='print {"columns": [...], "rows": [[...]], "limited": ...}')
    query.set_defaults(func=_cmd_query)

    warehouse = sub.add_parser(
        "warehouse",
        help="warehouse administration: `grant` creates one PostgreSQL role per job",
        description="`trackway warehouse grant`, run as TRACKWAY_WAREHOUSE_URL's role (a superuser owning the "
        "database), creates or updates the roles named in TRACKWAY_LOAD_WAREHOUSE_URL, "
        "TRACKWAY_TRANSFORM_WAREHOUSE_URL and TRACKWAY_READ_WAREHOUSE_URL, with the passwords in those URLs, "
        "and grants each only what its job needs (docs/reference/warehouse-roles.md). Idempotent.",
    )
    warehouse.add_argument("action", choices=["grant"], help="grant: create or update the roles and their privileges")
    warehouse.add_argument(
        "--dry-run", action="store_true", help="print the SQL (passwords masked) instead of running it"
    )
    warehouse.set_defaults(func=_cmd_warehouse)

    env = sub.add_parser(
        "env",
        help='print shell exports for Airflow and Trackway (eval "$(trackway env)")',
        description="Print `export` lines that point the airflow CLI at Trackway's DAGs and "
        'embedded metadata DB, e.g. eval "$(trackway env)"; airflow dags test events_load 2026-11-22T11:00:00+00:00',
    )
    env.set_defaults(func=_cmd_env)

    demo = sub.add_parser(
        "demo",
        help="run the whole pipeline once on a generated day and print what it found",
        description="Start the collector, send a day of Nestful (home-rental marketplace) events "
        "through the Segment SDK, run events_load per hour and events_transform with "
        "`airflow dags test`, then print counts per stage and a few answers. Wipes and reuses "
        "TRACKWAY_HOME (default .trackway/) only if an earlier demo created it.",
    )
    demo.add_argument("--people", type=int, default=300, help="people in the generated day (default 300)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.set_defaults(func=_cmd_demo)

    from trackway.cli.plan import add_parsers as add_plan_parsers

    add_plan_parsers(sub)
    from trackway.cli.privacy import add_parsers as add_privacy_parsers

    add_privacy_parsers(sub)
    from trackway.config.commands import add_parsers as add_config_parsers

    add_config_parsers(sub)
    from trackway.cli.health import add_parsers as add_health_parsers

    add_health_parsers(sub)
    from trackway.cli.backfill import add_parsers as add_backfill_parsers

    add_backfill_parsers(sub)
    from trackway.cli.stack import add_parsers as add_stack_parsers

    add_stack_parsers(sub)
    from trackway.cli.report import add_parsers as add_report_parsers

    add_report_parsers(sub)

    from trackway.cli.bi import add_parsers as add_bi_parsers

    add_bi_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"trackway: configuration error: {exc}", file=sys.stderr)
        return 2
    except PlanError as exc:
        print(f"trackway {args.command}: tracking plan: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"trackway {args.command}: {exc}", file=sys.stderr)
        return 1
    except WarehouseBusy as exc:
        print(f"trackway {args.command}: {exc}", file=sys.stderr)
        return 75  # EX_TEMPFAIL: try again later
