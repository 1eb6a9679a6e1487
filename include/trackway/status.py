"""Pipeline numbers for people: what is in each stage, and how fresh it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from trackway.config import Settings
from trackway.load.late import objects_beyond_sweep
from trackway.warehouse import open_warehouse

if TYPE_CHECKING:
    from trackway.transform.manifest import ManifestState


@dataclass
class StageCounts:
    raw_rows: int = 0
    raw_parse_errors: int = 0
    objects_loaded: int = 0
    damaged_objects: int = 0
    #: Late objects older than the load's sweep that no ordinary run will load (need a backfill).
    objects_beyond_sweep: list[tuple[str, str]] = field(default_factory=list)  # (URL, hour)
    #: Spool segments the collector set aside after repeated failures (on this machine's spool).
    segments_set_aside: int = 0
    quarantined: int = 0
    events: int | None = None
    rejected: int | None = None
    latest_received_at: str | None = None
    latest_loaded_at: str | None = None
    last_load: tuple | None = None  # (interval_start, rows_loaded, objects_loaded, seconds)
    # (name, layout, objects loaded, rows, damaged objects) per source of the sources file
    sources: list[tuple[str, str, int, int, int]] = field(default_factory=list)

    @property
    def lag_seconds(self) -> float | None:
        """How far the warehouse is behind now: the newest event received that is loaded."""
        if not self.latest_received_at:
            return None
        try:
            received = datetime.fromisoformat(self.latest_received_at.replace("Z", "+00:00"))
        except ValueError:
            return None
        if received.tzinfo is None:
            received = received.replace(tzinfo=UTC)
        return (datetime.now(UTC) - received).total_seconds()

    @property
    def duplicates(self) -> int:
        """Raw rows that dedupe dropped (client retries, re-sent objects).

        Every raw row is either an event or a reject (unparseable lines included),
        so the rest are extra copies of a messageId.
        """
        if self.events is None:
            return 0
        return max(self.raw_rows - (self.rejected or 0) - self.events, 0)


def stage_counts(settings: Settings) -> StageCounts:
    counts = StageCounts()
    # The collector's spool, when it is on this machine (the embedded default): workers' .set-aside/ folders.
    counts.segments_set_aside = sum(1 for _ in settings.spool_dir.glob("*/.set-aside/*.sealed"))
    with open_warehouse(settings.read_warehouse, read_only=True) as wh:
        if not wh.table_exists("raw", "events_raw"):
            return counts
        counts.objects_beyond_sweep = objects_beyond_sweep(settings, wh.loaded_fingerprints)
        counts.raw_rows, counts.raw_parse_errors, counts.latest_received_at, latest_loaded_at = wh.query(
            "SELECT count(*), count(parse_error), max(received_at), max(loaded_at) FROM raw.events_raw"
        )[0]
        counts.latest_loaded_at = latest_loaded_at.isoformat() if latest_loaded_at else None
        counts.objects_loaded, counts.damaged_objects = wh.query(
            "SELECT count(*), count(object_error) FROM raw.loaded_objects"
        )[0]
        last = wh.query(
            "SELECT interval_start, rows_loaded, objects_loaded, finished_at, started_at "
            "FROM raw.load_runs ORDER BY finished_at DESC LIMIT 1"
        )
        if last:
            start, rows, objects, finished, started = last[0]
            counts.last_load = (f"{start:%Y-%m-%d %H:%M}", rows, objects, (finished - started).total_seconds())
        for source in settings.sources():
            prefix = source.url.rstrip("/") + "/"
            objects, rows, damaged = wh.query(
                "SELECT count(*), coalesce(sum(rows_loaded), 0), count(object_error) FROM raw.loaded_objects "
                "WHERE left(source_object, ?) = ?",
                [len(prefix), prefix],
            )[0]
            counts.sources.append((source.name, source.layout, int(objects), int(rows), int(damaged)))
        if wh.table_exists("raw", "events_quarantine"):
            counts.quarantined = wh.query("SELECT count(*) FROM raw.events_quarantine")[0][0]
        if wh.table_exists("analytics", "events"):
            counts.events = wh.query("SELECT count(*) FROM analytics.events")[0][0]
        if wh.table_exists("analytics", "events_rejected"):
            counts.rejected = wh.query("SELECT count(*) FROM analytics.events_rejected")[0][0]
    return counts


def manifest_state(settings: Settings) -> ManifestState:
    """events_transform's dbt manifest: current, stale or missing, and the command that fixes it."""
    from trackway.transform.manifest import check_manifest

    return check_manifest(settings)


@dataclass(frozen=True)
class StatusRow:
    """One line of ``trackway status``: the table shows label and value, ``--json`` key and value."""

    key: str  # stable, for scripts: "raw_rows", "source.web.objects_loaded"
    label: str  # for people; leading spaces nest it under the row above
    value: int | float | str | None


def status_rows(counts: StageCounts) -> list[StatusRow]:
    """Every figure of ``trackway status``, in display order; add a row here to show one more."""
    rows = [
        StatusRow("objects_loaded", "raw objects loaded", counts.objects_loaded),
        StatusRow("damaged_objects", "  damaged", counts.damaged_objects),
        StatusRow(
            "objects_beyond_sweep",
            "  late, older than the sweep: not loaded (trackway load --hour H)",
            len(counts.objects_beyond_sweep),
        ),
        StatusRow(
            "segments_set_aside",
            "spool segments set aside by the collector (see their .reason files)",
            counts.segments_set_aside,
        ),
    ]
    for name, layout, objects, loaded, damaged in counts.sources:
        rows += [
            StatusRow(f"source.{name}.objects_loaded", f"  source {name} ({layout}): objects", objects),
            StatusRow(f"source.{name}.rows_loaded", "    rows", loaded),
            StatusRow(f"source.{name}.damaged_objects", "    damaged objects", damaged),
        ]
    rows += [
        StatusRow("raw_rows", "rows in raw.events_raw", counts.raw_rows),
        StatusRow("raw_parse_errors", "  unparseable lines", counts.raw_parse_errors),
        StatusRow("quarantined", "rows in raw.events_quarantine", counts.quarantined),
        StatusRow("events", "rows in analytics.events", counts.events),
        StatusRow("duplicates", "  duplicates removed", counts.duplicates if counts.events is not None else None),
        StatusRow("rejected", "  rejected", counts.rejected),
        StatusRow("latest_received_at", "latest receivedAt loaded", counts.latest_received_at),
        StatusRow("lag_seconds", "lag (now - latest receivedAt)", _round(counts.lag_seconds)),
        StatusRow("latest_loaded_at", "latest load finished", counts.latest_loaded_at),
    ]
    if counts.last_load:
        start, loaded, objects, seconds = counts.last_load
        rows += [
            StatusRow("last_load.hour", "last load: hour (UTC)", start),
            StatusRow("last_load.rows", "  rows", loaded),
            StatusRow("last_load.objects", "  objects", objects),
            StatusRow("last_load.seconds", "  seconds", round(seconds, 1)),
            StatusRow("last_load.rows_per_second", "  rows/s", round(loaded / seconds) if seconds > 0 else None),
        ]
    return rows


def status_table(rows: list[StatusRow]) -> str:
    """Label beside value; None shows as "-" (an analytics table not built yet, nothing loaded yet)."""
    shown = [(row.label, "-" if row.value is None else _shown_value(row)) for row in rows]
    return format_table(["stage", "value"], shown)


def status_json(warehouse_url: str, rows: list[StatusRow]) -> dict:
    """``trackway status --json``: the same figures as the table, as numbers (null: not there yet)."""
    return {"warehouse": warehouse_url, **{row.key: row.value for row in rows}}


def _shown_value(row: StatusRow) -> int | float | str:
    if row.key == "lag_seconds" and isinstance(row.value, (int, float)):
        return format_duration(row.value)
    return row.value  # type: ignore[return-value]


def _round(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_table(headers: list[str], rows: list[tuple] | list[list], indent: str = "    ") -> str:
    """A plain aligned table, readable in a terminal and in CI logs.

    Each column is as wide as its widest cell. Numbers are right-aligned to the widest
    number of their column (or its header), text is left-aligned, so a long text value in
    a column does not push that column's numbers away from their labels.
    """
    cells = [[_fmt(v) for v in row] for row in rows]
    columns = range(len(headers))
    numbers = [[len(r[i]) for r in cells if _numeric(r[i])] for i in columns]
    number_widths = [max([len(str(headers[i])), *numbers[i]]) if numbers[i] else 0 for i in columns]
    widths = [max([len(str(headers[i])), number_widths[i]] + [len(r[i]) for r in cells]) for i in columns]
    last = len(headers) - 1

    def line(row: list[str]) -> str:
        parts = [
            c.rjust(number_widths[i]).ljust(widths[i] if i < last else 0)
            if _numeric(c)
            else c.ljust(widths[i] if i < last else 0)
            for i, c in enumerate(row)
        ]
        return indent + "  ".join(parts)

    lines = [line([str(h) for h in headers]), indent + "  ".join("-" * w for w in widths)]
    lines += [line(row) for row in cells]
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return "" if value is None else str(value)


def _numeric(text: str) -> bool:
    return text.removeprefix("-").replace(",", "").replace(".", "", 1).isdigit()
