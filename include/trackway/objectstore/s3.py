"""``s3://bucket/prefix`` object store (S3, MinIO and other S3-compatible stores) via boto3."""

from __future__ import annotations

import os
from typing import BinaryIO

from trackway.config import ConfigError
from trackway.objectstore.base import ObjectStore, clean_key, listed


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
        self._own_client = client is None
        if client is None:
            # Few quick retries: callers (the collector's uploader) retry with their own backoff.
            client = _client(attempts=4, connect_timeout=10, read_timeout=120)
        self.client = client
        self._once_client = None

    def _full(self, key: str) -> str:
        key = clean_key(key)
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
                if listed(key, prefix):
                    keys.append(key)
        return sorted(keys)

    def read_bytes(self, key: str, *, once: bool = False) -> bytes:
        client = self.client
        if once and self._own_client:  # a client passed in (an Airflow connection's) keeps its own retries
            if self._once_client is None:
                self._once_client = _client(attempts=1, connect_timeout=3, read_timeout=10)
            client = self._once_client
        return self._open(client, key).read()

    def open(self, key: str) -> BinaryIO:
        return self._open(self.client, key)

    def _open(self, client, key: str) -> BinaryIO:
        try:
            return client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"]
        except client.exceptions.NoSuchKey:
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

    def stat(self, key: str) -> dict:
        head = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        return {"size": head["ContentLength"], "ETag": head.get("ETag", "")}

    def delete_old_versions(self, key: str) -> int:
        """Every noncurrent version and delete marker of ``key`` (a versioned bucket keeps them all)."""
        full = self._full(key)
        removed = 0
        paginator = self.client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                if item["Key"] != full or item.get("IsLatest"):
                    continue
                self.client.delete_object(Bucket=self.bucket, Key=full, VersionId=item["VersionId"])
                removed += 1
        return removed

    def check(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)


def _client(*, attempts: int, connect_timeout: float, read_timeout: float):
    """A boto3 S3 client making at most ``attempts`` requests per call, the first one included."""
    import boto3
    from botocore.config import Config

    retries = {"total_max_attempts": attempts, "mode": "standard"}
    return boto3.client(
        "s3", config=Config(retries=retries, connect_timeout=connect_timeout, read_timeout=read_timeout)
    )
