"""The end-to-end run of tests/test_end_to_end.py with analytics.* on a real PostgreSQL server."""

from __future__ import annotations

import pytest

from test_end_to_end import end_to_end

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_sdk_to_analytics_events_on_postgres(tmp_path, trackway_env, own_asset_events, monkeypatch, request):
    end_to_end("postgres", tmp_path, trackway_env, monkeypatch, request)
