"""The Trackway page inside Airflow's UI: a FastAPI app the plugin (plugins/trackway_page.py) mounts at /trackway.

Airflow does not authenticate plugin apps (a mounted app inherits none of the core
API's dependencies), so this one declares Airflow's own, app-wide: the caller must
be signed in to Airflow (its JWT cookie or bearer token, ``get_user``) and allowed
to read ``events_load``'s runs (``requires_access_dag``), whichever auth manager
Airflow runs (simple, FAB, Keycloak...). An anonymous browser is sent to Airflow's
login page and comes back; an anonymous API call gets 401. Trackway writes no auth
of its own.

The page (trackway.health.page) is plain HTML without scripts, served with a
Content-Security-Policy that forbids them; it reads only what ``trackway status``
and ``trackway health`` read, so the API server needs the reader's warehouse URL
and the object store's read access (docs/operations.md#the-trackway-page-in-airflow).
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations, and Airflow's
# GetUserDep is imported inside create_app (so loading the plugin elsewhere stays light).
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from trackway.orchestration.airflow_env import REPO_ROOT

URL_PREFIX = "/trackway"
#: The page's own headers: no script may run, it may be framed by Airflow's UI only, never cached.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
RUNBOOK_FILE = REPO_ROOT / "docs" / "runbook.md"  # served when TRACKWAY_RUNBOOK_URL is not a web address


def _html(body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)


def create_app() -> FastAPI:
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag

    app = FastAPI(
        title="Trackway",
        # Every route, including any added later: Airflow's authentication, then its authorization.
        dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id="events_load"))],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(StarletteHTTPException)
    async def refused(request: Request, exc: StarletteHTTPException) -> Response:
        """Not signed in: a browser goes to Airflow's login (and back here), a script gets 401."""
        if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
            from airflow.api_fastapi.app import get_auth_manager

            login = get_auth_manager().get_url_login(next_url=str(request.url))
            return RedirectResponse(login, status_code=303, headers={"Cache-Control": "no-store"})
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.get("/", response_class=HTMLResponse)
    def page(user: GetUserDep, hours: int = Query(24, ge=1, le=168)) -> HTMLResponse:
        """Blocking reads (warehouse, store, collector): FastAPI runs a plain ``def`` in its thread pool."""
        from trackway.config import load_settings
        from trackway.health.overview import gather
        from trackway.health.page import render

        try:
            settings = load_settings()
        except Exception as exc:  # a setting that does not parse: say which, never a bare 500
            return _html(_message("Trackway's settings are invalid", f"{type(exc).__name__}: {exc}"), 500)
        overview = gather(settings, hours=hours)
        return _html(render(overview, runbook_url=settings.runbook_url, hours=hours, user=user.get_name()))

    @app.get("/runbook", response_class=HTMLResponse)
    def runbook() -> HTMLResponse:
        from trackway.health.page import runbook_html

        if not RUNBOOK_FILE.is_file():
            return _html(_message("No runbook here", "set TRACKWAY_RUNBOOK_URL to your published docs site"), 404)
        return _html(runbook_html(RUNBOOK_FILE.read_text()))

    return app


def _message(title: str, detail: str) -> str:
    import html

    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(detail)}</p></body></html>"
    )


def fastapi_app() -> dict[str, Any]:
    """The plugin's ``fastapi_apps`` entry."""
    return {"app": create_app(), "url_prefix": URL_PREFIX, "name": "Trackway"}


def external_view() -> dict[str, Any]:
    """The plugin's ``external_views`` entry: "Trackway" under Browse, the page framed inside Airflow's UI."""
    return {
        "name": "Trackway",
        # Relative to Airflow's base URL (no leading slash), so it works behind a path prefix too.
        "href": URL_PREFIX.lstrip("/") + "/",
        "destination": "nav",
        "category": "browse",
        "url_route": "trackway",
    }
