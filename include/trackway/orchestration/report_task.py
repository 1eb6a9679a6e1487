"""events_transform's last task: the HTML report (trackway.report), when TRACKWAY_REPORT_PATH asks for it."""

from __future__ import annotations

import logging
from typing import Any

from trackway.config import load_settings

log = logging.getLogger(__name__)


def report_after_run() -> dict[str, Any]:
    """Write the report where TRACKWAY_REPORT_PATH says; without it, do nothing and say so.

    It runs after ``publish``, so a report that cannot be written fails only this
    task: the asset event that wakes downstream DAGs is already out.
    """
    from trackway.report import write_report

    settings = load_settings()
    if settings.report_path is None:
        log.info("no report: TRACKWAY_REPORT_PATH is not set (docs/report.md)")
        return {"report": None}
    result = write_report(settings, settings.report_path, days=settings.report_days, progress=log.info)
    log.info(result.line())
    return {"report": str(result.path), "bytes": result.bytes, "charts": result.charts, "notes": result.notes}
