"""bqemulator 1.4.0 (PyPI) on loopback, for the BigQuery warehouse and dbt-bigquery.

Run as a subprocess (``python tests/bq_emulator.py --port N --gcs-root DIR``) so the
emulator's own DuckDB and event loop stay out of the test process. Workarounds for
the emulator live here only, each with why:

1. BQEMU_ENABLE_FORMAT_EXTENSIONS=false, and the spatial extension is not loaded:
   1.4.0 downloads DuckDB's avro and spatial extensions at start (no network here;
   Trackway uses neither Avro nor GEOGRAPHY).
2. gs:// URIs are read from fake-gcs-server's filesystem backend
   (BQEMU_GCS_LOCAL_ROOT = its -filesystem-root, laid out <bucket>/<object>): the
   emulator resolves gs:// to a local folder instead of calling a GCS endpoint.
3. CSV load jobs honour fieldDelimiter, quote, skipLeadingRows, ignoreUnknownValues
   and the job's schema: 1.4.0 ignores them all and always treats line 1 as a header,
   which BigQuery does not. Trackway loads NDJSON as one-column CSV (see
   trackway.warehouse.bigquery_warehouse).
4. JSON subscript by a STRING column (`json_col[key_col]`, trackway.json_each on
   BigQuery) becomes DuckDB's json_extract(json_col, key_col): 1.4.0 stores what
   JSON_QUERY returns as VARCHAR, so its DuckDB `varchar[key]` fails to bind.
5. A load job whose jobId already exists answers 409 Already Exists, as BigQuery
   does: 1.4.0 runs it again. Trackway derives load job ids from the object's
   version (trackway.warehouse.bigquery_warehouse.load_job_id) and reuses the
   existing job on 409 (a retried or concurrent load).
(Trackway never uploads through the emulator's media endpoint, so its strict
media types need no workaround here.)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

DEADLINE = 90.0
PROJECT = "trackway-test"


def _patch_emulator() -> None:
    # Workaround 4, registered before any translator is built: json_col[key_col] ->
    # json_extract(json_col, key_col), where DuckDB reads key_col as a plain key, not a path.
    from bqemulator.sql.rules import TranslationRule, register
    from sqlglot import exp

    @register
    class JSONSubscriptByColumnRule(TranslationRule):
        name = "TRACKWAY_JSON_SUBSCRIPT_BY_COLUMN"

        def applies_to(self, node: exp.Expression) -> bool:
            return (
                isinstance(node, exp.Bracket)
                and len(node.expressions) == 1
                and isinstance(node.expressions[0], exp.Column)
            )

        def rewrite(self, node: exp.Expression) -> exp.Expression:
            return exp.Anonymous(this="json_extract", expressions=[node.this.copy(), node.expressions[0].copy()])

    from bqemulator.jobs import executor
    from bqemulator.storage import engine

    # Workaround 1: no spatial extension (it would be downloaded).
    engine.DuckDBEngine._load_spatial = lambda self: None  # type: ignore[method-assign]

    # Workaround 3: a CSV load reads its options like BigQuery does.
    original = executor._load_path_into_target

    def load_path_into_target(path, job, ctx):
        if job.source_format != "CSV":
            return original(path, job, ctx)
        cfg = job.raw_config
        delim = cfg.get("fieldDelimiter", ",")
        if delim == "\\t":
            delim = "\t"
        quote = cfg.get("quote", '"')
        fields = [f["name"] for f in (cfg.get("schema") or {}).get("fields", [])]
        if not fields:
            return original(path, job, ctx)
        columns = "{" + ", ".join(f"'{name}': 'VARCHAR'" for name in fields) + "}"
        opts = [
            f"columns={columns}",
            "header=false",
            f"skip={int(cfg.get('skipLeadingRows', 0))}",
            "delim=?",
            "quote=?",
            "escape=?",
            "auto_detect=false",
            "compression='auto'",
            "null_padding=true",
            "strict_mode=false",
            "max_line_size=104857600",
        ]
        if cfg.get("ignoreUnknownValues"):
            opts.append("ignore_errors=false")
        names = ", ".join(f'"{n}"' for n in fields)
        sql = f"INSERT INTO {job.target_ref} ({names}) SELECT {names} FROM read_csv(?, {', '.join(opts)})"
        ctx.engine.execute(sql, [path, delim, quote or "", quote or ""])

    executor._load_path_into_target = load_path_into_target

    # Workaround 5: one job per jobId. The id is claimed before the job runs, so a concurrent
    # insert of the same id (another process) is refused too, as in BigQuery.
    from bqemulator.api.routes import jobs as job_routes
    from bqemulator.domain.errors import AlreadyExistsError

    run_load_job = job_routes._handle_load_job_with_async_envelope
    claimed: set[tuple[str, str]] = set()

    async def load_job_once(project_id, job_id, config, ctx):
        key = (project_id, job_id)
        if key in claimed or ctx.catalog.get_job(project_id, job_id) is not None:
            raise AlreadyExistsError(f"Already Exists: Job {project_id}:US.{job_id}")
        claimed.add(key)
        return await run_load_job(project_id, job_id, config, ctx)

    job_routes._handle_load_job_with_async_envelope = load_job_once


def _serve(port: int, gcs_root: str) -> None:
    import asyncio

    os.environ["BQEMU_ENABLE_FORMAT_EXTENSIONS"] = "false"  # workaround 1
    _patch_emulator()
    from bqemulator.config import Settings
    from bqemulator.server import EmulatorServer

    settings = Settings(
        rest_host="127.0.0.1",
        rest_port=port,
        grpc_host="127.0.0.1",
        grpc_port=0,
        default_project_id=PROJECT,
        gcs_local_root=Path(gcs_root),  # workaround 2
        enable_format_extensions=False,
        log_level="warning",
        metrics_enabled=False,
    )
    server = EmulatorServer(settings)

    async def run() -> None:
        await server.start()
        await asyncio.Event().wait()

    asyncio.run(run())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BigQueryEmulator:
    def __init__(self, gcs_root: Path, log_path: Path) -> None:
        self.gcs_root = Path(gcs_root)
        self.log_path = Path(log_path)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> BigQueryEmulator:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "--port", str(self.port), "--gcs-root", str(self.gcs_root)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"bqemulator exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/bigquery/v2/projects/{PROJECT}/datasets", timeout=2):
                    return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"bqemulator not ready after {DEADLINE}s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="bqemulator with Trackway's test workarounds")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--gcs-root", required=True)
    args = parser.parse_args()
    _serve(args.port, args.gcs_root)
