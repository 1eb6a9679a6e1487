"""The dbt manifest events_transform is drawn from, compiled ahead of time (adr/0014).

``trackway transform compile`` ``dbt parse``s the dbt project the DAG runs into
``TRACKWAY_HOME/dbt/manifest/manifest.json``. Beside it goes ``fingerprint.json``:
hashes of what the manifest was built from (the dbt project's files, the dbt and
adapter versions, the dbt target). The tracking plan is not among them: it has no dbt
models (adr/0029), so a plan change never makes the manifest stale. Parsing the DAG recomputes the fingerprint (file reads, a few
milliseconds) and compares: it never runs dbt and never writes the project copy.
A stale or missing manifest fails the DAG import, saying what changed and that
``trackway transform compile`` fixes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from trackway.config import ConfigError, Settings
from trackway.transform.dbt_runner import DBT_PROFILE, HOURLY_DBT_VARS, plan_has_dbt_models, project_path, run_dbt

log = logging.getLogger(__name__)

COMPILE_COMMAND = "trackway transform compile"
FINGERPRINT_FILE = "fingerprint.json"
PARTIAL_PARSE_FILE = "partial_parse.msgpack"
# dbt's own output inside a project folder: never an input of the manifest.
_NOT_INPUTS = {"target", "logs", "dbt_packages", "__pycache__"}
_ADAPTERS = {"duckdb": "dbt-duckdb", "postgres": "dbt-postgres", "bigquery": "dbt-bigquery"}
# What each fingerprint part means, for the stale message.
_PARTS = {
    "dbt project": "the dbt project's files changed",
    "tracking plan": "the plan's dbt models (its analytics_x views) or its metrics.yaml changed",
    "dbt versions": "dbt or its adapter was upgraded",
    "dbt target": "the warehouse's dbt target changed",
    "project used by the DAG": "the dbt project folder moved",
}


class ManifestError(RuntimeError):
    """The manifest is missing or stale; the message says what changed and which command fixes it."""


@dataclass(frozen=True)
class ManifestState:
    """What ``check_manifest`` found: ``current``, ``stale`` or ``missing``, and why."""

    status: str
    manifest: Path
    reasons: list[str] = field(default_factory=list)

    @property
    def current(self) -> bool:
        return self.status == "current"

    def line(self) -> str:
        """One line for people (``trackway status``, the DAG's import error)."""
        if self.current:
            return f"dbt manifest: current ({self.manifest})"
        return f"dbt manifest: {self.status} ({'; '.join(self.reasons)}): run `{COMPILE_COMMAND}`"


@dataclass(frozen=True)
class CompileResult:
    manifest: Path
    seconds: float
    compiled: bool  # False: the manifest was current already, dbt did not run


def manifest_dir(settings: Settings) -> Path:
    return settings.home / "dbt" / "manifest"


def manifest_path(settings: Settings) -> Path:
    return manifest_dir(settings) / "manifest.json"


def _tree_hash(root: Path) -> str:
    """Content hash of the files under ``root`` (paths included), dbt's output and dotfiles left out."""
    digest = hashlib.blake2b(digest_size=16)
    if not root.is_dir():
        return "absent"
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or _NOT_INPUTS & set(rel.parts) or any(p.startswith(".") for p in rel.parts):
            continue
        digest.update(rel.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _dbt_versions(settings: Settings) -> str:
    """dbt-core and the adapter that parse the project: this environment's, or the dbt executable's venv."""
    wanted = {"dbt-core", _ADAPTERS.get(settings.warehouse.kind, "")}
    if settings.dbt_executable is None:
        dists = []
        for name in sorted(wanted - {""}):
            with contextlib.suppress(metadata.PackageNotFoundError):  # dbt says which adapter is missing
                dists.append(metadata.distribution(name))
    else:
        venv = settings.dbt_executable.parent.parent
        paths = [str(p) for p in venv.glob("lib/python*/site-packages")]
        if not paths:  # not a virtual environment: the executable's path is all we can tell cheaply
            return f"dbt at {settings.dbt_executable}"
        dists = [d for d in metadata.distributions(path=paths) if d.metadata["Name"].lower() in wanted]
    return ", ".join(sorted(f"{d.metadata['Name'].lower()} {d.version}" for d in dists))


def _plan_models(settings: Settings) -> str:
    """What the plan puts into the dbt project: its generated models and metrics.yaml, by content; "none" for nothing.

    Typed views are deployed, not compiled (adr/0029), so a plan change that touches no analytics_x
    view and no metric declaration leaves the manifest current.
    """
    from trackway.plan.metrics import METRICS_FILE

    if settings.plan_dir is None:
        return "none"
    files: dict[str, str] = {}
    try:
        if plan_has_dbt_models(settings):
            from trackway.plan.dbtgen import generate
            from trackway.plan.model import load_plan
            from trackway.plan.xgen import app_links

            files = generate(load_plan(settings.plan_dir), settings.typed_schema, app_links(settings.app_databases()))
    except (ValueError, ConfigError) as exc:  # compile says what is wrong (PlanError is a ValueError)
        return f"unreadable ({str(exc)[:80]})"
    metrics = Path(settings.plan_dir) / METRICS_FILE
    if not files and not metrics.is_file():
        return "none"
    digest = hashlib.blake2b(digest_size=16)
    for rel in sorted(files):
        digest.update(f"{rel}\0{files[rel]}\0".encode())
    digest.update(metrics.read_bytes() if metrics.is_file() else b"")
    return digest.hexdigest()


def fingerprint(settings: Settings) -> dict[str, str]:
    """What the manifest depends on, each part a short string; no dbt, no writes."""
    parts = {"dbt project": _tree_hash(settings.dbt_project_dir)}
    parts["tracking plan"] = _plan_models(settings)
    parts["dbt versions"] = _dbt_versions(settings)
    parts["dbt target"] = settings.warehouse.dbt_env()["TRACKWAY_DBT_TARGET"]
    parts["project used by the DAG"] = str(project_path(settings))
    return parts


def check_manifest(settings: Settings) -> ManifestState:
    """Compare the manifest's fingerprint with the inputs as they are now: a cheap, read-only check."""
    manifest = manifest_path(settings)
    recorded_file = manifest.parent / FINGERPRINT_FILE
    if not manifest.is_file() or not recorded_file.is_file():
        missing = "no manifest" if not manifest.is_file() else f"no {FINGERPRINT_FILE} beside it"
        return ManifestState("missing", manifest, [f"{missing} in {manifest.parent}"])
    try:
        recorded = json.loads(recorded_file.read_text())["parts"]
    except (ValueError, KeyError, TypeError):
        return ManifestState("stale", manifest, [f"{recorded_file} is unreadable"])
    now = fingerprint(settings)
    reasons = []
    for part, value in now.items():
        if recorded.get(part) != value:
            what = _PARTS[part]
            if part in ("dbt versions", "dbt target", "project used by the DAG"):
                what += f" (compiled for {recorded.get(part)}, now {value})"
            reasons.append(what)
    if reasons:
        return ManifestState("stale", manifest, reasons)
    if not (project_path(settings) / "dbt_project.yml").is_file():
        return ManifestState("missing", manifest, [f"the dbt project {project_path(settings)} is gone"])
    return ManifestState("current", manifest)


def require_current_manifest(settings: Settings) -> Path:
    """The manifest's path; ManifestError (what changed, which command) unless it is current."""
    state = check_manifest(settings)
    if not state.current:
        raise ManifestError(
            f"events_transform cannot be drawn: {state.line()}. It writes the dbt project "
            f"{project_path(settings)} and {state.manifest}; parsing a DAG never runs dbt (adr/0014)."
        )
    return state.manifest


def _seed_partial_parse(parsed: Path, project_target: Path) -> None:
    """Put the parse where dbt and Cosmos look for one: the project's ``target`` folder.

    Cosmos starts a task's dbt from the newer of that file and its own cache; without this, the first task
    after a compile (every task of a fresh Airflow home: the demo) parsed the whole project again (~5-7 s).
    dbt checks the file's project files, vars, profile and target itself, so a stale one only costs that parse.
    A read-only project (an image) keeps what it has.
    """
    if not parsed.is_file():
        return
    try:
        project_target.mkdir(exist_ok=True)
        tmp = project_target / f".{PARTIAL_PARSE_FILE}.{os.getpid()}"
        shutil.copyfile(parsed, tmp)
        os.replace(tmp, project_target / PARTIAL_PARSE_FILE)
    except OSError as exc:
        log.info("dbt's partial parse not copied into %s (%s): the first task parses the project", project_target, exc)


def compile_manifest(settings: Settings, *, force: bool = False) -> CompileResult:
    """``dbt parse`` the project into the manifest folder.

    ``dbt parse`` reads files only: no warehouse connection, so an install or an image
    build can run it. The fingerprint is taken before dbt runs and written last, so a
    failed or concurrent compile never leaves a manifest that claims to be current.
    """
    started = time.monotonic()
    manifest = manifest_path(settings)
    if not force and check_manifest(settings).current:
        return CompileResult(manifest, time.monotonic() - started, compiled=False)
    parts = fingerprint(settings)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    (manifest.parent / FINGERPRINT_FILE).unlink(missing_ok=True)
    # --quiet: dbt's own start-up lines say nothing the caller does not print itself; errors still show.
    # The profile, target and vars exactly as events_transform's tasks pass them: dbt keeps a partial parse only
    # for the same ones.
    target = settings.warehouse.dbt_env()["TRACKWAY_DBT_TARGET"]
    run_dbt(
        settings,
        "parse",
        "--quiet",
        "--target-path",
        str(manifest.parent),
        *("--profile", DBT_PROFILE, "--target", target, "--vars", json.dumps(HOURLY_DBT_VARS)),
    )
    if not manifest.is_file():
        raise ManifestError(
            f"dbt parse did not write {manifest}; see the dbt log under {settings.home / 'dbt' / 'logs'}"
        )
    _seed_partial_parse(manifest.parent / PARTIAL_PARSE_FILE, project_path(settings) / "target")
    seconds = time.monotonic() - started
    record = {"parts": parts, "compiled_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": seconds}
    tmp = manifest.parent / f".{FINGERPRINT_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, manifest.parent / FINGERPRINT_FILE)
    return CompileResult(manifest, seconds, compiled=True)
