"""dbt's parse carried from test to test on one pytest worker.

dbt reuses a parse (``partial_parse.msgpack`` under its target path) only for the same
connection: its ``ManifestStateCheck`` hashes the profile's rendered connection, that is the
DuckDB file's path or PostgreSQL's database name. A folder and a database per test meant a
full parse (4-5 s of CPU on the 2-core machine) in every test that runs dbt: 50 of them in
`make test`. So the tests that run dbt work in one folder path (and one database name) per
worker, and the folder moves to the test's own temporary directory afterwards, where what a
failed test left stays to be read. dbt still checks every project file, the vars, the profile
and the target against the parse it finds, as it does for users.
"""

from __future__ import annotations

import gc
import shutil
import sys
from pathlib import Path

import pytest

# The files dbt's parse is in, under TRACKWAY_HOME: run_dbt's target path and the compiled manifest's.
HOME_PARSE_FILES = ("dbt/target/partial_parse.msgpack", "dbt/manifest/partial_parse.msgpack")


def worker_name(config: pytest.Config) -> str:
    """pytest-xdist's worker id (``gw0``...), ``main`` without xdist."""
    return getattr(config, "workerinput", {}).get("workerid", "main")


class ReusedFolder:
    """One path per worker and use; ``start`` empties it and brings the last parse back, ``finish`` keeps
    the new parse and moves the folder to ``keep_at``."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory, use: str, parse_files: tuple[str, ...]):
        base = tmp_path_factory.getbasetemp()
        self.path = base / use
        self._cache = base / "dbt-parse-cache" / use
        self._parse_files = parse_files
        self.in_use = False

    def start(self, kind: str | None) -> Path:
        """kind: whose last parse to bring (None: none)."""
        if self.in_use:
            raise RuntimeError(f"{self.path} is in use: a fixture of a wider scope holds it")
        shutil.rmtree(self.path, ignore_errors=True)  # a run interrupted before its teardown
        self.path.mkdir(parents=True)
        self.in_use = True
        if kind is not None:
            self.bring_parse(kind)
        return self.path

    def bring_parse(self, kind: str) -> None:
        _copy(self._cache / kind, self.path, self._parse_files)

    def finish(self, kind: str | None, keep_at: Path, duckdb_file: Path | None) -> None:
        """kind: the cache to keep this parse in, None when the warehouse was not the reusable one."""
        try:
            if kind is not None:
                _copy(self.path, self._cache / kind, self._parse_files)
            self.path.rename(keep_at)
        finally:
            self.in_use = False
        if duckdb_file is not None:
            release_duckdb_file(duckdb_file)


def _copy(source: Path, destination: Path, names: tuple[str, ...]) -> None:
    """Each parse file of ``source`` to ``destination``; one ``source`` lacks is removed there."""
    for name in names:
        if (source / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, destination / name)
        else:
            (destination / name).unlink(missing_ok=True)


def release_duckdb_file(path: Path) -> None:
    """Nothing in this process may keep ``path`` open: the next test opens a new file at the same path.

    dbt-duckdb keeps its handle for the same credentials (trackway's release_duckdb closes it), and
    DuckDB gives a new connection to an instance still open on the same path: a leak would hand the
    next test this test's data, so it fails this test instead.
    """
    if "duckdb" not in sys.modules:
        return
    if "dbt.adapters.duckdb.connections" in sys.modules:
        from trackway.transform.dbt_runner import release_duckdb

        release_duckdb()  # ... and collects what held a connection
    else:
        gc.collect()
    import duckdb

    try:
        duckdb.connect(str(path)).close()  # its folder has moved: this fails unless an instance is still open
    except duckdb.Error:
        return
    pytest.fail(f"a DuckDB connection to {path} was still open after the test: close it")


def module_home(request: pytest.FixtureRequest, keep_at: Path, kind: str | None = "duckdb") -> Path:
    """TRACKWAY_HOME for a module's fixture: the worker's one path for it, moved to ``keep_at`` after the module.

    kind: the parse to bring and keep (``duckdb`` for the home's own DuckDB file, ``postgres`` with
    ``worker_database``); None when the fixture's dbt runs with settings no other module shares
    (a tracking plan's metrics, another project). A second such home at once gets ``keep_at`` itself.
    """
    folder = worker_folder(request.getfixturevalue("tmp_path_factory"), "module-home", HOME_PARSE_FILES)
    if folder.in_use:
        keep_at.mkdir(parents=True, exist_ok=True)
        return keep_at
    home = folder.start(kind)
    request.addfinalizer(lambda: folder.finish(kind, keep_at, home / "warehouse.duckdb"))
    return home


def worker_database(request: pytest.FixtureRequest, use: str) -> str:
    """A PostgreSQL database name of this worker's for one use (dbt's parse is per database name)."""
    return f"{use}_{worker_name(request.config)}"


def worker_folder(tmp_path_factory: pytest.TempPathFactory, use: str, parse_files: tuple[str, ...]) -> ReusedFolder:
    """The worker's one folder for ``use`` (``home``, ``dbt-work``, ``module-home``): one object per use, which
    knows whether a fixture holds it."""
    folder = _FOLDERS.get(use)
    if folder is None:
        folder = _FOLDERS[use] = ReusedFolder(tmp_path_factory, use, parse_files)
    return folder


_FOLDERS: dict[str, ReusedFolder] = {}
