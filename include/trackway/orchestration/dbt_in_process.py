"""Three costs of running many dbt commands in one process, removed (issue 20 §6, §7).

Cosmos's ``InvocationMode.DBT_RUNNER`` runs each task's dbt inside the Airflow process. One process runs
every task of a run under ``airflow dags test`` (the demo), and a pytest worker runs hundreds. Two library
costs then grow with the process:

* dbt-common names each behavior flag's source with ``inspect.stack()`` and ``inspect.getmodule`` per frame
  (``dbt_common.behavior_flags.BehaviorFlagRendered._default_source``), on every adapter registration, so
  once per dbt command. Each ``getmodule`` miss walks all of ``sys.modules``.
* Cosmos calls ``gc.collect()`` after every dbt command (``cosmos.dbt.runner._cleanup_dbt_adapters``),
  a full scan of a heap that only grows.

* Each dbt command loads its manifest again (dbt's partial parse: reading it, checking every file) and
  writes ``manifest.json`` twice, once after loading it and once at the end (0.3-0.4 s of a 1.0-1.2 s command
  on the demo's data).

The flag's source is read from the frames' globals instead (the same answer: the first calling module
that is not behavior_flags itself; it only names the module in a behavior-change warning). After Cosmos's
collect, what survived is frozen, so the next command's collect scans only what that command made.
Reference counting still frees everything; only cycles made before a freeze stay. In a task process of
its own, the usual production case, both costs were small (13 ms a flag, about 0.1 s a collect).

The manifest a command loaded is kept, and the next Cosmos command of the same project, profile, target, vars
and dbt environment is given it (``dbtRunner(manifest=...)``, dbt's documented way to skip loading one), as a
long-lived dbt process would. The key holds the project's files by content, so an edited model or a tracking
plan's new views load a new manifest. A task process of its own starts empty and loads as before.
"""

from __future__ import annotations

import gc
import hashlib
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

_APPLIED: dict[str, Any] = {}
# dbt's output and dependencies inside a project folder: never what a manifest is parsed from.
_NOT_PROJECT_FILES = {"target", "logs", "dbt_packages", "__pycache__"}
# Flags that choose which nodes run: the same manifest serves every choice. Their values follow them.
_SELECTION_FLAGS = {"--select", "-s", "--models", "-m", "--exclude", "--selector", "--resource-type"}
# Commands that load a manifest and run nodes (parse, deps, debug and the rest are left alone).
_MANIFEST_COMMANDS = {("build",), ("run",), ("test",), ("seed",), ("snapshot",), ("compile",), ("source", "freshness")}
_KEPT_MANIFESTS = 2


def _default_source() -> str:
    from dbt_common import behavior_flags

    frame: Any = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if name and name != behavior_flags.__name__ and name in sys.modules:
            return str(name)
        frame = frame.f_back
    return "Unknown"


class _ManifestCache:
    """The manifests dbt loaded in this process, by what they were loaded from; the last few only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._manifests: OrderedDict[tuple[str, ...], Any] = OrderedDict()
        self._parsed = threading.local()
        self.hits = self.misses = 0

    def get(self, key: tuple[str, ...]) -> Any:
        with self._lock:
            manifest = self._manifests.get(key)
            if manifest is not None:
                self._manifests.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
            return manifest

    def put(self, key: tuple[str, ...], manifest: Any) -> None:
        with self._lock:
            self._manifests[key] = manifest
            self._manifests.move_to_end(key)
            while len(self._manifests) > _KEPT_MANIFESTS:
                self._manifests.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._manifests.clear()

    def recording(self, parse_manifest: Callable[..., Any]) -> Callable[..., Any]:
        """dbt's parse_manifest, noting on this thread the manifest it returned."""

        def parse_and_record(*args: Any, **kwargs: Any) -> Any:
            manifest = parse_manifest(*args, **kwargs)
            self._parsed.manifest = manifest
            return manifest

        return parse_and_record

    def take_parsed(self) -> Any:
        manifest = getattr(self._parsed, "manifest", None)
        self._parsed.manifest = None
        return manifest


MANIFESTS = _ManifestCache()


def _project_files_hash(project_dir: str) -> str:
    """The project's files by path and content, through Cosmos's per-task copy (a folder of symlinks)."""
    digest = hashlib.blake2b(digest_size=16)
    seen: set[str] = set()  # each real folder once: a symlink loop in a project must not walk forever
    for root, dirs, files in os.walk(project_dir, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if d not in _NOT_PROJECT_FILES and not d.startswith("."))
        for name in sorted(files):
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                digest.update(os.path.relpath(path, project_dir).encode() + b"\0" + handle.read() + b"\0")
    return digest.hexdigest()


def manifest_key(args: list[str], env: dict[str, str], cwd: str) -> tuple[str, ...] | None:
    """What a command's manifest is parsed from: the project's files, its other flags (profile, target, vars,
    ...), and the dbt and Trackway environment it runs with. None: a command that does not load a manifest."""
    words = 2 if args[:1] == ["source"] else 1
    if tuple(args[:words]) not in _MANIFEST_COMMANDS:
        return None
    flags: list[str] = []
    project_dir = cwd
    skipping = False
    for index in range(words, len(args)):
        arg = args[index]
        if arg.startswith("-"):
            skipping = arg in _SELECTION_FLAGS
            if arg == "--project-dir" and index + 1 < len(args):
                project_dir = args[index + 1]
        if not skipping and args[index - 1] != "--project-dir":
            flags.append(arg)
    environment = {**os.environ, **env}
    settings = sorted(f"{k}={v}" for k, v in environment.items() if k.startswith(("DBT_", "TRACKWAY_")))
    return (_project_files_hash(project_dir), *flags, "\0", *settings)


_COMMAND = threading.local()  # the kept manifest of the command this thread is running, if any


def _get_runner_with_kept_manifest(get_runner: Callable[..., Any]) -> Callable[..., Any]:
    """Cosmos's get_runner; a dbtRunner given the kept manifest while this thread's command has one."""

    def get(callbacks: Any = None) -> Any:
        manifest = getattr(_COMMAND, "manifest", None)
        if manifest is None:
            return get_runner(callbacks=callbacks)
        from dbt.cli.main import dbtRunner

        return dbtRunner(manifest=manifest, callbacks=callbacks or [])

    return get


def _run_command_with_kept_manifest(run_command: Callable[..., Any]) -> Callable[..., Any]:
    """Cosmos's dbt invocation, given the manifest an earlier command of the same key loaded."""

    def run(command: list[str], env: dict[str, str], cwd: str, callbacks: Any = None, **kwargs: Any) -> Any:
        key = manifest_key(command[1:], env, cwd) if _record_parsed_manifests() else None
        manifest = MANIFESTS.get(key) if key is not None else None
        if manifest is None:
            MANIFESTS.take_parsed()  # nothing left over from another command
            result = run_command(command, env, cwd, callbacks=callbacks, **kwargs)
            parsed = MANIFESTS.take_parsed()
            if key is not None and parsed is not None:
                MANIFESTS.put(key, parsed)
            return result
        _COMMAND.manifest = manifest
        try:
            return run_command(command, env, cwd, callbacks=callbacks, **kwargs)
        finally:
            _COMMAND.manifest = None

    return run


def speed_up_in_process_dbt() -> None:
    """Install the three changes once per process; a dbt-common, dbt or Cosmos without these functions is left
    alone."""
    if _APPLIED:
        return
    from dbt_common import behavior_flags

    rendered = getattr(behavior_flags, "BehaviorFlagRendered", None)
    if rendered is not None and hasattr(rendered, "_default_source"):
        _APPLIED["flag_source"] = rendered._default_source
        rendered._default_source = staticmethod(_default_source)

    import airflow  # noqa: F401  (before Cosmos, which cannot be imported first: a circular import in it)
    from cosmos.dbt import runner

    cleanup = getattr(runner, "_cleanup_dbt_adapters", None)
    if cleanup is not None:
        _APPLIED["cleanup"] = cleanup

        def cleanup_then_freeze() -> None:
            cleanup()
            gc.freeze()

        runner._cleanup_dbt_adapters = cleanup_then_freeze

    # dbt's own module is patched at the first command, not here: this runs while the DAG is parsed, and
    # importing dbt's CLI then would add about 3 s to every parse of events_transform.
    if hasattr(runner, "run_command") and hasattr(runner, "get_runner"):
        _APPLIED["run_command"] = runner.run_command
        runner.run_command = _run_command_with_kept_manifest(runner.run_command)
        _APPLIED["get_runner"] = runner.get_runner
        runner.get_runner = _get_runner_with_kept_manifest(runner.get_runner)
    _APPLIED.setdefault("done", True)


def _record_parsed_manifests() -> bool:
    """Wrap dbt's parse_manifest once, so that a command's loaded manifest can be kept; False if dbt has none."""
    if "parse_manifest" not in _APPLIED:
        from dbt.cli import requires

        if not hasattr(requires, "parse_manifest"):
            return False
        _APPLIED["parse_manifest"] = requires.parse_manifest
        requires.parse_manifest = MANIFESTS.recording(requires.parse_manifest)
    return True
