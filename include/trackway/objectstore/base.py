"""The object-store seam: the interface every backend (local, S3, GCS) implements.

The collector writes raw event objects through it and the loader reads them
back, so both agree on keys, on atomic visibility and on which names are
in-progress files. Keys are always relative to the store's root URL and use
"/" as separator, e.g. ``events/dt=2026-11-23/hour=14/<name>.ndjson.gz``.

Visibility rule shared by writers and readers: an object whose name (any
path component) starts with "." or "_" is not finished data and is never
listed, except below a prefix that names such a folder itself (the erasure
ledger lists ``_privacy/``). ``LocalObjectStore`` writes under such a temporary name and renames,
so a reader never sees a half-written object; S3 and GCS make uploads atomic themselves.
"""

from __future__ import annotations

import io
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO


def is_hidden_key(key: str) -> bool:
    """True for in-progress or marker objects that readers must skip."""
    return any(part.startswith((".", "_")) for part in key.split("/") if part)


def listed(key: str, prefix: str) -> bool:
    """Whether ``list(prefix)`` shows ``key``: under the prefix, and nothing hidden below what the prefix names."""
    return bool(key) and key.startswith(prefix) and not is_hidden_key(key[len(prefix) :])


def clean_key(key: str) -> str:
    key = key.strip("/")
    if not key or any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"object key {key!r} is empty or has empty/'.'/'..' parts")
    return key


class ObjectStore(ABC):
    """A flat key space under one root URL."""

    url: str

    @abstractmethod
    def put_file(self, key: str, local_path: str | os.PathLike) -> None:
        """Store the file's bytes under ``key``; replaces an existing object atomically."""

    def put_bytes(self, key: str, data: bytes) -> None:
        with tempfile.NamedTemporaryFile(prefix=".trackway-put-") as tmp:
            tmp.write(data)
            tmp.flush()
            self.put_file(key, tmp.name)

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys under ``prefix`` (a folder-like prefix), hidden names below the prefix excluded."""

    @abstractmethod
    def read_bytes(self, key: str, *, once: bool = False) -> bytes:
        """The whole object; raises FileNotFoundError when it does not exist.

        ``once``: one attempt with short timeouts, no client-side retries, for reads on a start-up
        path that a poller or backoff retries later: a store outage must not hold a collector's start.
        """

    def open(self, key: str) -> BinaryIO:
        """A readable binary stream of the object."""
        return io.BytesIO(self.read_bytes(key))

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; no error when it is already gone."""

    @abstractmethod
    def stat(self, key: str) -> dict:
        """The object's size and content tag as fsspec lists them (``size``, and ``ETag`` or ``md5Hash``).

        The load ledger's fingerprint is made of these (``rawdata.records.object_fingerprint``):
        a rewrite records the new one, so the loader does not take the object for new data.
        """

    def delete_old_versions(self, key: str) -> int:
        """Remove every version of ``key`` but the current one where the store keeps versions; how many."""
        return 0

    def url_for(self, key: str) -> str:
        return self.url.rstrip("/") + "/" + clean_key(key)

    def check(self) -> None:
        """Raise a clear error if the store cannot be reached; cheap, read-only."""
        self.list("_trackway_probe_/")


def fsync_dir(path: Path) -> None:
    """Make a rename or create in ``path`` durable: the directory entry needs its own fsync."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
