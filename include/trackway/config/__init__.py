"""The one place Trackway reads its configuration: ``TRACKWAY_*`` environment variables.

Every setting is declared once, in ``registry`` (name, type, default, secret,
component, description); ``trackway config check`` shows the effective values
and ``trackway config docs`` writes docs/reference/configuration.md from it.
This package imports nothing else from trackway: it is the lowest layer.
"""

from trackway.config.errors import ConfigError
from trackway.config.redact import redact_url, redact_webhook
from trackway.config.registry import SETTINGS, Setting, default, parse_plan_modes
from trackway.config.settings import CollectorLimits, Settings, load_settings
from trackway.config.sources import (
    MAPPABLE_FIELDS,
    SOURCE_LAYOUTS,
    AppDatabase,
    AppTable,
    Source,
    parse_app_databases,
    parse_sources,
)
from trackway.config.warehouse import WarehouseTarget
from trackway.config.write_keys import DEMO_WRITE_KEYS, WriteKeys, load_write_keys, parse_write_keys

__all__ = [
    "DEMO_WRITE_KEYS",
    "MAPPABLE_FIELDS",
    "SETTINGS",
    "SOURCE_LAYOUTS",
    "AppDatabase",
    "AppTable",
    "CollectorLimits",
    "ConfigError",
    "Setting",
    "Settings",
    "Source",
    "WarehouseTarget",
    "WriteKeys",
    "default",
    "load_settings",
    "load_write_keys",
    "parse_app_databases",
    "parse_plan_modes",
    "parse_sources",
    "parse_write_keys",
    "redact_url",
    "redact_webhook",
]
