"""``gs://bucket/prefix`` object store (Google Cloud Storage), behind the object-store seam.

The collector writes raw objects here; the loader reads them back through
Airflow's ObjectStoragePath (gcsfs), and BigQuery load jobs read them in
place. A GCS upload is atomic by itself: an object becomes visible only
once its upload has finished, so no temporary name is needed.

Credentials come from Application Default Credentials (a service account
key in GOOGLE_APPLICATION_CREDENTIALS, workload identity, gcloud auth), never
from Trackway settings. ``STORAGE_EMULATOR_HOST`` points the client at an
emulator (fake-gcs-server in the tests) with anonymous credentials.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, BinaryIO

from trackway.config import ConfigError
from trackway.objectstore.base import ObjectStore, clean_key, listed

# One client-side deadline for every call: the collector's uploader retries
# with its own backoff, so a dead endpoint must fail fast rather than hang.
_TIMEOUT = (10.0, 120.0)  # connect, read
_RETRY_DEADLINE_SECONDS = 20.0
_ONCE_TIMEOUT = (3.0, 10.0)  # read_bytes(once=True): one attempt, for start-up paths that poll again later


def _retry() -> Any:
    from google.api_core.retry import Retry
    from google.cloud.storage.retry import DEFAULT_RETRY

    retry: Retry = DEFAULT_RETRY.with_timeout(_RETRY_DEADLINE_SECONDS)
    return retry


class GCSObjectStore(ObjectStore):
    """A bucket and key prefix on Google Cloud Storage (google-cloud-storage client)."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        if not bucket:
            raise ConfigError("gs:// URL names no bucket; write gs://bucket/prefix")
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.url = f"gs://{bucket}/{self.prefix}" if self.prefix else f"gs://{bucket}"
        if client is None:
            from google.cloud.storage import Client

            # With STORAGE_EMULATOR_HOST set the client uses anonymous credentials;
            # otherwise Application Default Credentials and their project.
            client = Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT") or None)
        self.client = client
        self.bucket = client.bucket(bucket)

    def _full(self, key: str) -> str:
        key = clean_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, local_path: str | os.PathLike) -> None:
        blob = self.bucket.blob(self._full(key))
        # No content-encoding: the stored bytes are the .gz file itself, so every
        # reader (gcsfs, BigQuery load jobs) gets exactly what was written.
        blob.upload_from_filename(
            os.fspath(local_path), content_type="application/gzip", timeout=_TIMEOUT, retry=_retry()
        )

    def put_bytes(self, key: str, data: bytes) -> None:
        blob = self.bucket.blob(self._full(key))
        blob.upload_from_string(data, content_type="application/octet-stream", timeout=_TIMEOUT, retry=_retry())

    def list(self, prefix: str = "") -> list[str]:
        prefix = prefix.lstrip("/")
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys = []
        for blob in self.client.list_blobs(self.bucket_name, prefix=full, timeout=_TIMEOUT, retry=_retry()):
            key = blob.name[strip:]
            if listed(key, prefix):
                keys.append(key)
        return sorted(keys)

    def read_bytes(self, key: str, *, once: bool = False) -> bytes:
        from google.api_core.exceptions import NotFound

        try:
            data: bytes = self.bucket.blob(self._full(key)).download_as_bytes(
                timeout=_ONCE_TIMEOUT if once else _TIMEOUT, retry=None if once else _retry(), raw_download=True
            )
        except NotFound:
            raise FileNotFoundError(self.url_for(key)) from None
        return data

    def open(self, key: str) -> BinaryIO:
        import io

        return io.BytesIO(self.read_bytes(key))

    def exists(self, key: str) -> bool:
        return bool(self.bucket.blob(self._full(key)).exists(timeout=_TIMEOUT, retry=_retry()))

    def delete(self, key: str) -> None:
        from google.api_core.exceptions import NotFound

        with contextlib.suppress(NotFound):
            self.bucket.blob(self._full(key)).delete(timeout=_TIMEOUT, retry=_retry())

    def stat(self, key: str) -> dict:
        from google.api_core.exceptions import NotFound

        blob = self.bucket.blob(self._full(key))
        try:
            blob.reload(timeout=_TIMEOUT, retry=_retry())
        except NotFound:
            raise FileNotFoundError(self.url_for(key)) from None
        return {"size": blob.size, "md5Hash": blob.md5_hash}

    def delete_old_versions(self, key: str) -> int:
        """Every noncurrent generation of ``key`` (a bucket with object versioning keeps them)."""
        full = self._full(key)
        live = {b.name: b.generation for b in self.client.list_blobs(self.bucket_name, prefix=full, timeout=_TIMEOUT)}
        removed = 0
        for blob in self.client.list_blobs(self.bucket_name, prefix=full, versions=True, timeout=_TIMEOUT):
            if blob.name == full and blob.generation != live.get(full):
                self.bucket.blob(full, generation=blob.generation).delete(timeout=_TIMEOUT, retry=_retry())
                removed += 1
        return removed

    def check(self) -> None:
        """Raises NotFound for a missing bucket, a transport error when GCS is unreachable."""
        self.client.get_bucket(self.bucket_name, timeout=_TIMEOUT, retry=None)
