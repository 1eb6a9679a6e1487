"""A small process supervisor in the manner of honcho/foreman: prefixed logs, one stop for all.

Each child runs in a session of its own, so the terminal's Ctrl-C reaches only
the supervisor, which then sends each child exactly one SIGTERM (the collector
reads a second one as "give up on uploads"). A child that exits while the
others run is reported, and the rest are stopped: a stack without its
scheduler must not look alive. What does not stop within the grace period is
killed, with whatever its process group left behind.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, TextIO

SUPERVISOR = "supervisor"
_COLORS = ("36", "33", "32", "35", "34", "96", "93", "92")


@dataclass
class _Child:
    name: str
    proc: subprocess.Popen
    reader: threading.Thread | None = None
    reported: bool = field(default=False)


class Supervisor:
    """Start named commands, prefix their output, stop them together (on request or when one dies)."""

    def __init__(
        self,
        *,
        out: TextIO | None = None,
        log_path: Path | None = None,
        stop_seconds: float = 90.0,
        names: tuple[str, ...] = (),
    ) -> None:
        self.out = out or sys.stdout
        self.stop_seconds = stop_seconds
        self.children: list[_Child] = []
        self._write_lock = threading.Lock()
        self._width = max([len(SUPERVISOR), *map(len, names)])
        color = hasattr(self.out, "isatty") and self.out.isatty() and not os.environ.get("NO_COLOR")
        self._colors = itertools.cycle(_COLORS) if color else None
        self._color_of: dict[str, str] = {}
        self._log: IO[str] | None = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._stop_reason: str | None = None
        self._signals = 0
        self.failed: str | None = None  # "<name> exited with code N" when a child died on its own

    # -- output ---------------------------------------------------------------

    def say(self, text: str, name: str = SUPERVISOR) -> None:
        """One line, prefixed with ``name``, to the terminal and the stack log."""
        self._width = max(self._width, len(name))
        prefix = f"{name:<{self._width}} | "
        shown = prefix
        if self._colors is not None:
            code = self._color_of.setdefault(name, "1" if name == SUPERVISOR else next(self._colors))
            shown = f"\033[{code}m{prefix}\033[0m"
        with self._write_lock:
            self.out.write(shown + text + "\n")
            self.out.flush()
            if self._log is not None:
                self._log.write(f"{datetime.now(UTC):%H:%M:%SZ} {prefix}{text}\n")

    def announce(self, lines: list[str]) -> None:
        """Lines for the person at the terminal only (they may hold a password): not in the stack log."""
        with self._write_lock:
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.say(raw.decode("utf-8", errors="replace").rstrip("\r\n"), name)
        stream.close()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> _Child:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: signals come from here only
        )
        child = _Child(name, proc)
        assert proc.stdout is not None
        child.reader = threading.Thread(target=self._pump, args=(name, proc.stdout), daemon=True)
        child.reader.start()
        return child

    # -- running --------------------------------------------------------------

    def run(self, name: str, argv: list[str], env: dict[str, str]) -> int:
        """Run a one-shot command to its end (prefixed output); its exit code. A stop request ends it too."""
        child = self._spawn(name, argv, env)
        while child.proc.poll() is None:
            if self._stop_reason is not None:
                self._terminate([child])
                break
            time.sleep(0.1)
        if child.reader is not None:
            child.reader.join(timeout=5)
        return child.proc.wait()

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        """Start a long-running command; ``wait`` watches it."""
        self.say(f"starting {name}: {' '.join(argv)}")
        self.children.append(self._spawn(name, argv, env))

    def request_stop(self, reason: str) -> None:
        """Ask ``wait`` to stop everything (safe from a signal handler: it only sets a flag)."""
        if self._stop_reason is None:
            self._stop_reason = reason

    @property
    def stopping(self) -> bool:
        return self._stop_reason is not None

    def install_signal_handlers(self) -> None:
        """SIGINT (Ctrl-C) and SIGTERM (`trackway down`) stop the stack; a second one kills it at once."""

        def handler(signum: int, _frame: FrameType | None) -> None:
            self._signals += 1
            self.request_stop(signal.Signals(signum).name)

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def wait(self) -> int:
        """Until a stop is asked for or a child exits; then stop all. 0 after a requested stop, 1 if one died."""
        while self._stop_reason is None:
            for child in self.children:
                code = child.proc.poll()
                if code is not None and self._stop_reason is None:
                    child.reported = True
                    self.failed = f"{child.name} exited with code {code}"
                    self.say(f"{self.failed}: stopping the stack (its last lines are above)")
                    self.request_stop(self.failed)
            time.sleep(0.2)
        self.say(f"stopping ({self._stop_reason}): SIGTERM to {', '.join(c.name for c in self._running())}")
        self._terminate(self.children)
        return 1 if self.failed else 0

    def _running(self) -> list[_Child]:
        return [c for c in self.children if c.proc.poll() is None]

    def _terminate(self, children: list[_Child]) -> None:
        """One SIGTERM to each process group; SIGKILL what is left after ``stop_seconds`` or a second signal."""
        signals_before = self._signals
        for child in children:
            if child.proc.poll() is None:
                _signal_group(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_seconds
        while any(c.proc.poll() is None for c in children):
            if time.monotonic() > deadline or self._signals > max(signals_before, 1):
                late = [c.name for c in children if c.proc.poll() is None]
                self.say(f"killing {', '.join(late)} (not stopped after SIGTERM)")
                for child in children:
                    if child.proc.poll() is None:
                        _signal_group(child.proc.pid, signal.SIGKILL)
                break
            time.sleep(0.1)
        for child in children:
            code = child.proc.wait()
            _signal_group(child.proc.pid, signal.SIGKILL)  # whatever its group left behind (orphaned workers)
            if child.reader is not None:
                child.reader.join(timeout=5)
            if not child.reported:
                child.reported = True
                self.say(f"{child.name} stopped (exit code {code})")

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
