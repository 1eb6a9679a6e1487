"""Paths of raw objects: Airflow's ObjectStoragePath for stores reached through a connection, UPath for local files.

ObjectStoragePath is a UPath that resolves an Airflow connection's credentials; it is
what the DAG reads s3:// and gs:// through. A file:// URL has no connection to resolve,
and importing Airflow costs `trackway load` 3-5 s of its start-up (ADR 0017), so local
paths are the same fsspec LocalFileSystem UPath Airflow would have returned, without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias
from urllib.parse import urlparse

from upath import UPath

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

RawPath: TypeAlias = "UPath | ObjectStoragePath"


def storage_path(url: str, conn_id: str | None = None) -> RawPath:
    """The path of ``url``: a UPath with ``.fs``, ``.path``, ``.protocol``, ``.open()`` and ``.stat()``."""
    if urlparse(url).scheme == "file" and conn_id is None:
        return UPath(url)
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(url, conn_id=conn_id)
