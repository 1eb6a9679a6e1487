"""The settings document analytics.js (analytics-next) fetches before it sends anything.

analytics.js loads ``<cdnURL>/v1/projects/<writeKey>/settings`` and builds its
destinations from the answer. Serving that document from the collector itself
lets a web page switch to Trackway by changing only ``cdnURL``: the document
names one destination, 'Segment.io', pointed back at this collector, and
nothing else, so the browser loads no other integration, middleware or
schema filter and sends no metrics to Segment.
"""

from __future__ import annotations

import re

SETTINGS_PATH = re.compile(r"^/v1/projects/(?P<key>[^/]+)/settings$")
# What may appear in a Host header we echo back into a URL the browser will post to.
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")


def valid_host(host: str) -> bool:
    return bool(_HOST.match(host))


def settings_document(write_key: str, host: str, protocol: str) -> dict:
    """The CDN settings analytics.js needs: Segment.io destination only, posting to ``<protocol>://<host>/v1``."""
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": f"{host}/v1",  # analytics.js posts to <protocol>://<apiHost>/<t|p|i|g|a|s|b>
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": False,
            }
        },
        "plan": {},
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
        "metrics": {"sampleRate": 0},  # analytics.js' own telemetry would go to Segment's API
    }
