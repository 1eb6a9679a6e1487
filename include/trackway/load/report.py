"""What one load run did: the figures the CLI prints, the DAG's asset event carries and alerts quote."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from trackway.rawdata.records import ObjectLoad


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
    #: Objects outside the interval found by the sweep of recent partitions and loaded now (late uploads).
    late_objects_loaded: int = 0
    #: Late objects older than the sweep horizon, not loaded: they need `trackway load --hour H`.
    objects_beyond_sweep: list[tuple[str, str]] = field(default_factory=list)  # (URL, hour YYYY-MM-DDTHH)
    #: Lines of erased or suppressed subjects, or deleted by retention, left out (docs/privacy.md).
    erased_lines: int = 0
    seconds: float = 0.0
    #: Per raw root read (the collector's events/ and quarantine/ prefixes, each sources-file source):
    #: {"objects", "bytes", "rows"} loaded from it, for the run's lineage (trackway.orchestration.lineage).
    inputs: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, load: ObjectLoad, *, root: str, quarantined: bool) -> None:
        """Add one loaded object: read from ``root``, its rows into raw.events_quarantine if ``quarantined``."""
        self.objects_loaded += 1
        self.erased_lines += load.erased
        self.parse_errors += load.parse_errors
        self.blank_lines += load.blank_lines
        if load.object_error:
            self.object_errors.append(f"{load.source_object}: {load.object_error}")
        if quarantined:
            self.quarantined_rows += load.rows
        else:
            self.rows_loaded += load.rows
        tally = self.inputs.setdefault(root, {"objects": 0, "bytes": 0, "rows": 0})
        tally["objects"] += 1
        tally["bytes"] += load.size_bytes
        tally["rows"] += load.rows

    def as_dict(self) -> dict:
        data = asdict(self)
        data["interval_start"] = self.interval_start.isoformat()
        data["interval_end"] = self.interval_end.isoformat()
        data["needs_attention"] = self.needs_attention()
        return data

    def asset_extra(self) -> dict:
        """What the run did, for the raw.events_raw asset event (Airflow's asset view)."""
        return {
            "load_id": self.load_id,
            "rows_loaded": self.rows_loaded,
            "objects_loaded": self.objects_loaded,
            "parse_errors": self.parse_errors,
            "damaged_objects": len(self.object_errors),
            "late_objects_loaded": self.late_objects_loaded,
            "objects_beyond_sweep": len(self.objects_beyond_sweep),
            "erased_lines": self.erased_lines,
        }

    def summary(self) -> str:
        rate = self.rows_loaded / self.seconds if self.seconds else 0.0
        return (
            f"{self.interval_start:%Y-%m-%d %H:%M}–{self.interval_end:%H:%M} UTC: "
            f"{self.objects_found} objects ({self.objects_loaded} loaded, {self.objects_skipped} already loaded), "
            f"{self.rows_loaded:,} rows, {self.parse_errors} unparseable lines, "
            f"{self.quarantined_rows} quarantined events, "
            + (
                f"{self.erased_lines} lines of erased subjects or past retention left out, "
                if self.erased_lines
                else ""
            )
            + f"{len(self.object_errors)} damaged objects, {self.late_objects_loaded} late objects swept in, "
            f"{len(self.objects_beyond_sweep)} late objects older than the sweep (need a backfill), "
            f"{self.seconds:.1f}s ({rate:,.0f} rows/s)"
        )

    def needs_attention(self) -> str | None:
        """What on call must act on after this run, with the command; None when nothing."""
        problems = []
        if self.object_errors:
            problems.append(
                f"{len(self.object_errors)} damaged object(s), loaded as far as readable: "
                + "; ".join(self.object_errors[:5])
            )
        if self.objects_beyond_sweep:
            hours = sorted({hour for _, hour in self.objects_beyond_sweep})
            problems.append(
                f"{len(self.objects_beyond_sweep)} late object(s) older than the sweep (TRACKWAY_LOAD_SWEEP_DAYS) "
                f"are not loaded: run `trackway load --hour H` for each of {', '.join(hours[:10])}"
            )
        return " | ".join(problems) or None
