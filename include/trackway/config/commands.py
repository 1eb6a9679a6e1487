"""``trackway config check`` and ``trackway config docs``: the registry for people and for scripts.

Both show secrets only in their redacted form: the check prints what is in
effect, the docs what can be set, and neither is allowed to leak a password.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from trackway.config.errors import ConfigError
from trackway.config.redact import MASK, redact_url, redact_webhook
from trackway.config.registry import COMPONENTS, READS, REFERENCE_PATH, SETTINGS, Setting
from trackway.config.settings import Settings, snapshot_environ, unknown_variable_message, unknown_variables

_COMPONENT_TITLES = {
    "all": "Every component (where the data is)",
    "collector": "Collector (`trackway collect`)",
    "load": "Load (events_load, `trackway load`)",
    "transform": "Transform (events_transform, `trackway transform`)",
    "plan": "Tracking plan (collector enforcement, typed views, `trackway plan`)",
    "privacy": "Privacy (pseudonymisation keys, what the collector does to personal data; erasure requests, the privacy DAG; docs/privacy.md)",
    "dags": "DAGs (retries, deadlines, alerts, backfills through Airflow)",
    "health": "Health checks (`trackway health`, the pipeline_health DAG)",
    "stack": "The local stack (`trackway up`, `make up`)",
    "bi": "Metabase (`trackway bi metabase-setup`, docker-compose.yaml's metabase profile; docs/bi.md)",
    "compose": "docker-compose only",
}


def _effective(settings: Settings, entry: Setting) -> Any:
    """The value in effect for ``entry``, in a form safe to print (secrets redacted)."""
    special = {
        "TRACKWAY_HOME": lambda: settings.home,
        "TRACKWAY_RAW_URL": lambda: redact_url(settings.raw_url),
        "TRACKWAY_WAREHOUSE_URL": lambda: settings.warehouse.display_url,
        "TRACKWAY_READ_WAREHOUSE_URL": lambda: settings.read_warehouse.display_url,
        "TRACKWAY_LOAD_WAREHOUSE_URL": lambda: settings.load_warehouse.display_url,
        "TRACKWAY_TRANSFORM_WAREHOUSE_URL": lambda: settings.transform_warehouse.display_url,
        "TRACKWAY_WRITE_KEYS": lambda: repr(settings.write_keys),
        "TRACKWAY_SPOOL_DIR": lambda: settings.spool_dir,
        "TRACKWAY_COLLECTOR_WORKERS": lambda: settings.collector.workers,
        "TRACKWAY_SOURCES_FILE": lambda: settings.sources_file,
        "TRACKWAY_DBT_PROJECT_DIR": lambda: settings.dbt_project_dir,
        "TRACKWAY_DBT_EXECUTABLE": lambda: settings.dbt_executable or "in-process",
        "TRACKWAY_DBT_EXECUTION": lambda: settings.dbt_execution,
        "TRACKWAY_PLAN_MODES": lambda: ",".join(
            [*(f"{s}:{m}" for s, m in settings.plan_modes.items()), f"*:{settings.plan_default_mode}"]
        ),
        "TRACKWAY_ALERT_WEBHOOK_URL": lambda: (
            redact_webhook(settings.alert_webhook_url) if settings.alert_webhook_url else None
        ),
    }
    if entry.name in special:
        return special[entry.name]()
    assert entry.section is not None and entry.field is not None
    value = getattr(settings.section(entry.section), entry.field)
    return MASK if entry.secret and value is not None else value


def _alone(settings: Settings, entry: Setting) -> tuple[Any, bool]:
    """When a section is invalid: this variable checked on its own, so only the bad ones are marked."""
    keep = {entry.name, "TRACKWAY_WRITE_KEYS_FILE" if entry.name == "TRACKWAY_WRITE_KEYS" else entry.name}
    core = {s.name for s in SETTINGS if s.component == "all"}
    alone = Settings({k: v for k, v in settings.environ.items() if k in keep or k in core})
    try:
        return _effective(alone, entry), True
    except ConfigError:
        raw = settings.environ.get(entry.name)
        return (MASK if entry.secret and raw else raw), False


def _source(settings: Settings, entry: Setting) -> str:
    env = settings.environ
    if entry.name == "TRACKWAY_WRITE_KEYS":
        given = [what for what, name in (("env", entry.name), ("file", "TRACKWAY_WRITE_KEYS_FILE")) if env.get(name)]
        return "+".join(given) or "default"
    return "env" if env.get(entry.name) else "default"


def check_report(component: str = "all") -> dict[str, Any]:
    """What ``trackway config check`` prints: each setting's value and source, warnings, errors."""
    settings = Settings(snapshot_environ())
    wanted = READS[component]
    rows = []
    for entry in SETTINGS:
        if entry.internal or entry.component not in wanted:
            continue
        try:
            value, valid = _effective(settings, entry), True
        except ConfigError:
            value, valid = _alone(settings, entry)
        rows.append(
            {
                "name": entry.name,
                "value": None if value is None else str(value).lower() if isinstance(value, bool) else str(value),
                "source": _source(settings, entry),
                "secret": entry.secret,
                "component": entry.component,
                "valid": valid,
            }
        )
    warnings = [unknown_variable_message(name, hint) for name, hint in unknown_variables(settings.environ)]
    if component in ("all", "collector", "demo") and not _invalid(rows, "TRACKWAY_WRITE_KEYS"):
        try:
            if settings.write_keys_are_demo:
                warnings.append(
                    "TRACKWAY_WRITE_KEYS is not set: the demo key is in use; set it before exposing a collector"
                )
        except ConfigError:
            pass  # reported among the errors
    if component in ("all", "collector", "privacy", "demo") and not settings.environ.get("TRACKWAY_PSEUDONYM_KEYS"):
        warnings.append(
            "TRACKWAY_PSEUDONYM_KEYS is not set: the collector drops the fields classified hash "
            "(traits.email, ...) instead of pseudonymising them; see docs/privacy.md"
        )
    errors = settings.problems(component)
    return {"component": component, "ok": not errors, "settings": rows, "warnings": warnings, "errors": errors}


def _invalid(rows: list[dict[str, Any]], name: str) -> bool:
    return any(r["name"] == name and not r["valid"] for r in rows)


def format_check(report: dict[str, Any]) -> str:
    rows = [("NAME", "VALUE", "SOURCE")] + [
        (r["name"], "" if r["value"] is None else r["value"], r["source"] + ("" if r["valid"] else " (invalid)"))
        for r in report["settings"]
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"Trackway configuration (component: {report['component']}; secrets shown as {MASK})"]
    lines += [f"  {n.ljust(widths[0])}  {v.ljust(widths[1])}  {s}".rstrip() for n, v, s in rows]
    lines += [f"warning: {w}" for w in report["warnings"]]
    lines += [f"error: {e}" for e in report["errors"]]
    if report["errors"]:
        lines.append(f"configuration is invalid: set the variable(s) named above (see {REFERENCE_PATH})")
    else:
        lines.append("configuration OK")
    return "\n".join(lines)


def reference_markdown() -> str:
    """docs/reference/configuration.md, from the registry: a test fails when the committed file differs."""
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated from include/trackway/config/registry.py by "
        f"`trackway config docs > {REFERENCE_PATH}`; do not edit by hand. -->",
        "",
        "Trackway reads its configuration only from `TRACKWAY_*` environment variables, so the collector, "
        "the DAGs, dbt and the CLI agree without sharing files. `trackway config check` prints the values in "
        "effect (secrets masked), warns about misspelled names and exits non-zero on invalid values; "
        "`--component collector` checks only what one component reads, `--json` is for scripts.",
        "",
        "A setting is checked when the component that reads it starts: a malformed collector limit stops the "
        "collector, not the DAGs. Secrets are never printed, logged or written to an alert.",
        "",
    ]

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    for component in COMPONENTS:
        entries = [s for s in SETTINGS if s.component == component and not s.internal]
        if not entries:
            continue
        out += [f"## {_COMPONENT_TITLES[component]}", ""]
        out += ["| Variable | Type | Default | Secret | Description |", "| --- | --- | --- | --- | --- |"]
        out += [
            f"| `{s.name}` | {s.type} | `{cell(s.default)}` | {'yes' if s.secret else 'no'} | {cell(s.description)} |"
            for s in entries
        ]
        out.append("")
    out += [
        "## Internal: set by Trackway, not by you",
        "",
        "Trackway sets these for the processes it starts (dbt reads only environment variables in "
        "`include/dbt/profiles.yml`). `trackway config check` does not warn about them.",
        "",
        "| Variable | Type | Secret | Read by | Description |",
        "| --- | --- | --- | --- | --- |",
    ]
    out += [
        f"| `{s.name}` | {s.type} | {'yes' if s.secret else 'no'} | {s.component} | {cell(s.description)} |"
        for s in SETTINGS
        if s.internal
    ]
    return "\n".join(out) + "\n"


def _cmd_check(args: argparse.Namespace) -> int:
    report = check_report(args.component)
    sys.stdout.write((json.dumps(report, indent=2) if args.json else format_check(report)) + "\n")
    return 0 if report["ok"] else 2


def _cmd_docs(args: argparse.Namespace) -> int:
    sys.stdout.write(reference_markdown())
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    config = sub.add_parser(
        "config",
        help="check the configuration (TRACKWAY_* variables) or print its reference",
        description="The TRACKWAY_* settings: `check` shows what is in effect, `docs` the reference.",
    )
    config_sub = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    check = config_sub.add_parser(
        "check",
        help="print the effective configuration (secrets masked); exit 2 when a value is invalid",
        description="Print every setting's value and source (env or default), secrets masked; warn about "
        "TRACKWAY_* variables no setting has (with the closest name); exit 2 if any value is invalid.",
    )
    check.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    check.add_argument(
        "--component",
        choices=sorted(READS),
        default="all",
        help="check only what this component reads (default: all)",
    )
    check.set_defaults(func=_cmd_check)
    docs = config_sub.add_parser(
        "docs",
        help=f"print the configuration reference (Markdown) generated from the registry, for {REFERENCE_PATH}",
        description=f"Print the configuration reference; `trackway config docs > {REFERENCE_PATH}`.",
    )
    docs.set_defaults(func=_cmd_docs)
