"""Write raw objects the way the collector, or another system, might."""

from __future__ import annotations

import gzip
import json
from pathlib import Path


def event(message_id: str, **extra) -> dict:
    body = {
        "messageId": message_id,
        "type": "track",
        "event": "Listing Viewed",
        "userId": "u-1",
        "timestamp": "2026-11-22T10:15:00.000Z",
        "receivedAt": "2026-11-22T10:15:01.000Z",
        "sourceId": "web",
        "properties": {"listing_id": "lst_1", "price_per_night": 120},
    }
    body.update(extra)
    return body


def hour_dir(raw_root: Path, day: str, hour: int) -> Path:
    folder = raw_root / "events" / f"dt={day}" / f"hour={hour:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_gz_lines(path: Path, lines: list[bytes | str | dict]) -> Path:
    data = b"".join(_as_bytes(line) + b"\n" for line in lines)
    path.write_bytes(gzip.compress(data))
    return path


def _as_bytes(line: bytes | str | dict) -> bytes:
    if isinstance(line, dict):
        return json.dumps(line).encode()
    if isinstance(line, str):
        return line.encode()
    return line
