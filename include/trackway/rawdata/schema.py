"""The raw landing tables: their names and columns, the same on every warehouse.

Everything copied from the input is text; only the lineage columns Trackway
writes itself are typed (adr/0002-raw-then-transform.md).
"""

from __future__ import annotations

from dataclasses import dataclass

RAW_SCHEMA = "raw"
EVENTS_RAW = "events_raw"
EVENTS_QUARANTINE = "events_quarantine"
LOADED_OBJECTS = "loaded_objects"
LOAD_RUNS = "load_runs"

# Input-derived columns of raw.events_raw: all text, copied from the JSON keys.
RAW_TEXT_FIELDS: tuple[tuple[str, str], ...] = (
    ("message_id", "messageId"),
    ("type", "type"),
    ("event", "event"),
    ("name", "name"),
    ("user_id", "userId"),
    ("anonymous_id", "anonymousId"),
    ("group_id", "groupId"),
    ("previous_id", "previousId"),
    ("source_id", "sourceId"),
    ("timestamp", "timestamp"),
    ("original_timestamp", "originalTimestamp"),
    ("sent_at", "sentAt"),
    ("received_at", "receivedAt"),
    # The tracking plan's verdict (adr/0029): copied from the collector's lines; for records of
    # other systems' files the loader writes its own (trackway.rawdata.layouts.map_record).
    ("plan_verdict", "_trackwayPlan"),
)
PLAN_VERDICT_COLUMN = "plan_verdict"
LINE_COLUMNS: tuple[str, ...] = ("raw", "parse_error", "source_object", "line_number", "load_id", "loaded_at")


@dataclass(frozen=True)
class RawTable:
    """A raw landing table: text columns copied from JSON keys, then the line and its lineage.

    Lineage columns are typed because we write them; everything from the input is text.
    """

    name: str
    text_fields: tuple[tuple[str, str], ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.text_fields) + LINE_COLUMNS


EVENTS_RAW_TABLE = RawTable(EVENTS_RAW, RAW_TEXT_FIELDS)
# What the collector quarantined (invalid events of otherwise valid batches), with its reason.
QUARANTINE_TABLE = RawTable(
    EVENTS_QUARANTINE,
    (("reason", "reason"), ("received_at", "receivedAt"), ("source_id", "sourceId"), ("event", "event")),
)
RAW_TABLES = (EVENTS_RAW_TABLE, QUARANTINE_TABLE)
RAW_COLUMNS: tuple[str, ...] = EVENTS_RAW_TABLE.columns
