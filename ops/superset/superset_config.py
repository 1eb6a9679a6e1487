"""Superset's configuration for Trackway (SUPERSET_CONFIG_PATH points here): docs/bi.md, adr/0032.

Loaded by Superset in .venv-bi (or the compose file's image), never by the trackway package.
Every value that differs between the embedded default and production comes from the
environment, and what must be secret has no default: Superset refuses to start without it.
"""

from __future__ import annotations

import os

# Fail closed: no secret key, no server (Superset's own default key makes it refuse too).
SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
# Superset's metadata: SQLite under TRACKWAY_HOME on the embedded default, PostgreSQL in production.
SQLALCHEMY_DATABASE_URI = os.environ["SUPERSET_METADATA_URL"]
if SQLALCHEMY_DATABASE_URI.startswith("sqlite"):
    # gunicorn's two workers share the SQLite file (provision.py turns on its write-ahead log): a request
    # that meets the other worker's write waits up to 30 s instead of failing after SQLite's default 5 s.
    SQLALCHEMY_ENGINE_OPTIONS = {"connect_args": {"timeout": 30}}

# The warehouse connection is imported from the bundle (trackway bi init), read-only; nobody adds
# another through the UI that could reach the server's files (sqlite:// and the like are refused too).
PREVENT_UNSAFE_DB_CONNECTIONS = True
FEATURE_FLAGS = {
    "ENABLE_TEMPLATE_PROCESSING": False,  # no Jinja in people's SQL
    "DASHBOARD_RBAC": False,
    "ALERT_REPORTS": False,
    "EMBEDDED_SUPERSET": False,
}
# SQL Lab: DML and file uploads are off on the database itself (the bundle); DuckDB's own
# enable_external_access=false and lock_configuration=true keep files, URLs and extensions out.
SQLLAB_TIMEOUT = 60
SQL_MAX_ROW = 100_000
CSV_EXTENSIONS: set[str] = set()
EXCEL_EXTENSIONS: set[str] = set()
COLUMNAR_EXTENSIONS: set[str] = set()
ALLOWED_EXTENSIONS: set[str] = set()

# Nothing leaves the machine: no map tiles, fonts, telemetry pixel or help links from the internet.
# The browser is told so by the Content-Security-Policy; the server test checks the requests it makes.
TALISMAN_ENABLED = True
TALISMAN_CONFIG = {
    "content_security_policy": {
        "base-uri": ["'self'"],
        "default-src": ["'self'"],
        "img-src": ["'self'", "blob:", "data:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": "'none'",
        "style-src": ["'self'", "'unsafe-inline'"],
        "font-src": ["'self'", "data:"],
        "script-src": ["'self'", "'strict-dynamic'"],
    },
    "content_security_policy_nonce_in": ["script-src"],
    "force_https": False,
    "session_cookie_secure": os.environ.get("SUPERSET_SESSION_COOKIE_SECURE", "false") == "true",
}
# deck.gl's base map: one blank, same-origin tile (served below), so the neighbourhood polygons
# are drawn on plain paper instead of OpenStreetMap or Mapbox tiles.
DECKGL_BASE_MAP = [["tile:///trackway/blank-tile.png", "Blank (no tiles from the internet)"]]
MAPBOX_API_KEY = ""

# Superset's default lets two OpenStreetMap tile origins read its responses (CORS); no tile is fetched
# from them here, so no other origin is allowed anything.
ENABLE_CORS = False

SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_HTTPONLY = True
WTF_CSRF_ENABLED = True
RATELIMIT_ENABLED = True
RATELIMIT_STORAGE_URI = "memory://"
ENABLE_PROXY_FIX = os.environ.get("SUPERSET_ENABLE_PROXY_FIX", "false") == "true"
# Results and thumbnails stay in the process: no Celery or Redis on the embedded default.
THUMBNAILS = False
GLOBAL_ASYNC_QUERIES = False
SUPERSET_WEBSERVER_TIMEOUT = 120
APP_NAME = "Trackway"


def _blank_tile_blueprint():  # type: ignore[no-untyped-def]
    """/trackway/blank-tile.png: a 1x1 paper-coloured PNG, the deck.gl base map's only tile."""
    import base64

    from flask import Blueprint, Response

    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP49PENAAWoAtD979jYAAAAAElFTkSuQmCC"
    )
    blueprint = Blueprint("trackway", __name__, url_prefix="/trackway")
    blueprint.add_url_rule(
        "/blank-tile.png",
        "blank_tile",
        lambda: Response(png, mimetype="image/png", headers={"Cache-Control": "max-age=86400"}),
    )
    return blueprint


BLUEPRINTS = [_blank_tile_blueprint()]
