"""The ``trackway`` command: one entry point for operators and the demo."""

from __future__ import annotations

import argparse
import sys

from trackway.config import ConfigError, load_settings


def _cmd_collect(args: argparse.Namespace) -> int:
    from trackway.collector.app import run_collector

    settings = load_settings()
    return run_collector(settings, host=args.host or settings.collector_host, port=args.port or settings.collector_port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trackway",
        description="Trackway: Segment-compatible collector, Airflow loads and dbt models for product analytics.",
        epilog="Configuration comes from TRACKWAY_* environment variables; see README.md.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    collect = sub.add_parser(
        "collect",
        help="run the Segment-compatible HTTP collector",
        description="Serve the Segment HTTP tracking API (/v1/batch, /v1/track, ...). "
        "Events are acknowledged only after they are fsync'd to the local spool; "
        "spool segments are uploaded to TRACKWAY_RAW_URL as gzip'd NDJSON by hour received.",
    )
    collect.add_argument("--host", help="address to listen on (default TRACKWAY_COLLECTOR_HOST or 127.0.0.1)")
    collect.add_argument("--port", type=int, help="port to listen on (default TRACKWAY_COLLECTOR_PORT or 8080)")
    collect.set_defaults(func=_cmd_collect)
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


if __name__ == "__main__":
    sys.exit(main())
