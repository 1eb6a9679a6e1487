"""Airflow's REST API (v2), for the few things the CLI asks of a running Airflow: is it scheduling, backfill.

A backfill created here runs in the scheduler with the DAG's own retries, pools and
alerts, like `airflow backfill create`, and shows in the UI; without a healthy
scheduler it would only queue, so callers then load directly instead.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from trackway.config import Settings
from trackway.config.registry import DagsSection


class AirflowUnavailable(RuntimeError):
    """No Airflow API configured, reachable, or with a healthy scheduler."""


class AirflowRefused(RuntimeError):
    """Airflow answered, and said no (4xx): the message is Airflow's, with what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _call(url: str, *, data: dict | None = None, token: str | None = None, timeout: float = 10) -> Any:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if data is not None else "GET")  # noqa: S310 (operator's own API URL)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (see above)
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        where = url.split("?", maxsplit=1)[0]
        if 400 <= exc.code < 500:
            hint = " (set TRACKWAY_AIRFLOW_USERNAME and TRACKWAY_AIRFLOW_PASSWORD)" if exc.code in (401, 403) else ""
            raise AirflowRefused(exc.code, f"Airflow API {exc.code} for {where}: {detail}{hint}") from None
        raise AirflowUnavailable(f"Airflow API {exc.code} for {where}: {detail}") from None
    except (OSError, ValueError) as exc:
        raise AirflowUnavailable(f"Airflow API at {url.split('/api/', maxsplit=1)[0]} unreachable: {exc}") from None


class AirflowApi:
    def __init__(self, url: str, username: str | None = None, password: SecretStr | None = None) -> None:
        self.base = url.rstrip("/")
        self.username = username
        self.password = password
        self._token: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AirflowApi:
        """The Airflow of TRACKWAY_AIRFLOW_API_URL, signed in as TRACKWAY_AIRFLOW_USERNAME."""
        section = settings.section(DagsSection)
        if not section.airflow_api_url:
            raise AirflowUnavailable("TRACKWAY_AIRFLOW_API_URL is not set")
        return cls(section.airflow_api_url, section.airflow_username, section.airflow_password)

    def scheduler_healthy(self) -> bool:
        health = _call(f"{self.base}/api/v2/monitor/health")
        return (health or {}).get("scheduler", {}).get("status") == "healthy"

    def token(self) -> str | None:
        if self._token is None and self.username and self.password:
            answer = _call(
                f"{self.base}/auth/token",
                data={"username": self.username, "password": self.password.get_secret_value()},
            )
            self._token = answer["access_token"]
        return self._token

    def get(self, path: str) -> Any:
        """GET ``/api/v2/<path>`` with the token."""
        return _call(f"{self.base}/api/v2/{path.lstrip('/')}", token=self.token())

    def post(self, path: str, data: dict) -> Any:
        """POST ``/api/v2/<path>`` with the token."""
        return _call(f"{self.base}/api/v2/{path.lstrip('/')}", data=data, token=self.token())

    def create_backfill(self, dag_id: str, start: datetime, end: datetime, *, reprocess: str = "completed") -> dict:
        """A backfill of ``dag_id``'s runs with logical dates ``start`` to ``end``, both included (for an hourly
        data-interval timetable, the hours starting then); ``reprocess`` "completed" re-runs hours that ran already.
        """
        return _call(
            f"{self.base}/api/v2/backfills",
            token=self.token(),
            data={
                "dag_id": dag_id,
                "from_date": start.isoformat(),
                "to_date": end.isoformat(),
                "reprocess_behavior": reprocess,
                "max_active_runs": 1,
                "run_backwards": False,
                "dag_run_conf": {},
            },
        )
