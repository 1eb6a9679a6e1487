"""One stack per TRACKWAY_HOME: a lock held while it runs, its pid, and what it serves (no secrets).

The lock (``flock`` on ``$TRACKWAY_HOME/stack/up.lock``) is what says "running":
the kernel drops it when the supervisor dies, however it dies, so a stale pid
file never blocks the next ``trackway up`` and ``trackway down`` never signals
a pid that was reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from trackway.config import Settings


class StackRunning(RuntimeError):
    """A stack already runs for this TRACKWAY_HOME; the message says where and how to stop it."""


@dataclass(frozen=True)
class StackInfo:
    pid: int
    home: str
    started_at: float
    collector_url: str
    airflow_url: str
    airflow_passwords_file: str | None = None  # the simple auth manager's, when that is the auth manager


def stack_dir(home: Path) -> Path:
    return home / "stack"


def _lock_path(home: Path) -> Path:
    return stack_dir(home) / "up.lock"


def _info_path(home: Path) -> Path:
    return stack_dir(home) / "stack.json"


def _is_locked(home: Path) -> bool:
    path = _lock_path(home)
    if not path.exists():
        return False
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def running_stack(settings: Settings) -> StackInfo | None:
    """The stack running for this TRACKWAY_HOME, or None."""
    home = settings.home
    if not _is_locked(home):
        return None
    try:
        return StackInfo(**json.loads(_info_path(home).read_text()))
    except (OSError, ValueError, TypeError):
        return StackInfo(pid=0, home=str(home), started_at=0.0, collector_url="?", airflow_url="?")


@contextlib.contextmanager
def hold_home(settings: Settings) -> Iterator[IO[str]]:
    """Hold this home's stack lock for the duration; StackRunning when another stack holds it."""
    home = settings.home
    stack_dir(home).mkdir(parents=True, exist_ok=True)
    handle = open(_lock_path(home), "a")  # noqa: SIM115 (held until the stack stops)
    acquired = False
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            acquired = True
        except BlockingIOError:
            other = running_stack(settings)
            where = f" (pid {other.pid}: collector {other.collector_url}, Airflow {other.airflow_url})" if other else ""
            raise StackRunning(
                f"a stack is already running for TRACKWAY_HOME={home}{where}. Stop it first (`make down`, "
                "`trackway down`, or Ctrl-C where it runs), or give this one another TRACKWAY_HOME and ports "
                "(TRACKWAY_COLLECTOR_PORT, TRACKWAY_AIRFLOW_PORT)"
            ) from None
        (stack_dir(home) / "up.pid").write_text(f"{os.getpid()}\n")
        yield handle
    finally:
        if acquired:  # ours to remove; the lock itself goes with the handle
            _info_path(home).unlink(missing_ok=True)
            (stack_dir(home) / "up.pid").unlink(missing_ok=True)
        handle.close()


def stack_login(info: StackInfo) -> tuple[str, str] | None:
    """The first user and password of the stack's simple auth manager (its passwords file), if it has one."""
    if not info.airflow_passwords_file:
        return None
    try:
        passwords = json.loads(Path(info.airflow_passwords_file).read_text() or "{}")
    except (OSError, ValueError):
        return None
    return next(iter(passwords.items()), None)


def write_info(info: StackInfo) -> None:
    path = _info_path(Path(info.home))
    path.write_text(json.dumps(asdict(info), indent=2) + "\n")


def stop_stack(settings: Settings, timeout: float) -> str:
    """SIGTERM to the supervisor of this home's stack; wait until its lock is released. What happened, in words."""
    info = running_stack(settings)
    if info is None:
        return f"no stack is running for TRACKWAY_HOME={settings.home}"
    pid = info.pid or _pid_from_file(settings.home)
    if not pid:
        return f"a stack holds {_lock_path(settings.home)} but its pid is unknown: stop it where it runs (Ctrl-C)"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_locked(settings.home):
            return f"stopped the stack of TRACKWAY_HOME={settings.home} (pid {pid})"
        time.sleep(0.2)
    raise TimeoutError(f"the stack (pid {pid}) is still stopping after {timeout:.0f}s; see {settings.home}/logs")


def _pid_from_file(home: Path) -> int:
    try:
        return int((stack_dir(home) / "up.pid").read_text().strip())
    except (OSError, ValueError):
        return 0
