"""``trackway report``: the product metrics as one self-contained HTML file, for people without a BI server.

It reads the marts as ``TRACKWAY_READ_WAREHOUSE_URL`` on a read-only connection
(the analysts' role on PostgreSQL; DuckDB opened read-only without file
access), runs only Trackway's own fixed SQL, and writes the file atomically.
A missing or empty mart becomes a note in its section, never a failure
(docs/report.md, adr: report).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from trackway.config import ConfigError, Settings

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ReportResult:
    path: Path
    bytes: int
    charts: int
    notes: int
    seconds: float
    window: str

    def line(self) -> str:
        return (
            f"report: {self.path} ({self.bytes / 1024:.0f} KiB, {self.charts} charts, {self.notes} notes, "
            f"{self.window}) in {self.seconds:.1f}s"
        )


def write_report(settings: Settings, out: Path, *, days: int = 30, progress: Progress | None = None) -> ReportResult:
    """Read the marts, draw the charts and write ``out``; the previous file stays until the new one is whole."""
    from trackway.report.charts import CHARTS, Chart, render_svg
    from trackway.report.data import SECTIONS, Reader, find_window
    from trackway.report.page import page_html
    from trackway.warehouse import open_warehouse

    if days < 1:
        raise ValueError("days must be at least 1")
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    target = settings.read_warehouse
    if target.kind not in ("duckdb", "postgres"):
        # Its SQL names schemas as DuckDB and PostgreSQL have them; BigQuery's are datasets <prefix>_analytics.
        raise ConfigError(f"trackway report reads DuckDB and PostgreSQL warehouses, not {target.kind} (yet)")
    say(f"reading {target.display_url} (read-only)")
    with open_warehouse(target, read_only=True) as wh:
        reader = Reader(wh)
        window = find_window(reader, days)
        sections = []
        for build in SECTIONS:
            section = build(reader, window)
            say(f"  {section.title}: {sum(len(t.rows) for t in section.tables.values())} rows")
            sections.append(section)
    drawn = [(section, CHARTS[section.key](section)) for section in sections]
    total = sum(len(charts) for _, charts in drawn)
    done = 0

    def svg(chart: Chart, prefix: str) -> str:
        nonlocal done
        done += 1
        say(f"  chart {done}/{total}: {chart.title}")
        return render_svg(chart, prefix)

    html = page_html(
        drawn, warehouse=target.display_url, window=window.describe(), generated_at=datetime.now(UTC), svg=svg
    )
    data = html.encode("utf-8")
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ReportResult(
        path=out.resolve(),
        bytes=len(data),
        charts=total,
        notes=sum(len(s.notes) for s in sections),
        seconds=time.monotonic() - started,
        window=window.describe(),
    )
