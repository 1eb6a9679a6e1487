"""Provision Superset from a rendered bundle: metadata schema, roles, the admin, then every asset (idempotent).

Runs inside Superset's own environment (.venv-bi, or the compose file's superset image), never
in Trackway's: `trackway bi init` renders the bundle (include/superset plus descriptions from
dbt's manifest and the tracking plan) and starts this script with that environment's Python.

usage: python provision.py BUNDLE_DIR
environment: SUPERSET_CONFIG_PATH (superset_config.py: secret key, metadata URL), SUPERSET_ADMIN_USERNAME,
SUPERSET_ADMIN_PASSWORD, and SUPERSET_WAREHOUSE_PASSWORD when the warehouse URI has a masked password.
Prints one JSON object: what was imported.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main(bundle: Path) -> dict[str, object]:
    started = time.monotonic()
    from flask import g
    from flask_migrate import upgrade
    from superset.app import create_app

    import superset

    app = create_app()
    with app.app_context():
        upgrade(directory=str(Path(superset.__file__).parent / "migrations"))  # `superset db upgrade`
        from superset.extensions import db

        if db.engine.dialect.name == "sqlite":  # readers never wait for a writer (kept in the file)
            with db.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        from superset.commands.importers.v1.assets import ImportAssetsCommand

        from superset import appbuilder, security_manager

        appbuilder.add_permissions(update_perms=True)  # `superset init`
        security_manager.sync_role_definitions()
        username = os.environ["SUPERSET_ADMIN_USERNAME"]
        user = security_manager.find_user(username=username)
        if user is None:
            user = security_manager.add_user(
                username,
                "Trackway",
                "Admin",
                f"{username}@localhost",
                security_manager.find_role("Admin"),
                password=os.environ["SUPERSET_ADMIN_PASSWORD"],
            )
            if not user:
                raise SystemExit(f"could not create the Superset user {username!r}")
        g.user = user
        contents = {str(p.relative_to(bundle)): p.read_text(encoding="utf-8") for p in sorted(bundle.rglob("*.yaml"))}
        password = os.environ.get("SUPERSET_WAREHOUSE_PASSWORD")
        passwords = {name: password for name in contents if name.startswith("databases/")} if password else {}
        ImportAssetsCommand(contents, passwords=passwords).run()  # overwrites by UUID: a second run changes nothing
        kinds = ("databases", "datasets", "charts", "dashboards")
        counts = {kind: sum(1 for name in contents if name.startswith(kind + "/")) for kind in kinds}
    return {"imported": counts, "seconds": round(time.monotonic() - started, 1)}


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        raise SystemExit(__doc__)
    print(json.dumps(main(Path(sys.argv[1]))))
