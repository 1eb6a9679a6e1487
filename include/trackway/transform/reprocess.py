"""Reprocess: build chosen dbt models again over a window of raw data, or rebuild them from all of raw.

The incremental models take their batch by load time: every raw row loaded since
the newest ``loaded_at`` in analytics.events, minus ``raw_lookback_minutes``
(macros/incremental.sql). Reprocessing the hours ``start``..``end`` widens that
lookback for one run so the batch reaches back to the first raw row received in
those hours; rows read again are harmless (events are keyed by messageId, rejects
by their raw lineage). A full refresh rebuilds the models from all of raw instead:
the tables are replaced, so it must be confirmed.

Used by the events_reprocess DAG (trackway.orchestration.reprocess); the window's
counts before and after go to its task log.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import yaml

from trackway.config import Settings
from trackway.rawdata.partitions import hour_floor
from trackway.transform.dbt_runner import run_dbt
from trackway.warehouse import open_warehouse

#: What ``confirm_full_refresh`` must say for a full refresh to run.
CONFIRM_FULL_REFRESH = "FULL REFRESH"
#: One token of dbt's node selection syntax: names, paths, methods (tag:x), graph operators (+, @, n+), globs.
_SELECTOR_TOKEN = re.compile(r"[A-Za-z0-9_.:/*@+-]{1,200}")
_DEPTH = re.compile(r"\d+\+")  # "2+events": ancestors to a depth, chosen on purpose


class ReprocessRefused(ValueError):
    """The request cannot run as given; the message says what to change."""


@dataclass(frozen=True)
class ReprocessRequest:
    select: str  # dbt node selection; "" is the whole project (what events_transform builds)
    start: datetime | None  # first hour whose raw rows are read again (None with a full refresh)
    end: datetime | None  # end of the window, exclusive (the hour after the last one)
    full_refresh: bool = False

    @property
    def selection(self) -> str:
        """``select`` with every model's ancestors: the models read their batch through staging and
        int_events_new, so building one without them would re-insert the last batch (or, with a full
        refresh, rebuild a table from it alone). "" stays the whole project."""
        return " ".join(t if t.startswith(("+", "@")) or _DEPTH.match(t) else f"+{t}" for t in self.select.split())

    def dbt_args(self, lookback_minutes: int | None) -> list[str]:
        args = ["--select", self.selection] if self.select else []
        if self.full_refresh:
            args.append("--full-refresh")
        elif lookback_minutes is not None:
            args += ["--vars", json.dumps({"raw_lookback_minutes": lookback_minutes})]
        return args


@dataclass
class WindowCounts:
    raw_rows: int = 0
    events: int | None = None  # None: analytics.events does not exist (yet)
    rejected: int | None = None


@dataclass
class ReprocessReport:
    request: dict
    dbt_args: list[str]
    lookback_minutes: int | None
    before: WindowCounts = field(default_factory=WindowCounts)
    after: WindowCounts = field(default_factory=WindowCounts)
    dbt: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def parse_hour(name: str, text: str) -> datetime:
    """``2026-12-02T10`` (or any ISO time; UTC when it has no zone) as the start of its hour."""
    cleaned = str(text).strip().replace(" ", "T")
    if len(cleaned) == 13:
        cleaned += ":00"
    try:
        moment = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
    except ValueError:
        raise ReprocessRefused(f"{name}={text!r} is not an hour: write e.g. 2026-12-02T10 (UTC)") from None
    return hour_floor(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def parse_request(
    *,
    select: str = "",
    from_hour: str = "",
    to_hour: str = "",
    full_refresh: bool = False,
    confirm_full_refresh: str = "",
    now: datetime | None = None,
) -> ReprocessRequest:
    """Validate the DAG's params; every refusal says what to change."""
    select = " ".join(str(select or "").split())
    for token in select.split(" ") if select else []:
        if token.startswith("-") or not _SELECTOR_TOKEN.fullmatch(token):
            raise ReprocessRefused(
                f"select={select!r} is not a dbt node selection: use model names, paths, tag:/source: methods and "
                "graph operators, separated by spaces (e.g. 'events+ sessions', 'tag:daily'); dbt flags and "
                "intersections (a,b) are not accepted"
            )
    if full_refresh:
        if str(confirm_full_refresh or "").strip() != CONFIRM_FULL_REFRESH:
            raise ReprocessRefused(
                "a full refresh rebuilds the selected models from all of raw.events_raw and replaces their tables "
                "(queries see them empty or partial until it ends; on DuckDB nothing else can write meanwhile): "
                f"to run it, set confirm_full_refresh to {CONFIRM_FULL_REFRESH!r}; nothing was changed"
            )
        if str(from_hour or "").strip() or str(to_hour or "").strip():
            raise ReprocessRefused(
                "a full refresh rebuilds from all of raw, not a window: leave from_hour and to_hour empty, "
                "or turn full_refresh off to reprocess only those hours"
            )
        return ReprocessRequest(select=select, start=None, end=None, full_refresh=True)
    if not str(from_hour or "").strip():
        raise ReprocessRefused(
            "from_hour is required: the first hour (UTC) whose raw rows are read again, e.g. 2026-12-02T06 "
            "(or set full_refresh, with its confirmation, to rebuild from all of raw)"
        )
    now = now or datetime.now(UTC)
    start = parse_hour("from_hour", from_hour)
    last = parse_hour("to_hour", to_hour) if str(to_hour or "").strip() else hour_floor(now)
    if start > now:
        raise ReprocessRefused(f"from_hour ({start:%Y-%m-%dT%H}) is in the future")
    if last < start:
        raise ReprocessRefused(f"to_hour ({last:%Y-%m-%dT%H}) is before from_hour ({start:%Y-%m-%dT%H})")
    return ReprocessRequest(select=select, start=start, end=last + timedelta(hours=1))


def run_reprocess(settings: Settings, request: ReprocessRequest) -> ReprocessReport:
    """Count the window, build the models (dbt errors raise DbtBuildError), count again."""
    lookback, before = _lookback_and_counts(settings, request)
    report = ReprocessReport(
        request={
            "select": request.select,
            "selection": request.selection,
            "start": request.start.isoformat() if request.start else None,
            "end": request.end.isoformat() if request.end else None,
            "full_refresh": request.full_refresh,
        },
        dbt_args=request.dbt_args(lookback),
        lookback_minutes=lookback,
        before=before,
    )
    report.dbt = run_dbt(settings, "build", *report.dbt_args).as_dict()
    report.after = _lookback_and_counts(settings, request)[1]
    return report


def _lookback_and_counts(settings: Settings, request: ReprocessRequest) -> tuple[int | None, WindowCounts]:
    """The lookback that reaches the window's first raw row (None: the project's own is enough), and its counts."""
    counts = WindowCounts()
    if request.start is None or request.end is None:
        return None, counts
    start, end = request.start, request.end
    lookback = None
    with open_warehouse(settings.read_warehouse, read_only=True) as wh:
        if not wh.table_exists("raw", "events_raw"):
            return None, counts
        # receivedAt is ISO 8601 UTC text in raw: text comparison orders it (trackway.health.observe does the same).
        first_loaded, counts.raw_rows = wh.query(
            "SELECT min(loaded_at), count(*) FROM raw.events_raw WHERE received_at >= ? AND received_at < ?",
            [f"{start:%Y-%m-%dT%H}", f"{end:%Y-%m-%dT%H}"],
        )[0]
        if wh.table_exists("analytics", "events"):
            newest, counts.events = wh.query(
                "SELECT max(loaded_at), sum(CASE WHEN received_at >= ? AND received_at < ? THEN 1 ELSE 0 END) "
                "FROM analytics.events",
                [start, end],
            )[0]
            counts.events = int(counts.events or 0)
            if first_loaded is not None and newest is not None:
                reach = _utc(newest) - _utc(first_loaded)
                needed = math.ceil(reach.total_seconds() / 60) + 1
                lookback = needed if needed > project_lookback_minutes(settings) else None
        if wh.table_exists("analytics", "events_rejected"):
            counts.rejected = int(
                wh.query(
                    "SELECT count(*) FROM analytics.events_rejected WHERE received_at >= ? AND received_at < ?",
                    [f"{start:%Y-%m-%dT%H}", f"{end:%Y-%m-%dT%H}"],
                )[0][0]
            )
    return lookback, counts


def project_lookback_minutes(settings: Settings) -> int:
    """``raw_lookback_minutes`` as the dbt project sets it (dbt_project.yml's vars; a plan's copy has the same)."""
    project = yaml.safe_load((settings.dbt_project_dir / "dbt_project.yml").read_text())
    return int(project.get("vars", {}).get("raw_lookback_minutes", 0))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
