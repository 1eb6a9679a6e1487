"""What one load run did: the figures the CLI prints, the DAG's asset event carries and alerts quote."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime


@dataclass
class LoadReport:
    load_id: str
    interval_start: datetime
    interval_end: datetime
    hours_scanned: list[str]
    objects_found: int = 0
    objects_loaded: int = 0
    objects_skipped: int = 0
    rows_loaded: int = 0
    quarantined_rows: int = 0
    parse_errors: int = 0
    blank_lines: int = 0
    object_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        data = asdict(self)
        data["interval_start"] = self.interval_start.isoformat()
        data["interval_end"] = self.interval_end.isoformat()
        return data

    def summary(self) -> str:
        rate = self.rows_loaded / self.seconds if self.seconds else 0.0
        return (
            f"{self.interval_start:%Y-%m-%d %H:%M}–{self.interval_end:%H:%M} UTC: "
            f"{self.objects_found} objects ({self.objects_loaded} loaded, {self.objects_skipped} already loaded), "
            f"{self.rows_loaded:,} rows, {self.parse_errors} unparseable lines, "
            f"{self.quarantined_rows} quarantined events, "
            f"{len(self.object_errors)} damaged objects, {self.seconds:.1f}s ({rate:,.0f} rows/s)"
        )
