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
    roots: dict[str, str],
    reload: bool,
    say: Callable[[str], None],
) -> None:
    """Hand every new or changed object to ``wh.load_in_place`` and add the results to ``report``.

    ``roots`` maps each raw table's name to the root its objects are read from (lineage).
    """
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
        table = tables[load.source_object]
        report.count(load, root=roots[table.name], quarantined=table is QUARANTINE_TABLE)
