"""Airflow plugin: the Trackway page (stages per hour, health checks, violations, damaged objects) in Airflow's UI.

Thin on purpose: the app and its auth are in trackway.orchestration.page, the page in
trackway.health.page. It shows under Browse → Trackway, served at /trackway/.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from trackway.orchestration.page import external_view, fastapi_app


class TrackwayPagePlugin(AirflowPlugin):
    name = "trackway"
    fastapi_apps = [fastapi_app()]  # noqa: RUF012 (Airflow reads these class attributes)
    external_views = [external_view()]  # noqa: RUF012
