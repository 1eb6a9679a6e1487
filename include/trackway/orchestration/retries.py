"""Retries that match the error: transport and lock errors are retried, content and schema errors fail at once.

A retry helps when the failure was the world's (a store that timed out, a
connection reset, DuckDB's single writer busy), never when it was the data's or
the code's: a model whose columns no longer match its table, a dbt test that
fails, a compile error, a setting or a tracking plan that does not parse. Those
would fail the same way on every retry, burning the retries and their backoff
before the alert goes out. Airflow 3.3's retry policies (AIP-105) decide this in
the worker from the exception itself, for every task of a DAG including
Cosmos's dbt tasks; the failure alert names the runbook section of the class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from airflow.sdk import RetryDecision, RetryPolicy

#: The runbook section (docs/runbook.md) of each failure class; tests/test_gameday.py checks each exists.
RUNBOOK_BY_KIND = {
    "transport": "task-failed",
    "lock": "warehouse-busy",
    "schema": "schema-changed",
    "model": "dbt-model-error",
    "test": "dbt-test-failed",
    "config": "configuration-or-plan-error",
    "refused": "reprocess-refused",
    "unknown": "task-failed",
}

# dbt reports what went wrong as text (its own exceptions stay inside dbt or Cosmos), so dbt's
# failures are told apart by their messages; the first pattern that matches wins.
_MESSAGE_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # DuckDB: "IO Error: Could not set lock on file ... Conflicting lock is held"; PostgreSQL: lock timeouts.
    ("lock", re.compile(r"could not set lock|conflicting lock|deadlock detected|could not obtain lock|is busy", re.I)),
    (
        "transport",
        re.compile(
            r"connection refused|could not connect|connection reset|connection timed out|server closed the "
            r"connection|timed out|temporarily unavailable|name or service not known|too many connections|"
            r"broken pipe|ssl syscall",
            re.I,
        ),
    ),
    # on_schema_change='fail': "The source and target schemas on this incremental model are out of sync!"
    ("schema", re.compile(r"schemas? on this incremental model are out of sync|on_schema_change", re.I)),
    ("model", re.compile(r"compilation ?error|parsing ?error|dbt manifest|manifest is (?:stale|missing)", re.I)),
    # dbt test failures: "Got 3 results, configured to fail if != 0" (Cosmos), "test x: fail: ..." (trackway).
    ("test", re.compile(r"configured to fail if|\btest [^\n:]+: fail:", re.I)),
)

# By exception class name anywhere in the MRO, so no warehouse driver or cloud SDK is imported here.
_CLASS_RULES: tuple[tuple[str, frozenset[str]], ...] = (
    ("lock", frozenset({"WarehouseBusy", "LockNotAvailable", "DeadlockDetected"})),
    ("config", frozenset({"ConfigError", "PlanError", "InsufficientPrivilege", "ReadOnlyQueryError"})),
    ("model", frozenset({"ManifestError"})),
    (
        "transport",
        frozenset(
            {
                "ObjectReadError",  # a dropped connection while reading an object (not damage: rawdata.lines)
                "OperationalError",  # psycopg: the server went away, refused, timed out
                "ConnectionError",
                "TimeoutError",
                "ServiceUnavailable",  # google.api_core: 503
                "TooManyRequests",
                "InternalServerError",
                "GatewayTimeout",
                "EndpointConnectionError",  # botocore
                "ReadTimeoutError",
                "ConnectTimeoutError",
            }
        ),
    ),
)

#: Error classes whose message is dbt's own report of what failed.
_DBT_ERRORS = frozenset({"DbtBuildError", "CosmosDbtRunError"})


@dataclass(frozen=True)
class FailureClass:
    kind: str  # a key of RUNBOOK_BY_KIND
    retry: bool | None  # True: retry; False: fail at once; None: the task's usual retries

    @property
    def runbook(self) -> str:
        return RUNBOOK_BY_KIND[self.kind]

    def describe(self, runbook_url: str) -> str:
        what = {
            "transport": "a transport error: retried",
            "lock": "the warehouse was busy: retried",
            "schema": "a schema error: not retried, a retry would fail the same way",
            "model": "a dbt model error: not retried, a retry would fail the same way",
            "test": "a dbt test failed: not retried, the data is wrong until fixed",
            "config": "a configuration or tracking plan error: not retried, a retry would fail the same way",
            "refused": "refused: not retried",
            "unknown": "an unexpected error: retried as usual",
        }[self.kind]
        return f"{what}; what to do: {runbook_url}#{self.runbook}"


def classify(exc: BaseException) -> FailureClass:
    """What kind of failure ``exc`` is, and whether retrying it can help."""
    declared = getattr(exc, "trackway_failure", None)  # e.g. a refused reprocess (trackway.orchestration.reprocess)
    if isinstance(declared, str) and declared in RUNBOOK_BY_KIND:
        return FailureClass(declared, False)
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _DBT_ERRORS:
        text = str(exc)
        for kind, pattern in _MESSAGE_RULES:
            if pattern.search(text):
                return FailureClass(kind, kind in ("lock", "transport"))
        return FailureClass("unknown", None)
    for kind, classes in _CLASS_RULES:
        if names & classes:
            return FailureClass(kind, kind in ("lock", "transport"))
    if isinstance(exc, OSError):  # sockets, files, fsspec's stores
        return FailureClass("transport", True)
    return FailureClass("unknown", None)


class TrackwayRetryPolicy(RetryPolicy):
    """Every Trackway task's retry policy (dag_defaults): retry transport and lock errors, fail the rest at once.

    Errors of no known class keep the task's usual retries. Evaluated in the worker
    (Airflow serializes only that a policy exists), after AirflowFailException, which
    always fails at once.
    """

    def evaluate(self, exception: BaseException, try_number: int, max_tries: int, context: Any = None):
        from trackway.config import load_settings

        failure = classify(exception)
        reason = failure.describe(load_settings().runbook_url)
        if failure.retry is False:
            return RetryDecision.fail(reason=reason)
        if failure.retry:
            return RetryDecision.retry(reason=reason)
        return RetryDecision.default()

    def serialize(self) -> dict[str, Any]:
        return {"__type": "TrackwayRetryPolicy"}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> TrackwayRetryPolicy:
        return cls()
