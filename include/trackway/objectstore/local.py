"""``file://`` object store: a folder on local disk, the embedded default."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO

from trackway.objectstore.base import ObjectStore, clean_key, fsync_dir, listed


class LocalObjectStore(ObjectStore):
    """``file://`` store: a folder on local disk (the embedded default)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / clean_key(key)

    def put_file(self, key: str, local_path: str | os.PathLike) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # A dot-prefixed name without the final suffix: readers skip it by both rules.
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
        try:
            with open(local_path, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(target.parent)

    def list(self, prefix: str = "") -> list[str]:
        prefix = prefix.lstrip("/")
        base = self.root / prefix.rstrip("/") if prefix.rstrip("/") else self.root
        # A prefix may end mid-name ("events/dt=2026-"): walk from its folder and filter.
        start = base if base.is_dir() else base.parent
        if not start.is_dir():
            return []
        keys = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
            for name in filenames:
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if listed(key, prefix):
                    keys.append(key)
        return sorted(keys)

    def read_bytes(self, key: str, *, once: bool = False) -> bytes:
        return self._path(key).read_bytes()

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def stat(self, key: str) -> dict:
        return {"size": self._path(key).stat().st_size}

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise PermissionError(f"{self.root} is not writable")
