"""Micro-batch mode's settings, listing, watcher and DAG wiring (adr/0033); the stack test runs it end to end."""

from __future__ import annotations

import asyncio
import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from trackway.config import ConfigError, load_settings
from trackway.rawdata.partitions import hour_floor

REPO_ROOT = Path(__file__).resolve().parents[1]


def _object(home: Path, hour: datetime, name: str) -> Path:
    folder = home / "raw" / "events" / f"dt={hour:%Y-%m-%d}" / f"hour={hour:%H}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(gzip.compress(b'{"messageId":"m"}\n'))
    return path


def test_hourly_is_the_default_and_micro_batch_uploads_every_15_seconds(trackway_env, monkeypatch):
    for var in ("TRACKWAY_PIPELINE_MODE", "TRACKWAY_COLLECTOR_UPLOAD_SECONDS", "TRACKWAY_SPOOL_MAX_AGE_SECONDS"):
        monkeypatch.delenv(var, raising=False)
    hourly = load_settings()
    assert (hourly.pipeline_mode, hourly.micro_batch, hourly.collector_upload_seconds) == ("hourly", False, 60)
    monkeypatch.setenv("TRACKWAY_PIPELINE_MODE", "micro_batch")
    assert (load_settings().micro_batch, load_settings().collector_upload_seconds) == (True, 15)
    monkeypatch.setenv("TRACKWAY_COLLECTOR_UPLOAD_SECONDS", "5")
    assert load_settings().collector_upload_seconds == 5
    monkeypatch.setenv("TRACKWAY_SPOOL_MAX_AGE_SECONDS", "2")  # the smaller of the two seals
    assert load_settings().collector_upload_seconds == 2
    monkeypatch.setenv("TRACKWAY_PIPELINE_MODE", "streaming")
    with pytest.raises(ConfigError, match="TRACKWAY_PIPELINE_MODE"):
        load_settings().check("collector")


def test_trackway_up_runs_micro_batches_unless_told_otherwise(trackway_env, monkeypatch):
    from trackway.stack.processes import stack_environment

    settings = load_settings()
    assert stack_environment(settings, {})["TRACKWAY_PIPELINE_MODE"] == "micro_batch"
    assert stack_environment(settings, {"TRACKWAY_PIPELINE_MODE": "hourly"})["TRACKWAY_PIPELINE_MODE"] == "hourly"


def test_a_micro_batch_load_lists_two_hours_not_the_seven_day_sweep(trackway_env):
    from trackway.load.loader import list_interval_objects
    from trackway.load.recent import recent_objects

    now = hour_floor(datetime.now(UTC))
    _object(trackway_env, now, "current.ndjson.gz")
    _object(trackway_env, now - timedelta(hours=1), "previous.ndjson.gz")
    _object(trackway_env, now - timedelta(days=3), "late.ndjson.gz")
    settings = load_settings()

    def names(**kw):
        return sorted(
            item.path.name for item in list_interval_objects(settings, now, now + timedelta(hours=1), **kw)[1]
        )

    assert names() == ["current.ndjson.gz", "late.ndjson.gz", "previous.ndjson.gz"]  # the hourly load sweeps
    assert names(sweep=False) == ["current.ndjson.gz", "previous.ndjson.gz"]
    assert sorted(Path(key).name for key, _ in recent_objects(settings)) == ["current.ndjson.gz", "previous.ndjson.gz"]


def test_the_watcher_fires_for_objects_it_has_not_seen(trackway_env):
    from trackway.orchestration.freshness import NewRawObjectsTrigger

    now = hour_floor(datetime.now(UTC))
    _object(trackway_env, now, "first.ndjson.gz")
    trigger = NewRawObjectsTrigger(poll_seconds=0.01)
    assert trigger.serialize() == ("trackway.orchestration.freshness.NewRawObjectsTrigger", {"poll_seconds": 0.01})

    async def two_events():
        events = trigger.run()
        first = await asyncio.wait_for(anext(events), 60)  # after a (re)start: what the hours hold
        _object(trackway_env, now, "second.ndjson.gz")
        second = await asyncio.wait_for(anext(events), 60)  # only the new one
        await events.aclose()
        return first.payload, second.payload

    first, second = asyncio.run(two_events())
    assert (first["new_objects"], second["new_objects"]) == (1, 1)


def test_a_transform_is_fresh_only_when_every_trigger_is_a_micro_batch():
    from trackway.orchestration.freshness import transform_scope

    micro = {"mode": "micro_batch", "rows_loaded": 3}
    assert transform_scope([micro, micro]) == "fresh"
    assert transform_scope([micro, {"rows_loaded": 9}]) == "full"  # the hourly load came in meanwhile
    assert transform_scope([]) == "full"  # by hand, or a backfill's reprocess
