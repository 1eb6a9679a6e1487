"""`trackway bi metabase-setup` (docker-compose.yaml's metabase profile) against a recorded Metabase.

There is no Docker engine here and Metabase is a JVM server, so a loopback HTTP server stands in for Metabase,
as dbt-metabase's own tests replay a recorded one: it answers with the responses dbt-metabase recorded from a
real Metabase (tests/fixtures/metabase/, its database entry and its table and field objects, as templates of
Trackway's tables), keeps the state Metabase would (its admin, its sessions, the warehouse connection, the
descriptions it was sent) and records every request. The manifest is the real one, compiled by
`trackway transform compile` for the compose file's PostgreSQL target; the descriptions checked are read from
the dbt models' YAML.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from trackway.cli import main
from trackway.warehouse.roles import READ_SCHEMAS

REPO_ROOT = Path(__file__).resolve().parents[1]
RECORDED = Path(__file__).parent / "fixtures" / "metabase" / "api"
ADMIN = {"TRACKWAY_METABASE_ADMIN_EMAIL": "admin@example.invalid", "TRACKWAY_METABASE_ADMIN_PASSWORD": "mb-S3cret-9"}
READER_PASSWORD = "reader-S3cret-7"
MASKED = "**MetabasePass**"  # what Metabase answers in place of a stored password (recorded)


class RecordedMetabase(ThreadingHTTPServer):
    """Metabase's API as recorded, on 127.0.0.1: the wizard, sessions, databases, metadata, table and field PUTs."""

    def __init__(self, manifest: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []
        self.properties = json.loads((RECORDED / "session" / "properties.json").read_text())
        self.admin: dict[str, str] | None = None
        self.sessions: set[str] = set()
        self.databases: dict[int, dict[str, Any]] = {}
        self.received_details: list[dict[str, Any]] = []
        self.manifest = json.loads(manifest.read_text())
        self.metadata: dict[str, Any] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def calls(self, method: str, path: str) -> list[dict[str, Any]]:
        """The requests to ``path`` (under it, when it ends with a slash)."""
        under = path.endswith("/")
        return [
            r
            for r in self.requests
            if r["method"] == method and (r["path"].startswith(path) if under else r["path"] == path)
        ]

    def set_up_by(self, email: str, password: str) -> None:
        self.admin = {"email": email, "password": password}
        self.properties = {**self.properties, "has-user-setup": True, "setup-token": None}

    # -- what Metabase's sync finds: one table per dbt model the reader reads, with its columns --
    def _synced_metadata(self, database: dict[str, Any]) -> dict[str, Any]:
        recorded = json.loads((RECORDED / "database" / "2" / "metadata.json").read_text())
        table_template, field_template = recorded["tables"][0], recorded["tables"][0]["fields"][0]
        tables, field_id = [], 1000
        models = [n for n in self.manifest["nodes"].values() if n["resource_type"] == "model"]
        for table_id, node in enumerate(sorted(models, key=lambda n: n["unique_id"]), start=100):
            if node["schema"] not in READ_SCHEMAS or node["config"].get("materialized") == "ephemeral":
                continue
            name = node.get("alias") or node["name"]
            fields = []
            for position, column in enumerate(node["columns"]):
                field_id += 1
                fields.append(
                    {
                        **copy.deepcopy(field_template),
                        "id": field_id,
                        "table_id": table_id,
                        "name": column,
                        "display_name": column.replace("_", " ").title(),
                        "description": None,
                        "semantic_type": None,
                        "fk_target_field_id": None,
                        "position": position,
                        "database_position": position,
                    }
                )
            tables.append(
                {
                    **copy.deepcopy(table_template),
                    "id": table_id,
                    "db_id": database["id"],
                    "schema": node["schema"],
                    "name": name,
                    "display_name": name.replace("_", " ").title(),
                    "description": None,
                    "visibility_type": None,
                    "fields": fields,
                }
            )
        return {**recorded, "id": database["id"], "name": database["name"], "tables": tables}

    def handle(self, method: str, path: str, body: Any, session: str | None) -> tuple[int, Any]:
        if path == "/api/health":
            return 200, {"status": "ok"}
        if (method, path) == ("GET", "/api/session/properties"):
            return 200, self.properties
        if (method, path) == ("POST", "/api/setup"):
            if self.admin is not None or body.get("token") != self.properties.get("setup-token"):
                return 403, "The /api/setup route can only be used to create the first user"
            self.set_up_by(body["user"]["email"], body["user"]["password"])
            return 200, {"id": self._new_session()}
        if (method, path) == ("POST", "/api/session"):
            if self.admin is None or (body.get("username"), body.get("password")) != tuple(self.admin.values()):
                return 401, {"errors": {"password": "did not match stored password"}}
            return 200, {"id": self._new_session()}
        if session not in self.sessions:
            return 401, "Unauthenticated"
        parts = path.strip("/").split("/")[1:]  # after "api"
        if parts == ["database"] and method == "GET":
            listed = [self._masked(db) for db in self.databases.values()]
            return 200, {"data": listed, "total": len(listed)}
        if parts == ["database"] and method == "POST":
            recorded = json.loads((RECORDED / "database.json").read_text())[0]
            database = {**recorded, "name": body["name"], "engine": body["engine"], "details": body["details"]}
            self.databases[database["id"]] = database
            self.received_details.append(body["details"])
            return 200, self._masked(database)
        if len(parts) >= 2 and parts[0] == "database" and int(parts[1]) in self.databases:
            database = self.databases[int(parts[1])]
            if method == "PUT" and len(parts) == 2:
                database["details"] = body["details"]
                self.received_details.append(body["details"])
                return 200, self._masked(database)
            if method == "POST" and parts[2:] == ["sync_schema"]:
                self.metadata = self.metadata or self._synced_metadata(database)
                return 200, {"status": "ok"}
            if method == "GET" and parts[2:] == ["metadata"]:
                return 200, self.metadata or {**self._masked(database), "tables": []}
        if method == "PUT" and len(parts) == 2 and parts[0] in ("table", "field") and self.metadata:
            for table in self.metadata["tables"]:
                for entity in [table] if parts[0] == "table" else table["fields"]:
                    if entity["id"] == int(parts[1]):
                        entity.update(body)
                        return 200, {k: v for k, v in entity.items() if k != "fields"}
        return 404, "Not found."

    def _new_session(self) -> str:
        session = f"session-{len(self.sessions) + 1}"
        self.sessions.add(session)
        return session

    @staticmethod
    def _masked(database: dict[str, Any]) -> dict[str, Any]:
        return {**database, "details": {**database["details"], "password": MASKED}}


class _Handler(BaseHTTPRequestHandler):
    server: RecordedMetabase

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        path = urlparse(self.path).path
        self.server.requests.append({"method": self.command, "path": path, "body": body})
        status, payload = self.server.handle(self.command, path, body, self.headers.get("X-Metabase-Session"))
        data = (json.dumps(payload) if not isinstance(payload, str) else payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if not isinstance(payload, str) else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """The manifest the Trackway image compiles (include/docker/Dockerfile): the PostgreSQL target, no password."""
    from trackway.config import load_settings
    from trackway.transform.manifest import compile_manifest, manifest_path

    home = tmp_path_factory.mktemp("metabase-manifest")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRACKWAY_HOME", str(home))
        mp.setenv("TRACKWAY_WAREHOUSE_URL", "postgresql://trackway@postgres:5432/warehouse")
        mp.delenv("TRACKWAY_PLAN_DIR", raising=False)
        compile_manifest(load_settings())
        return manifest_path(load_settings())


@pytest.fixture
def metabase(manifest, monkeypatch) -> Iterator[RecordedMetabase]:
    import dbtmetabase._models

    monkeypatch.setattr(dbtmetabase._models, "_SYNC_PERIOD", 0)  # dbt-metabase waits 5 s before each sync check
    server = RecordedMetabase(manifest)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _environment(monkeypatch, metabase: RecordedMetabase, manifest: Path, **overrides: str) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("TRACKWAY_")]:
        monkeypatch.delenv(key)
    env = {
        "TRACKWAY_HOME": str(manifest.parents[2]),
        "TRACKWAY_WAREHOUSE_URL": "postgresql://trackway@postgres:5432/warehouse",
        "TRACKWAY_READ_WAREHOUSE_URL": f"postgresql://trackway_reader:{READER_PASSWORD}@postgres:5432/warehouse",
        "TRACKWAY_METABASE_URL": metabase.url,
        **ADMIN,
        **overrides,
    }
    for key, value in env.items():
        if value:
            monkeypatch.setenv(key, value)


def _run(capsys) -> tuple[int, str]:
    code = main(["bi", "metabase-setup", "--wait", "5", "--sync-timeout", "30"])
    out, err = capsys.readouterr()
    for secret in (ADMIN["TRACKWAY_METABASE_ADMIN_PASSWORD"], READER_PASSWORD):
        assert secret not in out + err  # never printed
    return code, out + err


def _documented_events() -> tuple[str, str, str]:
    """analytics.events' description and one column's with its description, from the dbt model's YAML."""
    models = yaml.safe_load((REPO_ROOT / "include/dbt/models/marts/_marts__models.yml").read_text())["models"]
    events = next(m for m in models if m["name"] == "events")
    column = next(c for c in events["columns"] if c.get("description"))
    return events["description"].strip(), column["name"], column["description"].strip()


def test_setup_closes_the_wizard_once_and_pushes_the_models_docs(metabase, manifest, monkeypatch, capsys):
    _environment(monkeypatch, metabase, manifest)
    code, output = _run(capsys)
    assert code == 0, output
    assert "first-run setup: completed" in output

    # The wizard, completed once, with the token Metabase published and the admin from the secrets.
    (setup,) = metabase.calls("POST", "/api/setup")
    assert setup["body"]["token"] == "2ffe1bc9-4bc5-4184-a10d-731517d8e4a3"
    user = setup["body"]["user"]
    assert (user["email"], user["password"]) == tuple(ADMIN.values())
    assert setup["body"]["prefs"]["allow_tracking"] is False
    health = metabase.calls("GET", "/api/health")
    assert health and metabase.requests.index(health[0]) < metabase.requests.index(setup)

    # The warehouse, added once, as the read-only role.
    (added,) = metabase.calls("POST", "/api/database")
    assert added["body"]["engine"] == "postgres" and added["body"]["name"] == "Trackway"
    details = added["body"]["details"]
    assert (details["host"], details["port"], details["dbname"]) == ("postgres", 5432, "warehouse")
    assert (details["user"], details["password"]) == ("trackway_reader", READER_PASSWORD)

    # dbt-metabase's push: analytics.events' description and its columns', as Metabase's table and field PUTs.
    description, column, column_description = _documented_events()
    assert metabase.metadata is not None
    tables = {(t["schema"], t["name"]): t for t in metabase.metadata["tables"]}
    events = tables[("analytics", "events")]
    table_puts = {int(r["path"].rsplit("/", 1)[1]): r["body"] for r in metabase.calls("PUT", "/api/table/")}
    assert table_puts[events["id"]]["description"].strip() == description
    field = next(f for f in events["fields"] if f["name"] == column)
    field_puts = {int(r["path"].rsplit("/", 1)[1]): r["body"] for r in metabase.calls("PUT", "/api/field/")}
    assert field_puts[field["id"]]["description"].strip() == column_description
    assert {schema for schema, _ in tables} <= set(READ_SCHEMAS)  # only what the reader reads
    assert len(table_puts) >= 5 and len(field_puts) >= 50

    # Idempotent: a second run finds the admin, the warehouse and the docs in place.
    before = len(metabase.requests)
    code, output = _run(capsys)
    assert code == 0, output
    assert "first-run setup: already done" in output
    again = metabase.requests[before:]
    assert not [
        r for r in again if r["path"] == "/api/setup" or (r["method"] == "PUT" and "/api/database/" not in r["path"])
    ]
    database = [r["method"] for r in again if r["path"].rstrip("/0123456789") == "/api/database"]
    assert "POST" not in database and database.count("PUT") == 1  # found by name, not added twice
    assert metabase.received_details[-1]["password"] == READER_PASSWORD  # a rotated password is applied


@pytest.mark.parametrize("missing", ["TRACKWAY_METABASE_ADMIN_PASSWORD", "TRACKWAY_METABASE_ADMIN_EMAIL"])
def test_setup_refuses_without_the_admins_secrets(metabase, manifest, monkeypatch, capsys, missing):
    _environment(monkeypatch, metabase, manifest, **{missing: ""})
    code, output = _run(capsys)
    assert code == 1
    assert f"{missing} is not set" in output and "wizard" in output
    assert metabase.requests == []  # not even a look at Metabase


def test_setup_refuses_the_warehouse_administrator(metabase, manifest, monkeypatch, capsys):
    _environment(monkeypatch, metabase, manifest, TRACKWAY_READ_WAREHOUSE_URL="")
    code, output = _run(capsys)
    assert code == 1 and "TRACKWAY_READ_WAREHOUSE_URL is not set" in output
    assert metabase.requests == []


def test_setup_fails_closed_when_someone_else_completed_the_wizard(metabase, manifest, monkeypatch, capsys):
    metabase.set_up_by("intruder@example.com", "intruder-password")
    _environment(monkeypatch, metabase, manifest)
    code, output = _run(capsys)
    assert code == 1
    assert "set up with another admin" in output and "metabase` database" in output
    assert metabase.calls("POST", "/api/setup") == [] and metabase.calls("POST", "/api/database") == []
    assert metabase.admin == {"email": "intruder@example.com", "password": "intruder-password"}


def test_setup_fails_closed_when_someone_else_wins_the_race_to_the_wizard(metabase, manifest, monkeypatch, capsys):
    """Between our read of the properties and our POST /api/setup, another client completes it."""
    token = metabase.properties["setup-token"]
    metabase.set_up_by("intruder@example.com", "intruder-password")
    metabase.properties = {**metabase.properties, "has-user-setup": False, "setup-token": token}  # as we read them
    _environment(monkeypatch, metabase, manifest)
    code, output = _run(capsys)
    assert code == 1
    assert "Metabase refused its first-run setup" in output and "metabase` database" in output
    assert len(metabase.calls("POST", "/api/setup")) == 1 and metabase.calls("POST", "/api/session") == []
