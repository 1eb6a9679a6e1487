"""Superset's assets as code: include/superset, rendered for this installation (docs/bi.md, adr/0032).

The repository holds databases, datasets, charts and dashboards in Superset's import format
(YAML, fixed UUIDs). Rendering fills in what only this installation knows: the warehouse
connection (the DuckDB snapshot, read-only, or PostgreSQL as the read-only role) and the
data dictionary: every dataset and column description comes from dbt's compiled manifest
(whose generated models carry the tracking plan's event and property descriptions), so the
words analysts read in the BI tool are the ones the models and the plan are written with.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trackway.config import Settings, WarehouseTarget
from trackway.warehouse.snapshot import snapshot_path

BUNDLE_DIR = Path(__file__).resolve().parents[2] / "superset"
DATABASE_FILE = "databases/trackway_warehouse.yaml"
MASKED = "XXXXXXXXXX"  # Superset's own mask for a password it must be given at import
# DuckDB opened by Superset: no file, URL, ATTACH or extension outside the snapshot, and no SET undoes it.
DUCKDB_CONNECT_ARGS: dict[str, Any] = {
    "read_only": True,
    "config": {"enable_external_access": False, "autoinstall_known_extensions": False, "lock_configuration": True},
}
# Relations a virtual dataset's SQL reads (its column descriptions fall back to theirs).
_RELATION = re.compile(r"\b(analytics(?:_x|_typed)?|app)\.([a-z_][a-z0-9_]*)\b")


class BundleError(ValueError):
    """The bundle cannot be rendered for this warehouse; the message says what to do."""


@dataclass(frozen=True)
class Rendered:
    path: Path
    database_uri: str  # password masked
    password: str | None  # for the import only, never written to the bundle
    counts: dict[str, int]


def read_bundle(root: Path = BUNDLE_DIR) -> dict[str, dict[str, Any]]:
    """relative path -> parsed YAML, for every asset file of the bundle."""
    return {
        str(p.relative_to(root)): yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(root.rglob("*.yaml"))
    }


def assets(bundle: Mapping[str, dict[str, Any]], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, doc in bundle.items():
        if name.startswith(kind + "/"):
            yield name, doc


def reference_problems(bundle: Mapping[str, dict[str, Any]]) -> list[str]:
    """Every UUID a file refers to names an asset of the bundle, and no UUID is used twice."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for name, doc in bundle.items():
        if name == "metadata.yaml":
            continue
        uuid = str(doc.get("uuid", ""))
        if not uuid:
            problems.append(f"{name}: no uuid")
        elif uuid in seen:
            problems.append(f"{name}: uuid {uuid} is also {seen[uuid]}'s")
        seen[uuid] = name
    kinds = {k: {str(d["uuid"]) for _, d in assets(bundle, k)} for k in ("databases", "datasets", "charts")}
    for name, doc in assets(bundle, "datasets"):
        if str(doc.get("database_uuid")) not in kinds["databases"]:
            problems.append(f"{name}: database_uuid {doc.get('database_uuid')} is no database of the bundle")
    for name, doc in assets(bundle, "charts"):
        if str(doc.get("dataset_uuid")) not in kinds["datasets"]:
            problems.append(f"{name}: dataset_uuid {doc.get('dataset_uuid')} is no dataset of the bundle")
    for name, doc in assets(bundle, "dashboards"):
        charts = [
            node for node in doc.get("position", {}).values() if isinstance(node, dict) and node.get("type") == "CHART"
        ]
        if not charts:
            problems.append(f"{name}: no chart")
        for node in charts:
            uuid = str(node.get("meta", {}).get("uuid"))
            if uuid not in kinds["charts"]:
                problems.append(f"{name}: chart {uuid} ({node.get('id')}) is no chart of the bundle")
        ids = set(doc.get("position", {}))
        for key, node in doc.get("position", {}).items():
            if isinstance(node, dict):
                missing = [child for child in node.get("children", []) if child not in ids]
                if missing:
                    problems.append(f"{name}: {key} has children {missing} that are not in the layout")
    return problems


def dataset_sql(doc: Mapping[str, Any]) -> str:
    """What a dataset reads: its own SQL, or a SELECT of its columns from its table."""
    if doc.get("sql"):
        return str(doc["sql"])
    columns = ", ".join(f'"{c["column_name"]}"' for c in doc["columns"] if not c.get("expression"))
    return f'SELECT {columns} FROM "{doc["schema"]}"."{doc["table_name"]}"'


def relations(sql: str) -> list[tuple[str, str]]:
    """(schema, relation) pairs a dataset's SQL reads from Trackway's schemas."""
    return sorted(set(_RELATION.findall(sql)))


def manifest_models(manifest: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(schema, relation name) -> the model's node, for every model of dbt's manifest."""
    return {
        (str(node["schema"]), str(node.get("alias") or node["name"])): node
        for node in manifest.get("nodes", {}).values()
        if node.get("resource_type") == "model"
    }


def describe(bundle: Mapping[str, dict[str, Any]], manifest: Mapping[str, Any]) -> None:
    """Dataset and column descriptions from the manifest, in place (a description written in the bundle wins)."""
    models = manifest_models(manifest)
    for _, doc in assets(bundle, "datasets"):
        node = models.get((str(doc.get("schema")), str(doc.get("table_name")))) if not doc.get("sql") else None
        sources = [node] if node else [models[r] for r in relations(doc.get("sql") or "") if r in models]
        if node and not doc.get("description"):
            doc["description"] = _clean(node.get("description"))
        for column in doc.get("columns", []):
            if column.get("description"):
                continue
            for source in sources:
                found = source.get("columns", {}).get(column["column_name"])
                if found and found.get("description"):
                    column["description"] = _clean(found["description"])
                    break


def _clean(text: Any) -> str | None:
    return " ".join(str(text).split()) or None if text else None


def database_connection(settings: Settings) -> tuple[str, str | None, dict[str, Any]]:
    """(URI with the password masked, the password, engine params) of the warehouse as BI reads it."""
    target = settings.read_warehouse
    if target.kind == "duckdb":
        path = snapshot_path(target, settings.home)
        assert path is not None
        return f"duckdb:///{path}", None, {"connect_args": DUCKDB_CONNECT_ARGS}
    if target.kind == "postgres":
        return _postgres_uri(target, settings.warehouse)
    raise BundleError(
        f"the BI bundle reads DuckDB or PostgreSQL; {target.kind} is not supported yet (docs/bi.md). "
        "Point Superset at BigQuery by hand with the read-only identity"
    )


def _postgres_uri(target: WarehouseTarget, admin: WarehouseTarget) -> tuple[str, str | None, dict[str, Any]]:
    if target.user == admin.user:
        raise BundleError(
            "on PostgreSQL Superset connects as the read-only role: set TRACKWAY_READ_WAREHOUSE_URL "
            "and run `trackway warehouse grant` (docs/reference/warehouse-roles.md)"
        )
    password = target.password.get_secret_value() if target.password else None
    auth = f"{target.user}:{MASKED}" if password else str(target.user)
    uri = f"postgresql+psycopg2://{auth}@{target.host}:{target.port or 5432}/{target.database}"
    # Sessions start read-only, as trackway query's (the role's own default says so too).
    options = {"connect_args": {"options": "-c default_transaction_read_only=on"}}
    return uri, password, options


def render(settings: Settings, out: Path, manifest_file: Path, root: Path = BUNDLE_DIR) -> Rendered:
    """Write the bundle for this installation into ``out`` (replaced): connection and descriptions filled in."""
    bundle = read_bundle(root)
    problems = reference_problems(bundle)
    if problems:
        raise BundleError("the bundle is inconsistent: " + "; ".join(problems))
    if not manifest_file.is_file():
        raise BundleError(f"no dbt manifest at {manifest_file}: run `trackway transform compile` (make install)")
    describe(bundle, json.loads(manifest_file.read_text(encoding="utf-8")))
    uri, password, engine_params = database_connection(settings)
    database = bundle[DATABASE_FILE]
    database["sqlalchemy_uri"] = uri
    database.setdefault("extra", {})["engine_params"] = engine_params
    if out.exists():
        shutil.rmtree(out)
    for name, doc in bundle.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    counts = {kind: sum(1 for _ in assets(bundle, kind)) for kind in ("datasets", "charts", "dashboards")}
    return Rendered(out, uri, password, counts)
