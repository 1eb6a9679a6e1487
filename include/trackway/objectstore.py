"""The object-store seam: one small interface over a local folder, S3 and GCS.

The collector writes raw event objects through it and the loader reads them
back, so both agree on keys, on atomic visibility and on which names are
in-progress files. Keys are always relative to the store's root URL and use
"/" as separator, e.g. ``events/dt=2026-11-23/hour=14/<name>.ndjson.gz``.

Visibility rule shared by writers and readers: an object whose name (any
path component) starts with "." or "_" is not finished data and is never
listed. ``LocalObjectStore`` writes under such a temporary name and renames,
so a reader never sees a half-written object; S3 and GCS make uploads atomic themselves.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from trackway.config import ConfigError


def is_hidden_key(key: str) -> bool:
    """True for in-progress or marker objects that readers must skip."""
    return any(part.startswith((".", "_")) for part in key.split("/") if part)


def _clean_key(key: str) -> str:
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
        """Sorted keys under ``prefix`` (a folder-like prefix), hidden names excluded."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The whole object; raises FileNotFoundError when it does not exist."""

    def open(self, key: str) -> BinaryIO:
        """A readable binary stream of the object."""
        return io.BytesIO(self.read_bytes(key))

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; no error when it is already gone."""

    def url_for(self, key: str) -> str:
        return self.url.rstrip("/") + "/" + _clean_key(key)

    def check(self) -> None:
        """Raise a clear error if the store cannot be reached; cheap, read-only."""
        self.list("_trackway_probe_/")


class LocalObjectStore(ObjectStore):
    """``file://`` store: a folder on local disk (the embedded default)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / _clean_key(key)

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
                if key.startswith(prefix) and not is_hidden_key(key):
                    keys.append(key)
        return sorted(keys)

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise PermissionError(f"{self.root} is not writable")


class S3ObjectStore(ObjectStore):
    """``s3://bucket/prefix`` store via boto3.

    Credentials, region and endpoint come from boto3's standard sources
    (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ~/.aws, instance roles), so MinIO
    and other S3-compatible stores work without Trackway settings. Pass
    ``client`` to use one built elsewhere (e.g. from an Airflow connection).
    """

    def __init__(self, bucket: str, prefix: str = "", client=None):
        if not bucket:
            raise ConfigError("s3:// URL names no bucket; write s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        if client is None:
            import boto3
            from botocore.config import Config

            # Few quick retries: callers (the collector's uploader) retry with their own backoff.
            client = boto3.client(
                "s3",
                config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=120),
            )
        self.client = client

    def _full(self, key: str) -> str:
        key = _clean_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, local_path: str | os.PathLike) -> None:
        self.client.upload_file(str(local_path), self.bucket, self._full(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._full(key), Body=data)

    def list(self, prefix: str = "") -> list[str]:
        prefix = prefix.lstrip("/")
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for item in page.get("Contents", []):
                key = item["Key"][strip:]
                if key and not is_hidden_key(key):
                    keys.append(key)
        return sorted(keys)

    def read_bytes(self, key: str) -> bytes:
        return self.open(key).read()

    def open(self, key: str) -> BinaryIO:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"]
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(self.url_for(key)) from None

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._full(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._full(key))

    def check(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)


def open_object_store(url: str, *, s3_client=None, gcs_client=None) -> ObjectStore:
    """The store for a ``file://``, ``s3://`` or ``gs://`` URL (GCS lives in trackway.objectstore_gcs)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        netloc = "" if parsed.netloc in ("", "localhost") else parsed.netloc
        path = unquote(netloc + parsed.path)
        if not path:
            raise ConfigError(f"object store URL {url!r} names no folder; write file:///abs/path")
        return LocalObjectStore(path)
    if parsed.scheme == "s3":
        return S3ObjectStore(parsed.netloc, unquote(parsed.path), client=s3_client)
    if parsed.scheme == "gs":
        from trackway.objectstore_gcs import GCSObjectStore

        return GCSObjectStore(parsed.netloc, unquote(parsed.path), client=gcs_client)
    raise ConfigError(f"object store URL {url!r}: use file:///path, s3://bucket/prefix or gs://bucket/prefix")


def fsync_dir(path: Path) -> None:
    """Make a rename or create in ``path`` durable: the directory entry needs its own fsync."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
