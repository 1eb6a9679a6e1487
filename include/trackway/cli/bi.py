"""`trackway bi`: Apache Superset with the repository's dashboards (docs/bi.md, adr/0032)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from trackway.config import load_settings


def _cmd_init(args: argparse.Namespace) -> int:
    from trackway.bi.bundle import BundleError
    from trackway.bi.server import ADMIN_USER, init

    try:
        report = init(load_settings(), args.venv)
    except BundleError as exc:
        print(f"trackway bi init: {exc}", file=sys.stderr)
        return 1
    if report.snapshot:
        print(report.snapshot.line())
    counts = ", ".join(f"{n} {kind}" for kind, n in report.imported.items())
    print(f"Superset provisioned from include/superset in {report.seconds:.1f}s: {counts}")
    print(f"  warehouse: {report.rendered.database_uri} (read-only)")
    print(f"  log in as {ADMIN_USER!r}; the password is in {report.password_file} (mode 0600)")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from trackway.bi.bundle import BundleError, render
    from trackway.transform.manifest import manifest_path

    settings = load_settings()
    try:
        rendered = render(settings, args.out, manifest_path(settings))
    except BundleError as exc:
        print(f"trackway bi render: {exc}", file=sys.stderr)
        return 1
    print(f"bundle written to {rendered.path}: " + ", ".join(f"{n} {k}" for k, n in rendered.counts.items()))
    return 0


def _cmd_snapshot(args: argparse.Namespace) -> int:
    from trackway.warehouse.snapshot import publish_snapshot

    settings = load_settings()
    snapshot = publish_snapshot(settings.transform_warehouse, settings.home)
    print(snapshot.line() if snapshot else f"no snapshot: BI reads {settings.read_warehouse.kind} directly")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:  # returns only on an error: gunicorn replaces the process
    from trackway.bi.bundle import BundleError
    from trackway.bi.server import serve_command

    if not args.allow_remote and not ipaddress.ip_address(args.host).is_loopback:
        print(
            f"trackway bi serve: {args.host} is not a loopback address; Superset on the embedded default listens "
            "on 127.0.0.1 only (pass --allow-remote behind TLS and a proxy, or use the compose file)",
            file=sys.stderr,
        )
        return 2
    try:
        argv, env = serve_command(load_settings(), args.host, args.port, args.venv)
    except BundleError as exc:
        print(f"trackway bi serve: {exc}", file=sys.stderr)
        return 1
    print(f"Superset on http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    os.execve(argv[0], argv, env)  # noqa: S606 - Superset replaces this process, as `make bi` expects


def _cmd_metabase_setup(args: argparse.Namespace) -> int:
    from trackway.bi.metabase import COMMAND, MetabaseError, MetabaseSetup, setup
    from trackway.transform.manifest import manifest_path

    settings = load_settings()
    try:
        config = MetabaseSetup.from_settings(settings, args.manifest or manifest_path(settings))
        print(f"waiting for Metabase at {config.url} ...", flush=True)
        report = setup(config, wait_seconds=args.wait, sync_timeout=args.sync_timeout)
    except MetabaseError as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return 1
    done = "completed with the admin " + repr(config.admin_email) if report.completed_setup else "already done"
    print(f"first-run setup: {done}")
    print(
        f"warehouse {config.database_name!r} {report.database} (id {report.database_id}): "
        f"{config.warehouse.display_url} (read-only)"
    )
    print(f"dbt models' and columns' descriptions pushed from {config.manifest}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from trackway.bi.server import DEFAULT_VENV

    bi = sub.add_parser(
        "bi",
        help="Apache Superset with the repository's dashboards: init, serve, render, snapshot; metabase-setup",
        description="Dashboards as code (docs/bi.md): `init` imports include/superset into Superset (from .venv-bi, "
        "`make bi-venv`) with the warehouse connection and dbt's descriptions filled in, idempotently; `serve` "
        "starts it on loopback; `render` writes the bundle only (the compose file imports it); `snapshot` "
        "publishes the read-only DuckDB copy Superset reads (events_transform does after each run).",
    )
    actions = bi.add_subparsers(dest="bi_command", metavar="ACTION", required=True)
    venv_help = f"Superset's environment (default {DEFAULT_VENV})"
    init = actions.add_parser("init", help="provision Superset: metadata DB, admin, database, datasets, dashboards")
    init.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=venv_help)
    init.set_defaults(func=_cmd_init)
    serve = actions.add_parser("serve", help="run Superset (gunicorn) on 127.0.0.1")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8088, help="port (default 8088)")
    serve.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    serve.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=venv_help)
    serve.set_defaults(func=_cmd_serve)
    render_parser = actions.add_parser("render", help="write the rendered bundle (YAML) to a folder")
    render_parser.add_argument("--out", type=Path, required=True, help="folder to write (replaced)")
    render_parser.set_defaults(func=_cmd_render)
    snapshot = actions.add_parser("snapshot", help="publish the read-only DuckDB snapshot BI reads")
    snapshot.set_defaults(func=_cmd_snapshot)
    metabase = actions.add_parser(
        "metabase-setup",
        help="set Metabase up without its wizard: admin, read-only warehouse, dbt docs (dbt-metabase)",
        description="Waits for Metabase (TRACKWAY_METABASE_URL) to be healthy, completes its first-run setup with "
        "TRACKWAY_METABASE_ADMIN_EMAIL/PASSWORD (once: a later run sees it done), adds the warehouse as "
        "TRACKWAY_READ_WAREHOUSE_URL's read-only role, and pushes the dbt models' and columns' descriptions "
        "with dbt-metabase. Refuses to run without the admin's credentials. Idempotent (docs/bi.md).",
    )
    metabase.add_argument("--manifest", type=Path, help="dbt manifest.json (default: `trackway transform compile`'s)")
    metabase.add_argument("--wait", type=float, default=600.0, help="seconds to wait for Metabase (default 600)")
    metabase.add_argument(
        "--sync-timeout",
        type=int,
        default=120,
        help="seconds dbt-metabase waits for Metabase's sync to find every model's table (default 120)",
    )
    metabase.set_defaults(func=_cmd_metabase_setup)
