"""`trackway plan test`: the plan's analyst queries, run against the warehouse ("TDD for data").

A query passes when it runs and returns at least one row: an event whose
questions can't be answered from the warehouse is not done yet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from trackway.config import Settings
from trackway.plan.model import Plan, PlanError


@dataclass(frozen=True)
class QueryResult:
    event: str
    query: str
    rows: int
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.rows > 0

    def line(self) -> str:
        if self.error:
            return f"FAIL {self.query} ({self.event}): {self.error}"
        if not self.rows:
            return f"FAIL {self.query} ({self.event}): returned no rows"
        return f"ok   {self.query} ({self.event}): {self.rows} row(s) in {self.seconds:.2f}s"


def run_plan_queries(settings: Settings, plan: Plan, limit: int = 1000) -> list[QueryResult]:
    from trackway.warehouse import open_warehouse

    results: list[QueryResult] = []
    with open_warehouse(settings.read_warehouse, read_only=True) as wh:
        for event in plan.events:
            for query in event.queries:
                started = time.perf_counter()
                try:
                    path = plan.query_path(query)
                except PlanError as exc:
                    results.append(QueryResult(event.name, query, 0, 0.0, str(exc)))
                    continue
                try:
                    sql = path.read_text(encoding="utf-8")
                except OSError as exc:
                    results.append(QueryResult(event.name, query, 0, 0.0, f"cannot read {path}: {exc.strerror}"))
                    continue
                try:
                    _headers, rows = wh.query_with_headers(sql, limit=limit)
                except Exception as exc:  # the database's message is what the analyst needs
                    results.append(
                        QueryResult(event.name, query, 0, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
                    )
                    continue
                results.append(QueryResult(event.name, query, len(rows), time.perf_counter() - started))
    return results
