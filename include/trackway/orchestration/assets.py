"""Airflow Assets that chain load → transform, and the tracking plan → its typed views.

The URIs name tables (and the plan), not files, so they stay the same whichever
warehouse backend is configured.
"""

from airflow.sdk import Asset

EVENTS_RAW = Asset(name="raw.events_raw", uri="trackway://warehouse/raw/events_raw", group="trackway")
ANALYTICS_EVENTS = Asset(name="analytics.events", uri="trackway://warehouse/analytics/events", group="trackway")
# The product databases' tables, copied by app_sync (docs/app-data.md); analytics_x views join them with events.
APP_DATA = Asset(name="app", uri="trackway://warehouse/app", group="trackway")
# Updated by whoever changes the plan (CI after a merge, through Airflow's REST API: POST /api/v2/assets/events);
# the plan_deploy DAG runs on it (adr/0029).
TRACKING_PLAN = Asset(name="tracking_plan", uri="trackway://plan/tracking_plan", group="trackway")
