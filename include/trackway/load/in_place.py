"""Loads that the warehouse runs itself, reading the raw store directly (BigQuery load jobs from gs://).

The loader still lists the interval's objects and keeps the same ledger rules
(exactly once per object version, lookback hours only catch late objects);
only the reading and parsing move into the warehouse, so no event passes
through the Airflow worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from trackway.load.report import LoadReport
from trackway.rawdata.records import PendingObject
from trackway.rawdata.schema import QUARANTINE_TABLE

log = logging.getLogger(__name__)


def load_in_place(
    wh: Any,
    objects: list,
    urls: list[str],
    fingerprints: list[tuple[str, int]],
    known: dict[str, str],
    report: LoadReport,
    *,
    reload: bool,
    say: Callable[[str], None],
) -> None:
    """Hand every new or changed object to ``wh.load_in_place`` and add the results to ``report``."""
    pending = []
    for item, url, (fingerprint, size) in zip(objects, urls, fingerprints, strict=True):
        loaded = known.get(url) == fingerprint
        if loaded and not (reload and item.in_interval):
            report.objects_skipped += 1
            continue
        pending.append(
            PendingObject(url=url, fingerprint=fingerprint, size_bytes=size, table=item.table, replace=loaded)
        )
    if not pending:
        return
    tables = {p.url: p.table for p in pending}
    loads = wh.load_in_place(pending, load_id=report.load_id, progress=say)
    if len(loads) < len(pending):  # committed by a concurrent load since the ledger was read: not loaded twice
        report.objects_skipped += len(pending) - len(loads)
        say(f"  {len(pending) - len(loads)} objects were loaded by a concurrent load meanwhile; skipped")
    for load in loads:
        report.objects_loaded += 1
        report.erased_lines += load.erased
        report.parse_errors += load.parse_errors
        report.blank_lines += load.blank_lines
        if load.object_error:
            report.object_errors.append(f"{load.source_object}: {load.object_error}")
        if tables[load.source_object] is QUARANTINE_TABLE:
            report.quarantined_rows += load.rows
        else:
            report.rows_loaded += load.rows
