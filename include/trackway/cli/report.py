"""`trackway report`: the metrics as one self-contained HTML file (docs/report.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trackway.config import load_settings


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not 1 <= value <= 3660:
        raise argparse.ArgumentTypeError("--days must be between 1 and 3660")
    return value


def _cmd_report(args: argparse.Namespace) -> int:
    from trackway.report import write_report

    settings = load_settings()
    out = args.out or settings.report_path or Path("report.html")
    days = args.days or settings.report_days
    progress = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    result = write_report(settings, out, days=days, progress=progress)
    print(result.line())
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser(
        "report",
        help="write the product metrics as one self-contained HTML file (no BI server needed)",
        description=(
            "Write one HTML file with the product metrics and their charts: active people and DAU/MAU, top "
            "events, sessions and their length, page paths, funnels, retention cohorts, experiments, "
            "tracking-plan health and, where analytics_x has them, listing views by neighbourhood. The charts "
            "are inline SVG and the page has no script: it opens offline and fetches nothing. It reads the "
            "marts as TRACKWAY_READ_WAREHOUSE_URL (default TRACKWAY_WAREHOUSE_URL) on a read-only connection; "
            "a mart that is missing or empty gets a note in the report. Set TRACKWAY_REPORT_PATH to have "
            "events_transform write it after each run."
        ),
    )
    report.add_argument("--out", type=Path, help="the file to write (default TRACKWAY_REPORT_PATH, else ./report.html)")
    report.add_argument(
        "--days",
        type=_days,
        help="days covered, ending with the latest day that has events (default TRACKWAY_REPORT_DAYS, 30)",
    )
    report.add_argument("--quiet", action="store_true", help="no progress lines on stderr; only the result line")
    report.set_defaults(func=_cmd_report)
