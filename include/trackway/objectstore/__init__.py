"""The object-store seam: one small interface (``base``) and one module per backend.

``open_object_store`` picks the backend from a URL's scheme; adding a backend
means one new module here and one branch below, and touches no DAG.
"""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from trackway.config import ConfigError
from trackway.objectstore.base import ObjectStore, fsync_dir, is_hidden_key
from trackway.objectstore.local import LocalObjectStore
from trackway.objectstore.s3 import S3ObjectStore

__all__ = ["LocalObjectStore", "ObjectStore", "S3ObjectStore", "fsync_dir", "is_hidden_key", "open_object_store"]


def open_object_store(url: str, *, s3_client=None, gcs_client=None) -> ObjectStore:
    """The store for a ``file://``, ``s3://`` or ``gs://`` URL."""
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
        from trackway.objectstore.gcs import GCSObjectStore

        return GCSObjectStore(parsed.netloc, unquote(parsed.path), client=gcs_client)
    raise ConfigError(f"object store URL {url!r}: use file:///path, s3://bucket/prefix or gs://bucket/prefix")
