"""Metabase, set up without its wizard (docker-compose.yaml's `metabase` profile; docs/bi.md, adr/0038).

Metabase's first-run wizard makes whoever reaches it first the admin. ``setup`` closes it with the admin
from the settings as soon as Metabase answers: it reads the one-time setup token
(``GET /api/session/properties``) and completes ``POST /api/setup``; on every later run Metabase reports
``has-user-setup`` and the step is skipped. It then signs in as that admin, adds the warehouse as the read-only
role (or applies a changed password to it), and lets dbt-metabase push the dbt models' and columns' descriptions
(the models of the schemas the reader reads) as table and field updates. Secrets are never printed: errors name
the setting to fix, never its value.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from trackway.config import ConfigError, Settings, WarehouseTarget
from trackway.config.registry import MetabaseSection
from trackway.warehouse.roles import READ_SCHEMAS

COMMAND = "trackway bi metabase-setup"
HEALTH_PATH = "/api/health"
_TIMEOUT = 15.0


class MetabaseError(RuntimeError):
    """Metabase cannot be set up; the message says what to do next."""


@dataclass(frozen=True)
class MetabaseSetup:
    """What ``setup`` needs, checked: Metabase's address, its admin, the reader's warehouse and the manifest."""

    url: str
    admin_email: str
    admin_password: str = field(repr=False)
    database_name: str
    warehouse: WarehouseTarget
    manifest: Path

    @classmethod
    def from_settings(cls, settings: Settings, manifest: Path) -> MetabaseSetup:
        """Refuses (MetabaseError) without the admin's credentials or the read-only role's URL."""
        try:
            metabase = settings.section(MetabaseSection)
            warehouse = settings.read_warehouse
        except ConfigError as exc:
            raise MetabaseError(str(exc)) from None
        email, password = metabase.metabase_admin_email, metabase.metabase_admin_password
        missing = [name for name, unset in (("TRACKWAY_METABASE_ADMIN_EMAIL", not email),) if unset]
        if password is None or not password.get_secret_value():
            missing.append("TRACKWAY_METABASE_ADMIN_PASSWORD")
        if missing:
            raise MetabaseError(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: Metabase is not set up "
                "without its admin (its first-run wizard would make whoever reaches it first the admin); set "
                "them (docker-compose.yaml: METABASE_ADMIN_EMAIL and METABASE_ADMIN_PASSWORD in .env)"
            )
        if warehouse.kind != "postgres":
            raise MetabaseError(
                f"the warehouse is {warehouse.kind}: {COMMAND} adds a PostgreSQL warehouse only; connect Metabase "
                "to it by hand as a read-only identity"
            )
        if warehouse is settings.warehouse or not (warehouse.password and warehouse.password.get_secret_value()):
            raise MetabaseError(
                "TRACKWAY_READ_WAREHOUSE_URL is not set (with the password of its role): Metabase connects as the "
                "read-only role, never as TRACKWAY_WAREHOUSE_URL's (docs/reference/warehouse-roles.md)"
            )
        if not manifest.is_file():
            raise MetabaseError(f"no dbt manifest at {manifest}: run `trackway transform compile` first")
        assert email is not None and password is not None
        return cls(
            url=metabase.metabase_url,
            admin_email=email,
            admin_password=password.get_secret_value(),
            database_name=metabase.metabase_database,
            warehouse=warehouse,
            manifest=manifest,
        )

    def database_details(self) -> dict[str, Any]:
        """Metabase's PostgreSQL connection for the reader (its password included: sent, never printed)."""
        target = self.warehouse
        assert target.password is not None
        return {
            "host": target.host,
            "port": target.port or 5432,
            "dbname": target.database,
            "user": target.user,
            "password": target.password.get_secret_value(),
            "ssl": False,
            "tunnel-enabled": False,
            "advanced-options": False,
            "schema-filters-type": "all",
        }


@dataclass
class SetupReport:
    """What one run did, for one line each (no secret in it)."""

    completed_setup: bool = False
    database: str = ""  # added, updated
    database_id: int | None = None
    pushed: bool = False


class _Api:
    """Metabase's REST API: JSON in and out, errors as MetabaseError naming the call (never a body we sent)."""

    def __init__(self, url: str, secrets: tuple[str, ...] = (), timeout: float = _TIMEOUT) -> None:
        self.url, self.timeout = url.rstrip("/"), timeout
        self.secrets = tuple(s for s in secrets if s)  # masked in any answer we repeat
        self.session = requests.Session()

    def _masked(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None, *, ok: tuple[int, ...] = ()) -> Any:
        try:
            response = self.session.request(method, self.url + path, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise MetabaseError(f"{method} {self.url}{path}: {type(exc).__name__}; is Metabase running?") from None
        if response.status_code in ok:
            return None
        if response.status_code >= 400:
            raise MetabaseError(
                f"{method} {path}: Metabase answered {response.status_code} {self._masked(response.text)[:300]!r}",
            )
        payload = response.json() if response.content else {}
        return payload["data"] if isinstance(payload, dict) and "data" in payload else payload


def wait_healthy(api: _Api, wait_seconds: float, sleep: Callable[[float], None] = time.sleep) -> None:
    """Until ``GET /api/health`` says ok (Metabase migrates its database first: minutes on a first start)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            if (api.call("GET", HEALTH_PATH) or {}).get("status") == "ok":
                return
        except MetabaseError:
            pass
        if time.monotonic() >= deadline:
            raise MetabaseError(
                f"Metabase at {api.url} did not report healthy ({HEALTH_PATH}) within {wait_seconds:.0f}s; see its "
                "log (docker compose logs metabase), then run the setup again"
            )
        sleep(2.0)


def _complete_setup(api: _Api, setup: MetabaseSetup) -> bool:
    """The first-run setup with our admin, once: False when Metabase already has its admin."""
    properties = api.call("GET", "/api/session/properties") or {}
    if properties.get("has-user-setup"):
        return False
    token = properties.get("setup-token")
    if not token:
        raise MetabaseError(
            "Metabase is not set up and reports no setup-token in /api/session/properties: check that "
            "TRACKWAY_METABASE_URL is Metabase and that its version is the compose file's"
        )
    try:
        _post_setup(api, setup, str(token))
    except MetabaseError as exc:
        raise MetabaseError(
            f"Metabase refused its first-run setup ({exc}); if someone completed it first, stop Metabase, drop and "
            "recreate its `metabase` database, then run the setup again"
        ) from None
    return True


def _post_setup(api: _Api, setup: MetabaseSetup, token: str) -> None:
    api.call(
        "POST",
        "/api/setup",
        {
            "token": token,
            "user": {
                "email": setup.admin_email,
                "password": setup.admin_password,
                "first_name": "Trackway",
                "last_name": "Admin",
                "site_name": "Trackway",
            },
            "prefs": {"site_name": "Trackway", "site_locale": "en", "allow_tracking": False},
        },
    )


def _sign_in(api: _Api, setup: MetabaseSetup) -> None:
    body = {"username": setup.admin_email, "password": setup.admin_password}
    try:
        session = api.call("POST", "/api/session", body)
    except MetabaseError as exc:
        raise MetabaseError(
            "Metabase refused TRACKWAY_METABASE_ADMIN_EMAIL/PASSWORD: it was set up with another admin (someone "
            "reached its wizard first, or the password was changed in Metabase). Stop Metabase and check its "
            "users; if you did not make them, drop and recreate its `metabase` database, then run the setup again "
            f"({exc})"
        ) from None
    api.session.headers["X-Metabase-Session"] = str(session["id"])


def _ensure_database(api: _Api, setup: MetabaseSetup) -> tuple[str, int]:
    """The reader's connection by name: added when absent, its details (a rotated password) applied otherwise."""
    details = setup.database_details()
    for database in api.call("GET", "/api/database") or []:
        if str(database.get("name", "")).lower() == setup.database_name.lower():
            api.call("PUT", f"/api/database/{database['id']}", {"details": details})
            return "updated", int(database["id"])
    created = api.call(
        "POST",
        "/api/database",
        {"engine": "postgres", "name": setup.database_name, "details": details, "is_full_sync": True},
    )
    return "added", int(created["id"])


def push_docs(setup: MetabaseSetup, sync_timeout: int) -> None:
    """dbt-metabase's `models` export: the descriptions of the models the reader reads, as table and field PUTs."""
    from dbtmetabase import DbtMetabase, Filter
    from dbtmetabase.errors import MetabaseStateError

    try:
        DbtMetabase(
            manifest_path=setup.manifest,
            metabase_url=setup.url,
            metabase_username=setup.admin_email,
            metabase_password=setup.admin_password,
        ).export_models(
            metabase_database=setup.database_name,
            schema_filter=Filter(include=list(READ_SCHEMAS)),
            skip_sources=True,
            sync_timeout=sync_timeout,
        )
    except (MetabaseStateError, requests.RequestException) as exc:
        raise MetabaseError(
            f"dbt-metabase could not push the models' docs: {type(exc).__name__}: {str(exc)[:300]}; after the "
            "first dbt run Metabase's sync finds the tables, so run the setup again then"
        ) from None


def setup(config: MetabaseSetup, *, wait_seconds: float = 600.0, sync_timeout: int = 120) -> SetupReport:
    """Close the wizard with our admin (once), add the reader's warehouse, push the docs: idempotent."""
    api = _Api(config.url, secrets=(config.admin_password, config.database_details()["password"]))
    wait_healthy(api, wait_seconds)
    report = SetupReport(completed_setup=_complete_setup(api, config))
    _sign_in(api, config)
    report.database, report.database_id = _ensure_database(api, config)
    push_docs(config, sync_timeout)
    report.pushed = True
    return report
