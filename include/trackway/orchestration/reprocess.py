"""The events_reprocess DAG's task: validate its params, refuse what is unsafe, then run the reprocess.

A refusal (a full refresh without its confirmation, a selector that is not one, a
window that makes no sense) is an ``AirflowFailException``: the run fails at once
with the reason and is never retried. dbt's own failures go through the retry
policy every task has (trackway.orchestration.retries).
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowFailException

from trackway.config import load_settings
from trackway.transform.reprocess import ReprocessRefused, parse_request, run_reprocess


class ReprocessRefusedError(AirflowFailException):
    """The params ask for something unsafe or malformed; the message says what to change."""

    trackway_failure = "refused"  # its runbook section (trackway.orchestration.retries.RUNBOOK_BY_KIND)


def run_from_params(params: dict) -> dict:
    settings = load_settings()
    try:
        request = parse_request(
            select=params.get("select") or "",
            from_hour=params.get("from_hour") or "",
            to_hour=params.get("to_hour") or "",
            full_refresh=bool(params.get("full_refresh")),
            confirm_full_refresh=params.get("confirm_full_refresh") or "",
        )
    except ReprocessRefused as exc:
        raise ReprocessRefusedError(
            f"events_reprocess refused: {exc} (what to do: {settings.runbook_url}#reprocess-refused)"
        ) from None
    return run_reprocess(settings, request).as_dict()
