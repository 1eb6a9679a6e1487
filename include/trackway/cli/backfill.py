"""`trackway backfill`: see per hour what a backfill would load, then load it (through Airflow when it runs)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta

from trackway.config import load_settings


def _cmd_backfill(args: argparse.Namespace) -> int:
    from trackway.cli import _parse_hour
    from trackway.load.backfill import backfill_plan
    from trackway.rawdata.partitions import hour_floor
    from trackway.status import format_table

    start = hour_floor(_parse_hour(args.start))
    end = hour_floor(_parse_hour(args.to)) + timedelta(hours=1)  # --to is the last hour, inclusive
    if end <= start:
        raise SystemExit("trackway backfill: --to must not be before --from")
    settings = load_settings()
    plans = backfill_plan(settings, start, end)
    counts = [(p.found, p.loaded, p.will_load, p.damaged) for p in plans]
    total = [sum(column) for column in zip(*counts, strict=True)] if counts else [0, 0, 0, 0]
    rows = [(p.hour, *c) for p, c in zip(plans, counts, strict=True)] + [("total", *total)]
    print(format_table(["hour (UTC)", "objects", "loaded already", "to load", "damaged"], rows))
    if args.dry_run:
        print(f"dry run: nothing loaded; {total[2]} object(s) would be loaded. Run again without --dry-run to load.")
        return 0
    if not args.direct:
        through = _through_airflow(settings, start, end)
        if through is None:
            return 1
        if through:
            return 0
    from trackway.load.loader import load_interval

    report = load_interval(
        settings, start, end, triggered_by="cli:backfill", reload=args.reload, progress=lambda m: print(m, flush=True)
    )
    problem = report.needs_attention()
    if args.transform:
        from trackway.transform.dbt_runner import DbtBuildError, run_dbt

        print("==> dbt build: the incremental models take in the rows just loaded (their loaded_at is now)")
        try:
            print(run_dbt(settings, "build").summary())
        except DbtBuildError as exc:
            print(f"trackway backfill: the transform failed: {exc}", file=sys.stderr)
            return 1
    if problem:
        print(f"trackway backfill: needs attention: {problem}", file=sys.stderr)
        return 1
    return 0


def _airflow(settings):
    """TRACKWAY_AIRFLOW_API_URL's Airflow; without it, the stack `trackway up` runs for this TRACKWAY_HOME."""
    from pydantic import SecretStr

    from trackway.config.registry import DagsSection
    from trackway.orchestration.airflow_api import AirflowApi
    from trackway.stack.state import running_stack, stack_login

    if not settings.section(DagsSection).airflow_api_url:
        stack = running_stack(settings)
        if stack is not None and stack.airflow_url.startswith("http"):
            user, password = stack_login(stack) or (None, None)
            print(f"Airflow of the running stack (trackway up): {stack.airflow_url}")
            return AirflowApi(stack.airflow_url, user, SecretStr(password) if password else None)
    return AirflowApi.from_settings(settings)


def _through_airflow(settings, start: datetime, end: datetime) -> bool | None:
    """Create the backfill in Airflow when its scheduler runs: True; False (load directly) when there is none.

    None when Airflow refused it (another backfill running, an hour not over yet, no access): the reason is
    printed and nothing is loaded here behind a scheduler that is running.
    """
    from trackway.orchestration.airflow_api import AirflowRefused, AirflowUnavailable

    try:
        api = _airflow(settings)
        if not api.scheduler_healthy():
            print("Airflow's scheduler is not healthy: loading directly instead")
            return False
    except AirflowUnavailable as exc:
        print(f"not through Airflow ({exc}): loading directly")
        return False
    try:
        backfill = api.create_backfill("events_load", start, end - timedelta(hours=1))
    except (AirflowRefused, AirflowUnavailable) as exc:
        # The scheduler runs: loading here beside it is not what was asked (and Airflow said why not).
        print(
            f"trackway backfill: Airflow refused the backfill: {exc}\n"
            "Nothing was loaded. Airflow only backfills hours that are over, one backfill per DAG at a time; "
            "--direct loads here instead (the scheduler's hourly run also loads the current hour).",
            file=sys.stderr,
        )
        return None
    print(
        f"Airflow backfill {backfill.get('id')} created for events_load, {start:%Y-%m-%dT%H} to "
        f"{end - timedelta(hours=1):%Y-%m-%dT%H}: its runs load the hours, and each load's asset event "
        "triggers events_transform. Follow it in Airflow's UI (Browse > Backfills)."
    )
    return True


def add_parsers(sub: argparse._SubParsersAction) -> None:
    backfill = sub.add_parser(
        "backfill",
        help="show per hour what a backfill would load (--dry-run), then load it, through Airflow when it runs",
        description=(
            "Backfill the hours --from .. --to (UTC, both included). --dry-run prints, from the object store and "
            "the ledger, per hour: objects found, loaded already, to load, damaged; nothing is written. Without it, "
            "when TRACKWAY_AIRFLOW_API_URL (or else the stack `trackway up` runs for this TRACKWAY_HOME) names an "
            "Airflow whose scheduler is healthy, an Airflow backfill of events_load is created (it shows in the UI "
            "and triggers the transform; if Airflow refuses it, the reason is printed and nothing is loaded, exit 1); "
            "otherwise the hours are loaded directly, exactly once through the ledger."
        ),
    )
    backfill.add_argument("--from", dest="start", required=True, metavar="HOUR", help="first hour, e.g. 2026-11-22T10")
    backfill.add_argument("--to", required=True, metavar="HOUR", help="last hour, included, e.g. 2026-11-22T18")
    backfill.add_argument("--dry-run", action="store_true", help="only show what would be loaded")
    backfill.add_argument(
        "--transform", action="store_true", help="after loading directly, run the dbt build for what was loaded"
    )
    backfill.add_argument("--reload", action="store_true", help="load objects again even if the ledger has them")
    backfill.add_argument("--direct", action="store_true", help="load here even when Airflow's scheduler runs")
    backfill.set_defaults(func=_cmd_backfill)
