"""Load one data interval of raw objects into raw.events_raw.

Exactly once per object: the ledger ``raw.loaded_objects`` holds each
object's fingerprint, and an object is (re)loaded only when it is new, has
changed, or ``reload`` is asked for. Each object's rows are replaced in one
transaction, so reruns and backfills never double-load and a crash mid-load
leaves no half object behind.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, cast

from trackway.config import Settings, Source
from trackway.load.in_place import load_in_place
from trackway.load.late import objects_beyond_sweep, sweep_horizon
from trackway.load.paths import RawPath, storage_path
from trackway.load.report import LoadReport
from trackway.load.sources import arrival_time, list_source_objects
from trackway.load.subjects import erased_subjects, retention_at_load
from trackway.rawdata.partitions import hour_floor, hours_between, partition_of, partition_path
from trackway.rawdata.records import Judge, LoadRun, RawObject, object_fingerprint
from trackway.rawdata.schema import EVENTS_RAW_TABLE, QUARANTINE_TABLE, RawTable
from trackway.warehouse import open_warehouse

log = logging.getLogger(__name__)


def object_url(path: RawPath) -> str:
    """The object's address without the Airflow connection id, e.g. s3://bucket/key or file:///path."""
    return f"{path.protocol}://{path.path}" if path.protocol != "file" else f"file://{path.path}"


@dataclass(frozen=True)
class Listed:
    """One object found by a listing: where it is, whether it is in the run's interval, where it goes."""

    path: RawPath
    in_interval: bool
    table: RawTable
    source: Source | None
    #: The listing's own metadata (size, ETag or md5): no extra request per object.
    info: dict
    hour: datetime | None = None


def _days(hours: list[datetime]) -> list[datetime]:
    return sorted({h.replace(hour=0) for h in hours})


def _list_partitioned(
    root: RawPath, conn_id: str | None, days: list[datetime], wanted: Callable[[datetime], bool]
) -> list[tuple[RawPath, datetime, dict]]:
    """Objects of ``root/dt=<day>/hour=HH/`` for each day, one (paginated) prefix listing per day.

    A day's listing returns its objects' metadata with their keys (S3 ListObjectsV2, GCS list),
    so sweeping a week costs about 8 requests per stream, not one per hour or per object.
    """
    found = []
    fs = root.fs
    base = root.path.rstrip("/")
    for day in days:
        try:
            listing = fs.find(f"{base}/dt={day:%Y-%m-%d}/", detail=True)
        except FileNotFoundError:
            continue
        for key, info in sorted(listing.items()):
            if info.get("type", "file") != "file":
                continue
            where = partition_of(key[len(base) + 1 :])
            if where is None or not wanted(where[0]):
                continue
            path = storage_path(f"{root.protocol}://{key}", conn_id)
            found.append((path, where[0], info))
    return found


def list_interval_objects(
    settings: Settings, start: datetime, end: datetime, *, now: datetime | None = None, sweep: bool = True
) -> tuple[list[str], list[Listed]]:
    """The hours to scan and their objects, in a stable order.

    Events land in raw.events_raw; what the collector quarantined lands in
    raw.events_quarantine, so bad input is visible in SQL too. Besides the interval
    and its lookback hours, every run sweeps the partitions of the last
    ``TRACKWAY_LOAD_SWEEP_DAYS`` days: objects uploaded late (an object-store outage,
    a collector restarting with spool leftovers, a stopped scheduler) are loaded by the
    next ordinary run; the ledger keeps that exactly once. Objects of the sources
    file's sources follow, each source in its own layout (interval and lookback only).
    ``sweep=False`` (micro-batches, every few seconds) lists the interval and its
    lookback only: the hourly run sweeps.
    """
    interval_hours = set(hours_between(start, end))
    scan = hours_between(start - timedelta(hours=settings.load_lookback_hours), end)
    scan_hours = set(scan)
    horizon = sweep_horizon(settings, now) if sweep else datetime.max.replace(tzinfo=UTC)
    swept = hours_between(horizon, max(end, hour_floor(now or datetime.now(UTC)) + timedelta(hours=1))) if sweep else []

    def wanted(hour: datetime) -> bool:
        return hour in scan_hours or hour >= horizon

    objects: list[Listed] = []
    for url, table in ((settings.events_url, EVENTS_RAW_TABLE), (settings.quarantine_url, QUARANTINE_TABLE)):
        root = storage_path(url, settings.raw_conn_id)
        # fsspec reuses filesystem instances and caches listings forever (gcsfs, s3fs):
        # without this a long-lived process would not see new or rewritten objects.
        root.fs.invalidate_cache()
        for path, hour, info in _list_partitioned(root, settings.raw_conn_id, _days(scan + swept), wanted):
            objects.append(Listed(path, hour in interval_hours, table, None, info, hour))
    for source in settings.sources():
        for path, in_interval in list_source_objects(source, scan, interval_hours):
            objects.append(Listed(path, in_interval, EVENTS_RAW_TABLE, source, {}))
    return [partition_path(h) for h in scan], objects


def current_fingerprint(item: Listed) -> str:
    """The object's fingerprint as the ledger would record it now (from the listing's metadata)."""
    return object_fingerprint(_stat(item))[0]


def source_judge(settings: Settings) -> Judge | None:
    """The tracking plan's verdict for records of the sources file's objects (adr/0029); None without a plan.

    Those records never passed the collector, so the loader judges them with the same
    validator and writes the verdict to ``plan_verdict``. A plan that does not load fails
    the load of those objects: records loaded without their verdict would never get one.
    """
    if settings.plan_dir is None:
        return None
    from trackway.plan.model import load_plan
    from trackway.plan.validate import CompiledPlan
    from trackway.plan.verdict import record_judge

    compiled = CompiledPlan(load_plan(settings.plan_dir))
    return record_judge(compiled, settings.plan_modes, settings.plan_default_mode)


def _stat(item: Listed) -> dict:
    """The listing's metadata when it has the fingerprint's fields; else one stat request."""
    return item.info if item.info.get("size") is not None else item.path.fs.info(item.path.path)


def _judge(settings: Settings, built: list[Judge | None]) -> Judge | None:
    if not built:
        built.append(source_judge(settings))
    return built[0]


def load_interval(
    settings: Settings,
    start: datetime,
    end: datetime,
    *,
    triggered_by: str = "cli",
    reload: bool = False,
    progress: Callable[[str], None] | None = None,
    sweep: bool = True,
) -> LoadReport:
    """Load every object received in [start, end), plus late objects of the lookback hours.

    Objects of the lookback hours that are already in the ledger are skipped,
    so an hourly schedule also picks up segments a collector uploaded late
    (after a crash or an outage) without loading anything twice. ``sweep=False``:
    no sweep of older partitions and no look for late pointers (micro-batches;
    the hourly run does both).
    """
    started = datetime.now(UTC)
    load_id = f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    hours, objects = list_interval_objects(settings, start, end, sweep=sweep)
    lookback_hours = set(hours_between(start - timedelta(hours=settings.load_lookback_hours), end))
    report = LoadReport(load_id=load_id, interval_start=start, interval_end=end, hours_scanned=hours)
    report.objects_found = len(objects)
    say = progress or (lambda msg: log.info("%s", msg))
    say(f"load {load_id}: {len(objects)} objects in {', '.join(hours)}")
    roots = {EVENTS_RAW_TABLE.name: settings.events_url, QUARANTINE_TABLE.name: settings.quarantine_url}

    with open_warehouse(settings.load_warehouse) as wh:
        wh.ensure_raw_tables()
        # Erasure requests: every load, reload and backfill drops erased subjects' lines (docs/privacy.md).
        erased = erased_subjects(settings, wh)
        if erased is not None:
            wh.erased, wh.loaded_ids = erased, set()
        # Retention: lines past it are deleted or sanitised as they load, as the privacy run left them.
        wh.retention = retention_at_load(settings, wh)
        urls = [object_url(item.path) for item in objects]
        known = wh.loaded_fingerprints(urls)
        if getattr(wh, "loads_in_place", False):
            # BigQuery: load jobs read the collector's gs:// objects themselves. Objects of
            # extra sources (Firehose, Segment S3, field mappings) need Trackway's parser,
            # so they take the ordinary path below.
            in_place = [i for i, item in enumerate(objects) if item.source is None]
            load_in_place(
                wh,
                [objects[i] for i in in_place],
                [urls[i] for i in in_place],
                [object_fingerprint(_stat(objects[i])) for i in in_place],
                known,
                report,
                roots=roots,
                reload=reload,
                say=say,
            )
            keep = sorted(set(range(len(objects))) - set(in_place))
            objects, urls = [objects[i] for i in keep], [urls[i] for i in keep]
        pending: list[tuple[int, RawObject, RawTable, str]] = []
        judges: list[Judge | None] = []  # built at the first extra source's object, then reused

        def flush() -> None:
            # Objects of one table go to the warehouse together (DuckDB reads them in parallel);
            # each one's rows and ledger row still commit together.
            while pending:
                table = pending[0][2]
                group = [item for item in pending if item[2] is table][: wh.parallel_objects]
                for item in group:
                    pending.remove(item)
                loads = wh.load_objects([obj for _, obj, _, _ in group], table)
                for (n, obj, _, name), load in zip(group, loads, strict=True):
                    root = obj.source.url if obj.source else roots[table.name]
                    report.count(load, root=root, quarantined=table is QUARANTINE_TABLE)
                    say(
                        f"  [{n}/{len(objects)}] {name}: {load.rows:,} rows -> raw.{table.name}, "
                        f"{load.parse_errors} unparseable"
                    )
                    if load.object_error:
                        log.warning("damaged raw object %s: %s", obj.source_object, load.object_error)

        for n, (item, url) in enumerate(zip(objects, urls, strict=True), start=1):
            path, in_interval, table, source = item.path, item.in_interval, item.table, item.source
            stat = _stat(item)
            fingerprint, size = object_fingerprint(stat)
            # reload applies to the interval itself; lookback hours only catch late objects.
            if known.get(url) == fingerprint and not (reload and in_interval):
                report.objects_skipped += 1
                continue
            obj = RawObject(
                source_object=url,
                fingerprint=fingerprint,
                size_bytes=size,
                load_id=load_id,
                loaded_at=datetime.now(UTC),
                open=cast(Callable[[], IO[bytes]], partial(path.open, "rb")),
                local_path=Path(path.path) if path.protocol == "file" else None,
                source=source,
                received_at=arrival_time(stat, start) if source else None,
                judge=_judge(settings, judges) if source and table is EVENTS_RAW_TABLE else None,
            )
            if not in_interval and item.hour is not None and item.hour not in lookback_hours:
                report.late_objects_loaded += 1
                say(f"  late object swept in: {url} (hour {item.hour:%Y-%m-%dT%H})")
            pending.append((n, obj, table, path.name))
            if len(pending) >= wh.parallel_objects:
                flush()
        flush()
        if erased is not None and wh.loaded_ids:
            wh.add_id_hashes(erased.key, wh.loaded_ids)  # for the dbt test that no erased subject is in a mart
        report.objects_beyond_sweep = objects_beyond_sweep(settings, wh.loaded_fingerprints) if sweep else []
        for url, hour in report.objects_beyond_sweep:
            log.warning("late object older than the sweep, not loaded: %s (trackway load --hour %s)", url, hour)
        finished = datetime.now(UTC)
        report.seconds = (finished - started).total_seconds()
        wh.record_load_run(
            LoadRun(
                load_id=load_id,
                interval_start=start,
                interval_end=end,
                started_at=started,
                finished_at=finished,
                triggered_by=triggered_by,
                objects_found=report.objects_found,
                objects_loaded=report.objects_loaded,
                objects_skipped=report.objects_skipped,
                rows_loaded=report.rows_loaded,
                parse_errors=report.parse_errors,
            )
        )
    say(report.summary())
    return report
