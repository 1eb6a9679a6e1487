"""Which raw objects hold a person's lines, and the scan that counts them.

The collector's own objects live under the raw store's ``events/`` and ``quarantine/``
folders and are rewritten there. Objects of other systems (a Firehose bucket in the
sources file) are never rewritten: every load filters them instead.
"""

from __future__ import annotations

import contextlib
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, cast

import orjson

from trackway.objectstore import ObjectStore
from trackway.rawdata.gunzip import open_gzip
from trackway.rawdata.lines import GZIP_MAGIC, guarded, read_head
from trackway.rawdata.schema import LOADED_OBJECTS, RAW_SCHEMA
from trackway.subjects.sets import SubjectMatcher
from trackway.warehouse import Warehouse
from trackway.warehouse.ddl import PRIVACY_SCHEMA

#: The collector's folders in the raw store (Settings.events_url, Settings.quarantine_url).
RAW_FOLDERS = ("events/", "quarantine/")


def key_of(store: ObjectStore, url: str) -> str | None:
    """The store key of a load ledger URL; None for an object outside this store (another system's)."""
    root = store.url.rstrip("/") + "/"
    return url[len(root) :] if url.startswith(root) else None


def raw_keys(store: ObjectStore) -> list[str]:
    return [key for folder in RAW_FOLDERS for key in store.list(folder)]


def unloaded_keys(wh: Warehouse, store: ObjectStore) -> list[str]:
    """Objects of the raw store the load ledger does not know yet: a deletion must look into them too."""
    loaded: set[str] = set()
    if wh.table_exists(RAW_SCHEMA, LOADED_OBJECTS):
        loaded = {r[0] for r in wh.query(f"SELECT source_object FROM {RAW_SCHEMA}.{LOADED_OBJECTS}")}
    return [key for key in raw_keys(store) if store.url_for(key) not in loaded]


def filtered_by_loads(wh: Warehouse) -> list[str]:
    """Objects loads filtered erased lines out of since their last rewrite (privacy.load_filtered)."""
    return sorted({r[0] for r in wh.query(f"SELECT DISTINCT source_object FROM {PRIVACY_SCHEMA}.load_filtered")})


def forget_filtered(wh: Warehouse, urls: Iterable[str]) -> None:
    done = sorted(set(urls))
    if done:
        wh.execute(f"DELETE FROM {PRIVACY_SCHEMA}.load_filtered WHERE {wh.in_list('source_object')}", [done])


@dataclass
class ScanResult:
    objects_scanned: int = 0
    #: Lines and objects by the set of filtered hashes a line names (few distinct sets, however many lines).
    lines: Counter[frozenset[str]] = field(default_factory=Counter)
    objects: dict[frozenset[str], set[str]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)

    def found(self, hashes: set[str]) -> tuple[int, int]:
        """(lines, objects) naming any of ``hashes``."""
        lines, objects = 0, set()
        for named, count in self.lines.items():
            if named & hashes:
                lines += count
                objects |= self.objects[named]
        return lines, len(objects)


def scan_objects(store: ObjectStore, keys: Iterable[str], matcher: SubjectMatcher) -> ScanResult:
    """Count, per subject hash, the lines and objects naming it; damaged objects are listed, not skipped silently."""
    result = ScanResult()
    for key in keys:
        result.objects_scanned += 1
        try:
            with contextlib.closing(store.open(key)) as raw:
                source = guarded(cast(IO[bytes], raw), store.url_for(key))
                body = open_gzip(source) if read_head(source).startswith(GZIP_MAGIC) else source
                for line in body:
                    if not line.strip():
                        continue
                    try:
                        obj = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue
                    named = matcher.hashes_in(obj)
                    if named:
                        hashes = frozenset(named)
                        result.lines[hashes] += 1
                        result.objects.setdefault(hashes, set()).add(key)
        except (EOFError, OSError, zlib.error) as exc:
            result.unreadable.append(f"{key}: {exc}")
    return result
