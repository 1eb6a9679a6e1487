"""`trackway health`: the checks, with Nagios exit statuses (0 ok, 1 warn, 2 fail, 3 unknown)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from trackway.config import load_settings


def _as_of(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time; write e.g. 2026-12-02T11:00Z") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _cmd_health(args: argparse.Namespace) -> int:
    from trackway.health import report as render
    from trackway.health.observe import FAMILIES, run_checks

    families = tuple(args.check) if args.check else FAMILIES
    try:
        result = run_checks(load_settings(), as_of=args.as_of, families=families)
    except Exception as exc:  # Nagios: a check that cannot run is UNKNOWN (3), never OK
        error = f"{type(exc).__name__}: {exc}"
        if args.json:
            print(json.dumps({"state": "unknown", "exit_status": 3, "error": error, "checks": []}, indent=2))
        else:
            print(f"health: UNKNOWN: the checks could not run: {error}")
            print("what to do: trackway config check; is the warehouse reachable? (docs/runbook.md#unreadable)")
        return 3
    if args.prometheus:
        render.write_prometheus(result, args.prometheus)
    if args.json:
        print(json.dumps(render.as_json(result), indent=2))
    else:
        print(render.table(result))
    return int(result.state)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from trackway.health.observe import FAMILIES

    health = sub.add_parser(
        "health",
        help="check freshness, volume, stopped events, spikes, damaged objects, dbt tests and erasure deadlines; "
        "exit 0/1/2 (ok/warn/fail)",
        description=(
            "Judge the pipeline from the warehouse, the load ledger, the erasure ledger, the spool and the "
            "collector's metrics (never "
            "from Airflow, so a stopped scheduler shows as stale). Exit status: 0 ok, 1 warn, 2 fail, 3 unknown "
            "(Nagios), for cron jobs and probes. Each problem names its section of docs/runbook.md. Thresholds: "
            "TRACKWAY_HEALTH_* (trackway config check --component health)."
        ),
    )
    health.add_argument("--json", action="store_true", help="print the checks as JSON")
    health.add_argument(
        "--prometheus",
        type=Path,
        metavar="FILE",
        help="also write the results as a Prometheus textfile (node_exporter's textfile collector), atomically",
    )
    health.add_argument(
        "--check",
        action="append",
        choices=FAMILIES,
        metavar="FAMILY",
        help=f"only this family of checks (repeatable): {', '.join(FAMILIES)}",
    )
    health.add_argument(
        "--as-of", type=_as_of, metavar="TIME", help="judge as if it were this time (UTC), e.g. to replay an incident"
    )
    health.set_defaults(func=_cmd_health)
