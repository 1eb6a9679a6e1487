"""Check events against the tracking plan, at the collector (and anywhere else in Python).

Validators are compiled once per plan load with jsonschema-rs; `PlanEnforcer`
holds the compiled plan, swaps in a new one when the folder changes (checked at
most once a second) or on `reload()` (the collector calls it on SIGHUP), and
answers `judge_batch(events, source)` with each event's verdict (version checked, violations).

Violation kinds (also the `kind` column of analytics.tracking_plan_violations):
unplanned_event, missing_required, wrong_type, not_in_enum, bad_format,
unexpected_property, invalid_value (other JSON Schema rules: minimum, pattern...),
deprecated_event, unknown_version.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs

from trackway.config import Settings
from trackway.plan.model import IMPLIED_NAMES, EventSpec, Plan, PlanError, load_plan, plan_version
from trackway.plan.privacy import PlanPrivacy
from trackway.plan.schema import SchemaProblem, compile_schema, schema_problems

log = logging.getLogger("trackway.plan")

MODES = ("allow", "flag", "block")
KINDS = (
    "unplanned_event",
    "missing_required",
    "wrong_type",
    "not_in_enum",
    "bad_format",
    "unexpected_property",
    "invalid_value",
    "deprecated_event",
    "unknown_version",
)
_KIND_BY_ERROR = {
    "Type": "wrong_type",
    "Required": "missing_required",
    "Enum": "not_in_enum",
    "Constant": "not_in_enum",
    "Format": "bad_format",
    "AdditionalProperties": "unexpected_property",
    "UnevaluatedProperties": "unexpected_property",
}


@dataclass(frozen=True)
class Violation:
    kind: str
    property: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "property": self.property, "message": self.message}

    def __str__(self) -> str:
        return self.message


def event_key(event: dict, implied_type: str | None = None) -> tuple[str, str]:
    """(type, plan name) of a Segment message, named as analytics.events names it."""
    etype = str(implied_type or event.get("type") or "")
    if etype == "track":
        return etype, str(event.get("event") or "")
    return etype, IMPLIED_NAMES.get(etype, etype)


def requested_major(event: dict) -> int | None:
    """Segment Protocols' context.protocols.event_version (1, "2", "2-0-1"), as a major version."""
    context = event.get("context")
    protocols = context.get("protocols") if isinstance(context, dict) else None
    raw = protocols.get("event_version") if isinstance(protocols, dict) else None
    if raw is None or isinstance(raw, bool):
        return None
    try:
        return int(str(raw).strip().replace(".", "-").split("-")[0])
    except ValueError:
        return -1


def _violations(validator: Any, instance: Any, prefix: str = "") -> list[Violation]:
    out: list[Violation] = []
    for err in validator.iter_errors(instance):
        kind_name = type(err.kind).__name__
        kind = _KIND_BY_ERROR.get(kind_name, "invalid_value")
        path = [str(p) for p in err.instance_path]
        prop: str | None = path[0] if path else None
        if kind == "missing_required":
            prop = str(getattr(err.kind, "property", None) or (path[0] if path else ""))
        if kind == "unexpected_property":
            unexpected = list(getattr(err.kind, "unexpected", []) or [])
            for name in unexpected:
                out.append(Violation(kind, prefix + str(name), f"unexpected property '{prefix}{name}'"))
            if unexpected:
                continue
        where = f"'{prefix}{'.'.join(path)}'" if path else f"'{prefix}{prop}'" if prop else "payload"
        out.append(
            Violation(kind, prefix + prop if prop else None, f"{kind.replace('_', ' ')} at {where}: {err.message}")
        )
    return out


def _compiled(schema: dict, where: str) -> Any:
    """The schema's validator (offline: a plan never makes the collector fetch a $ref), or a one-line PlanError."""
    try:
        return compile_schema(schema)
    except (jsonschema_rs.ValidationError, ValueError):
        problems = schema_problems(schema) or [SchemaProblem((), "cannot be compiled")]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PlanError(f"{where}: {problems[0]}{more}") from None


class CompiledPlan:
    """One plan with a validator per (event, major version) and one for the common context."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.privacy = PlanPrivacy(plan)  # PII classes and actions (PlanError on a bad one, like a bad schema)
        self.version = plan_version(plan)  # recorded with every verdict (trackway.plan.verdict)
        self._validators: dict[tuple[str, str, int], Any] = {}
        self._events: dict[tuple[str, str], EventSpec] = {}
        for event in plan.events:
            self._events[event.key] = event
            for version in event.versions:
                where = f"{event.path}: event '{event.name}' version {version.version}"
                self._validators[(event.type, event.name, version.version.model)] = _compiled(version.schema, where)
        self._common = _compiled(plan.common, f"{plan.root / 'common.yaml'}: context") if plan.common else None
        self._fast: dict[tuple[str, str], tuple[EventSpec, dict[int, Any]]] = {
            key: (spec, {m: v for (t, n, m), v in self._validators.items() if (t, n) == key})
            for key, spec in self._events.items()
        }

    def check(self, event: dict, implied_type: str | None = None, batch_context: dict | None = None) -> list[Violation]:
        return self.judge(event, implied_type, batch_context)[1]

    def judge(
        self, event: dict, implied_type: str | None = None, batch_context: dict | None = None
    ) -> tuple[str | None, list[Violation]]:
        """(the major version the event was checked against, as text, or None; its violations)."""
        # Hot path (every event in flag/block mode): plain dict lookups, no allocation for a valid event.
        etype = implied_type or event.get("type")
        name = event.get("event") if etype == "track" else IMPLIED_NAMES.get(etype, etype)  # type: ignore[arg-type]
        context = event.get("context")
        if not isinstance(context, dict):
            context = {}
        if batch_context:
            context = {**batch_context, **context}
        out: list[Violation] = []
        if self._common is not None and not self._common.is_valid(context):
            out = _violations(self._common, context, "context.")
        protocols = context.get("protocols")
        entry = self._fast.get((etype, name))  # type: ignore[arg-type]
        if entry is None:
            asked = requested_major(event) if protocols is not None else None
            out.append(Violation("unplanned_event", None, f"{etype} '{name}' is not in the tracking plan"))
            return _major_text(asked), out
        spec, validators = entry
        if spec.status == "deprecated":
            out.append(Violation("deprecated_event", None, f"'{name}' is deprecated in the tracking plan"))
        major = requested_major(event) if protocols is not None else spec.current.version.model
        if major is None:
            major = spec.current.version.model
        validator = validators.get(major)
        if validator is None:
            known = ", ".join(str(v.version.model) for v in spec.versions)
            out.append(
                Violation("unknown_version", None, f"'{name}' has no version {major} in the plan (known: {known})")
            )
            return _major_text(major), out
        payload = event.get(spec.payload_field)
        if payload is None and spec.payload_field == "traits":
            payload = context.get("traits")  # RudderStack sends identify traits in context.traits
        if payload is None:
            payload = {}
        if not validator.is_valid(payload):
            out += _violations(validator, payload)
        return _major_text(major), out


def _major_text(major: int | None) -> str | None:
    """A major as the warehouse shows it; None when absent or unreadable (requested_major's -1)."""
    return str(major) if major is not None and major >= 0 else None


def _signature(root: Path) -> tuple:
    """Cheap change detector: (path, mtime_ns, size) of every file in the plan folder."""
    entries = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)
            except OSError:
                continue
            entries.append((full, st.st_mtime_ns, st.st_size))
    return tuple(sorted(entries))


class PlanEnforcer:
    """Thread-safe: request threads call judge_batch while a reload swaps the compiled plan."""

    def __init__(
        self,
        root: Path,
        modes: dict[str, str],
        default_mode: str = "flag",
        check_interval: float = 1.0,
        *,
        watch: bool = False,
    ):
        self.root = Path(root)
        self.modes = modes
        self.default_mode = default_mode
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._signature = _signature(self.root)
        self._compiled = CompiledPlan(load_plan(self.root))  # a broken plan at start-up is an error
        self._next_check = time.monotonic() + check_interval
        self.reloads = 0
        if watch:  # each collector worker notices a changed folder within a second, busy or idle
            threading.Thread(target=self._watch, name="plan-watch", daemon=True).start()

    def _watch(self) -> None:
        while True:
            time.sleep(self.check_interval)
            try:
                if _signature(self.root) != self._signature:
                    self.reload()
            except Exception:  # never let the watcher die; the next tick tries again
                log.exception("tracking plan watch failed")

    @property
    def compiled(self) -> CompiledPlan:
        return self._compiled

    def mode_for(self, source: str) -> str:
        return self.modes.get(source, self.default_mode)

    def reload(self) -> bool:
        """Recompile from the folder; a broken plan is logged and the previous one kept."""
        with self._lock:
            signature = _signature(self.root)
            try:
                compiled = CompiledPlan(load_plan(self.root))
            except PlanError as exc:
                log.error("tracking plan not reloaded, keeping the previous one: %s", exc)
                self._signature = signature  # don't retry a broken plan every second
                return False
            self._compiled, self._signature = compiled, signature
            self.reloads += 1
            log.info("tracking plan reloaded from %s: %d events", self.root, len(compiled.plan.events))
            return True

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self.check_interval
        if _signature(self.root) != self._signature:
            self.reload()

    def judge_batch(
        self,
        events: list[dict],
        source: str,
        *,
        implied_type: str | None = None,
        batch_context: dict | None = None,
    ) -> tuple[str, str, list[tuple[str | None, list[Violation]]]]:
        """(mode, plan version, (event version, violations) per event); `allow` judges nothing."""
        mode = self.mode_for(source)
        if mode == "allow":
            return mode, "", [(None, []) for _ in events]
        self._maybe_reload()
        compiled = self._compiled
        return mode, compiled.version, [compiled.judge(e, implied_type, batch_context) for e in events]


def enforcer_from_settings(settings: Settings, *, watch: bool = False) -> PlanEnforcer | None:
    """The collector's enforcer, or None when no TRACKWAY_PLAN_DIR is set (nothing is validated)."""
    if settings.plan_dir is None:
        return None
    return PlanEnforcer(settings.plan_dir, settings.plan_modes, settings.plan_default_mode, watch=watch)
