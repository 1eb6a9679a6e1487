"""The sources file: extra raw sources other systems write (see adr/0010-raw-source-layouts.md)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from trackway.config.errors import ConfigError

SOURCE_LAYOUTS = ("trackway", "firehose", "segment-s3")
# Segment's field names (the raw.events_raw text columns) that a source's `fields` may map.
MAPPABLE_FIELDS = (
    "message_id",
    "type",
    "event",
    "name",
    "user_id",
    "anonymous_id",
    "group_id",
    "previous_id",
    "source_id",
    "timestamp",
    "original_timestamp",
    "sent_at",
    "received_at",
)


@dataclass(frozen=True)
class Source:
    """An extra raw source from the sources file (see adr/0010-raw-source-layouts.md)."""

    name: str
    url: str
    layout: str
    conn_id: str | None = None
    fields: tuple[tuple[str, str], ...] = ()  # (column, JSONPath such as $.user.id)
    type: str | None = None


def parse_sources(text: str, origin: str) -> list[Source]:
    """Parse and check a sources file; every mistake names the entry and what to write instead."""
    import yaml

    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin} is not valid YAML: {exc}") from None
    entries = doc.get("sources") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{origin} needs a top-level 'sources:' list; see the README section on raw sources")
    sources: list[Source] = []
    for n, entry in enumerate(entries, start=1):
        where = f"{origin}: source #{n}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} is not a mapping with name/url/layout")
        unknown = set(entry) - {"name", "url", "conn_id", "layout", "fields", "type"}
        if unknown:
            raise ConfigError(
                f"{where} has unknown keys {sorted(unknown)}; allowed: name, url, conn_id, layout, fields, type"
            )
        name, url, layout = entry.get("name"), entry.get("url"), entry.get("layout", "trackway")
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"{where} needs a name of letters, digits, '-' or '_', e.g. name: adgem")
        where = f"{origin}: source {name!r}"
        if not isinstance(url, str) or urlparse(url).scheme not in ("file", "s3", "gs"):
            raise ConfigError(f"{where}: url must be file:///path/, s3://bucket/prefix/ or gs://bucket/prefix/")
        if layout not in SOURCE_LAYOUTS:
            raise ConfigError(f"{where}: layout {layout!r} is not one of {', '.join(SOURCE_LAYOUTS)}")
        fields = entry.get("fields") or {}
        if not isinstance(fields, dict):
            raise ConfigError(f"{where}: fields must map column names to JSONPaths, e.g. message_id: $.event_uuid")
        for column, path in fields.items():
            if column not in MAPPABLE_FIELDS:
                raise ConfigError(f"{where}: fields.{column} is not one of {', '.join(MAPPABLE_FIELDS)}")
            if not isinstance(path, str) or not path.startswith("$."):
                raise ConfigError(f"{where}: fields.{column} must be a JSONPath like $.user.id, not {path!r}")
        if any(s.name == name for s in sources):
            raise ConfigError(f"{where} is declared twice; names must be unique")
        sources.append(
            Source(
                name=name,
                url=url,
                layout=layout,
                conn_id=entry.get("conn_id"),
                fields=tuple(fields.items()),
                type=entry.get("type"),
            )
        )
    return sources
