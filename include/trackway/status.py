"""Pipeline numbers for people: what is in each stage, and how fresh it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from trackway.config import Settings
from trackway.warehouse import open_warehouse


@dataclass
class StageCounts:
    raw_rows: int = 0
    raw_parse_errors: int = 0
    objects_loaded: int = 0
    damaged_objects: int = 0
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
    with open_warehouse(settings.warehouse, read_only=True) as wh:
        if not wh.table_exists("raw", "events_raw"):
            return counts
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


def manifest_line(settings: Settings) -> str:
    """events_transform's dbt manifest: current, stale or missing, and the command that fixes it."""
    from trackway.transform.manifest import check_manifest

    return check_manifest(settings).line()


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_table(headers: list[str], rows: list[tuple], indent: str = "    ") -> str:
    """A plain aligned table: readable in a terminal and in CI logs."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            indent
            + "  ".join(c.rjust(w) if _numeric(c) and n else c.ljust(w) for c, w in zip(row, widths, strict=True))
        )
        if n == 0:
            lines.append(indent + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return "" if value is None else str(value)


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace(".", "").isdigit()
