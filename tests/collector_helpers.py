"""Run the real collector as a subprocess and read what it wrote to the object store."""

from __future__ import annotations

import contextlib
import copy
import gzip
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from trackway.objectstore import ObjectStore, open_object_store
from trackway.ports import free_ports
from trackway.pseudonym import Keyring

WRITE_KEYS = {"key-web": "web", "key-backend": "backend"}
WRITE_KEYS_SPEC = ",".join(f"{source}:{key}" for key, source in WRITE_KEYS.items())
WORKERS = 2  # a test collector always runs several: the spools, recovery and the admin /health span them
DEADLINE = 60.0  # generous: only ever waited out when something is broken


def free_port() -> int:
    return free_ports(1)[0]


def clean_env(**overrides: str) -> dict[str, str]:
    """The test process's environment without any TRACKWAY_* leaking in from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKWAY_")}
    env.update(overrides)
    return env


def wait_for(predicate, what: str, deadline: float = DEADLINE, interval: float = 0.05):
    end = time.monotonic() + deadline
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline:.0f}s waiting for {what}")
        time.sleep(interval)


class CollectorProcess:
    """``python -m trackway.cli collect`` on a free port (and a free admin port), logs captured to files.

    ``url`` is the public listener (the tracking API, liveness ``/health``); ``admin_url``
    the admin listener, where ``health()`` and ``metrics()`` read the counters of all workers.
    """

    def __init__(self, home: Path, **env: str):
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        defaults = {
            "TRACKWAY_HOME": str(self.home),
            "TRACKWAY_WRITE_KEYS": WRITE_KEYS_SPEC,
            "TRACKWAY_SPOOL_MAX_AGE_SECONDS": "1",
            "TRACKWAY_COLLECTOR_WORKERS": str(WORKERS),
        }
        self.env = clean_env(**{**defaults, **env})
        self.proc: subprocess.Popen | None = None
        self.args: list[str] = []  # extra `trackway collect` arguments
        self.port: int | None = None
        self.admin_port: int | None = None
        self._runs = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def spool_dir(self) -> Path:
        return Path(self.env.get("TRACKWAY_SPOOL_DIR", self.home / "spool"))

    def start(self) -> CollectorProcess:
        for _ in range(5):  # another process may grab the port between probe and bind
            self.port, self.admin_port = free_ports(2)
            self._runs += 1
            self.out_path = self.home / f"collector-{self._runs}.out"
            self.err_path = self.home / f"collector-{self._runs}.err"
            with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
                self.proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "trackway.cli",
                        "collect",
                        "--port",
                        str(self.port),
                        "--admin-port",
                        str(self.admin_port),
                        *self.args,
                    ],
                    env=self.env,
                    stdout=out,
                    stderr=err,
                    cwd=self.home,
                    start_new_session=True,  # its own process group: kill() takes the workers too
                )
            try:
                ready = self._wait_ready()
            except BaseException:
                self.close()  # never leave a stray collector behind a failed test
                raise
            if ready:
                return self
            if "cannot listen" not in self.stderr:
                raise AssertionError(f"collector exited with {self.proc.returncode}:\n{self.stderr}")
        raise AssertionError("could not find a free port for the collector")

    def _wait_ready(self) -> bool:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            try:
                # Every worker serving, not only the first: one still starting would read the settings
                # (the write keys file, say) later than the test expects.
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    health = self.health()
                    if health["workers_serving"] == health["workers"]:
                        return True
            except requests.RequestException:  # not listening yet, or not serving yet
                pass
            time.sleep(0.05)
        raise AssertionError(f"collector not ready after {DEADLINE}s:\n{self.stderr}")

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def health(self) -> dict:
        """The admin listener's /health: the live counters of all workers."""
        return requests.get(self.admin_url + "/health", timeout=10).json()

    def metrics(self) -> str:
        """The admin listener's /metrics (Prometheus text), all workers together."""
        r = requests.get(self.admin_url + "/metrics", timeout=10)
        assert r.status_code == 200, r.text
        return r.text

    def stop(self, sig: int = signal.SIGTERM, timeout: float = DEADLINE) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group (master and every worker) at once, like a crashed host."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(DEADLINE)
        wait_for(lambda: not _group_alive(self.proc.pid), "the collector's workers to die")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies still count for killpg; a group of zombies only is as good as dead.
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def request_from(
    source: str, port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to 127.0.0.1:``port`` from the local address ``source`` (127.0.0.2 is another client).

    Every 127.x address is this machine, so tests can play several clients with real sockets.
    Returns (status, headers with lower-case names, body).
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def trackway_environ(env: dict[str, str]):
    """A MonkeyPatch with exactly ``env`` as the TRACKWAY_* variables of this process (undo() restores)."""
    import pytest

    patch = pytest.MonkeyPatch()
    for key in [k for k in os.environ if k.startswith("TRACKWAY_")]:
        patch.delenv(key)
    for key, value in env.items():
        patch.setenv(key, value)
    return patch


def make_keyring(path: Path, *key_ids: str) -> Keyring:
    """A real keyring file at ``path`` (as `trackway privacy keys new` writes it), keys valid since 2020."""
    from trackway.pseudonym import append_key, load_keyring, new_key

    for n, key_id in enumerate(key_ids or ("test",)):
        append_key(path, new_key(key_id, f"202{n}-01-01T00:00:00Z"))
    return load_keyring(str(path))


def privacy_defaults(event: dict, keyring: Keyring | None) -> dict:
    """``event`` as the collector's privacy defaults store it (docs/privacy.md), for the fields these
    tests send: traits.email (not a group's) a pseudonym, or gone without a keyring; context.ip truncated."""
    from trackway.pseudonym import pseudonymise, truncate_ip

    out = copy.deepcopy(event)
    for traits in (out.get("traits"), (out.get("context") or {}).get("traits")):
        if (
            isinstance(traits, dict)
            and "email" in traits
            and (traits is not out.get("traits") or out.get("type") != "group")
        ):
            if keyring is None:
                del traits["email"]
            else:
                traits["email"] = pseudonymise(traits["email"], keyring)
    context = out.get("context")
    if isinstance(context, dict) and context.get("ip"):
        context["ip"] = truncate_ip(context["ip"])
    return out


def spool_segments(spool: Path) -> list[Path]:
    """Every segment file (open or sealed) of every worker's spool under ``spool``."""
    return sorted(p for p in Path(spool).rglob("*") if p.suffix in (".open", ".sealed"))


def read_lines(store: ObjectStore, prefix: str) -> list[dict]:
    """Every JSON line of every finished object under ``prefix`` (blank lines, as erasure leaves them, skipped)."""
    rows = []
    for key in store.list(prefix):
        assert key.endswith(".ndjson.gz"), key
        for line in gzip.decompress(store.read_bytes(key)).splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return rows


def local_store(home: Path) -> ObjectStore:
    return open_object_store((Path(home) / "raw").as_uri())


def wait_for_events(
    store: ObjectStore, message_ids, prefix: str = "events/", deadline: float = DEADLINE
) -> dict[str, dict]:
    """Poll until every message id is in the store; return them by id."""
    wanted = set(message_ids)

    def found():
        rows = {r["messageId"]: r for r in read_lines(store, prefix)}
        return rows if wanted <= rows.keys() else None

    return wait_for(found, f"{len(wanted)} events in {store.url}/{prefix}", deadline)


def start_moto(port: int = 0):
    """A real S3 endpoint on loopback (moto in server mode), returning (server, endpoint).

    Port 0 lets the OS pick a free port. ThreadedMotoServer.start() waits forever if its
    port is taken, so it is started from a helper thread with a deadline.
    """
    import threading

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    starter = threading.Thread(target=server.start, daemon=True)
    starter.start()
    starter.join(DEADLINE)
    if starter.is_alive():
        raise AssertionError(f"moto server could not start on port {port} (taken?)")
    host, real_port = server.get_host_and_port()
    return server, f"http://{host}:{real_port}"


def s3_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
