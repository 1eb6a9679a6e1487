"""Erasure requests end to end: record one, apply the pending ones, verify, report.

``request`` records and publishes (the collector suppresses within a poll interval, loads
filter at once). ``run`` applies every pending request: identity links are re-resolved,
the warehouse rows deleted, the raw objects rewritten, everything verified, and the
subject set published again. ``verify`` scans every store for one request.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from trackway.config import Settings
from trackway.config.registry import HealthSection
from trackway.objectstore import ObjectStore, open_object_store
from trackway.plan.retention import rules_from_settings
from trackway.privacy import objects as raw_objects
from trackway.privacy import retention, tables
from trackway.privacy.ledger import Ledger
from trackway.privacy.rewrite import RewriteError, erasing, rewrite_object
from trackway.subjects import mirror
from trackway.subjects.keys import ledger_key
from trackway.subjects.ledger import (
    FAILED,
    FINISHED,
    LINKED,
    STORE,
    VERIFIED,
    RequestEvent,
    RequestState,
    new_request,
)
from trackway.subjects.sets import SubjectMatcher, everything_of, subject_filter
from trackway.warehouse import open_warehouse

log = logging.getLogger(__name__)
Say = Callable[[str], None]


class UnknownRequest(LookupError):
    """No request has this id; the message says where to find them."""


def due_soon_window(settings: Settings) -> timedelta:
    """How close to its deadline an unfinished request alerts: TRACKWAY_HEALTH_ERASURE_DUE_DAYS, as health warns."""
    return timedelta(days=settings.section(HealthSection).health_erasure_due_days)


@contextlib.contextmanager
def open_ledger(settings: Settings, store: ObjectStore | None = None) -> Iterator[Ledger]:
    """The ledger on the configured warehouse and raw store, reconciled; fails without the ledger key.

    ``store``: the raw store opened with credentials of its own (the privacy DAG's connection,
    TRACKWAY_PRIVACY_RAW_CONN_ID); default: the process's credentials.
    """
    key = ledger_key(settings)
    assert key is not None  # required=True raises instead
    store = store or open_object_store(settings.raw_url)
    with open_warehouse(settings.warehouse) as wh:
        ledger = Ledger(wh, store, key)
        ledger.reconcile()
        yield ledger


def _link(ledger: Ledger, active: Sequence[RequestState], user_ids: dict[str, str], *, write: bool) -> int:
    """Add the anonymous ids newly found linked to each request's user ids (recorded unless a dry run)."""
    if not user_ids:
        return 0
    by_user: dict[str, set[str]] = {}
    for user_id, linked in tables.linked_ids(ledger.wh, sorted(user_ids)):
        by_user.setdefault(user_ids[user_id], set()).add(ledger.key.hash(linked))
    found = 0
    for state in active:
        links = {
            u: sorted(by_user[u] - state.hashes) for u in state.user_hashes if by_user.get(u, set()) - state.hashes
        }
        if links:
            found += sum(len(v) for v in links.values())
            detail = {"hashes": sorted({h for v in links.values() for h in v}), "links": links}
            if write:
                ledger.append(state, LINKED, detail=detail)
            else:
                state.events.append(
                    RequestEvent(state.request_id, state.next_seq, datetime.now(UTC), LINKED, detail=detail)
                )
    return found


def request(
    settings: Settings,
    request_type: str,
    *,
    user_ids: Sequence[str] = (),
    anonymous_ids: Sequence[str] = (),
    reason: str | None = None,
    source: str = "cli",
    now: datetime | None = None,
) -> RequestState:
    """Record a request and publish the new subject set; suppressions take effect now, deletions at the next run."""
    with open_ledger(settings) as ledger:
        made = new_request(
            request_type,
            user_ids=user_ids,
            anonymous_ids=anonymous_ids,
            key=ledger.key,
            now=now or datetime.now(UTC),
            due_days=settings.privacy_due_days,
            reason=reason,
            source=source,
        )
        state = ledger.record(made)
        if made.type != "unsuppress":  # the ids are in clear only now: link them while we have them
            _link(ledger, [state], {u: ledger.key.hash(u) for u in map(str, user_ids)}, write=True)
        ledger.publish(ledger.states())
        if made.suppresses or made.type == "unsuppress":
            ledger.append(state, STORE, store="suppression", status="done", detail={"published": mirror.SUBJECTS_KEY})
        if not made.deletes:
            ledger.append(state, FINISHED)
        return state


@dataclass
class RunReport:
    as_of: datetime
    dry_run: bool
    requests: list[str] = field(default_factory=list)  # the deletions this run applied
    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    links: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows deleted (or to delete)
    objects_rewritten: int = 0
    lines_removed: int = 0
    old_versions_removed: int = 0
    objects_failed: list[str] = field(default_factory=list)
    foreign_objects: list[str] = field(default_factory=list)
    days: list[date] = field(default_factory=list)  # daily_active_users days to recompute
    seconds: dict[str, float] = field(default_factory=dict)  # per store
    due_soon: list[dict[str, Any]] = field(default_factory=list)
    retention: retention.RetentionReport | None = None

    def lines(self) -> list[str]:
        verb = "would delete" if self.dry_run else "deleted"
        out = [
            f"privacy run as of {self.as_of.isoformat()}{' (dry run: nothing changed)' if self.dry_run else ''}: "
            f"{len(self.requests)} deletion request(s) pending, {len(self.finished)} finished, {len(self.failed)} failed, "
            f"{self.links} identity link(s) found"
        ]
        for table, rows in sorted(self.rows.items()):
            if rows:
                out.append(f"  {verb} {rows:>8,} row(s) from {table}")
        out.append(
            f"  raw objects: {self.objects_rewritten} {'to rewrite' if self.dry_run else 'rewritten'}, "
            f"{self.lines_removed} line(s) {'to remove' if self.dry_run else 'removed'}, "
            f"{self.old_versions_removed} old version(s) removed, {len(self.objects_failed)} failed"
        )
        out += [f"  object not rewritten: {problem}" for problem in self.objects_failed]
        if self.foreign_objects:
            out.append(
                f"  {len(self.foreign_objects)} object(s) of other systems hold filtered lines: never rewritten, "
                "filtered at every load"
            )
        out += [f"  request {rid} failed: {why}" for rid, why in self.failed.items()]
        out += [
            f"  DUE SOON: {d['request_id']} ({d['type']}, {d['status']}) is due {d['due_at']}" for d in self.due_soon
        ]
        if self.retention is not None:
            out += self.retention.lines()
        if self.seconds:
            out.append("  time per store: " + ", ".join(f"{k} {v:.2f}s" for k, v in self.seconds.items()))
        return out


def due_soon(all_states: Sequence[RequestState], now: datetime, within: timedelta) -> list[dict[str, Any]]:
    """Requests not finished ``within`` of their deadline (or past it): what the privacy DAG alerts on."""
    return [
        {"request_id": s.request_id, "type": s.request.type, "status": s.status, "due_at": s.request.due_at.isoformat()}
        for s in all_states
        if s.status != "finished" and s.request.due_at - now <= within
    ]


def due_requests(
    settings: Settings, now: datetime | None = None, store: ObjectStore | None = None
) -> list[dict[str, Any]]:
    """The ledger's requests not finished within TRACKWAY_HEALTH_ERASURE_DUE_DAYS of their deadline (the DAG's alert)."""
    with open_ledger(settings, store) as ledger:
        return due_soon(ledger.states(), now or datetime.now(UTC), due_soon_window(settings))


def run(
    settings: Settings,
    *,
    as_of: datetime | None = None,
    dry_run: bool = False,
    say: Say | None = None,
    store: ObjectStore | None = None,
) -> RunReport:
    """Apply every pending request received by ``as_of`` (default now), then retention as of then.

    ``dry_run`` changes nothing: it reports what would be deleted, rewritten or sanitised.
    """
    now = as_of or datetime.now(UTC)
    report = RunReport(as_of=now, dry_run=dry_run)
    say = say or (lambda msg: log.info("%s", msg))
    with open_ledger(settings, store) as ledger:
        wh, key = ledger.wh, ledger.key

        def received() -> list[RequestState]:
            return [s for s in ledger.states() if s.request.received_at <= now]

        started = time.perf_counter()
        current = received()
        if not dry_run:
            tables.backfill_id_hashes(wh, key)
        # Ids linked since: for deletions still to do and suppressions in effect (a finished
        # suppress_with_delete that gains a link is pending again, and its new ids are deleted).
        suppressed = subject_filter(current, key.key_id).suppressed
        active = [
            s
            for s in current
            if (s.request.deletes and s.status != "finished") or (s.request.suppresses and s.hashes & suppressed)
        ]
        users = tables.ids_of(wh, {h for s in active for h in s.user_hashes})
        report.links = _link(ledger, active, users, write=not dry_run)
        if not dry_run:
            for state in current:  # suppressions and unsuppressions are done once published
                if not state.request.deletes and state.status != "finished":
                    ledger.append(state, STORE, store="suppression", status="done")
                    ledger.append(state, FINISHED)
            current = received()
            ledger.publish(current, now)
        pending = [s for s in current if s.request.deletes and s.status != "finished"]
        if pending:
            report.requests = [s.request_id for s in pending]
            try:
                _erase(ledger, pending, subject_filter(current, key.key_id), report, dry_run=dry_run, say=say)
            except Exception as exc:
                for state in pending:
                    report.failed[state.request_id] = f"{type(exc).__name__}: {exc}"
                    if not dry_run:
                        ledger.append(state, FAILED, detail={"error": report.failed[state.request_id][:1000]})
                raise
            finally:
                if not dry_run:
                    ledger.publish(received(), now)
        else:
            subjects = subject_filter(current, key.key_id)
            if subjects:  # nothing pending: objects loads filtered, or no load has read yet, may hold erased lines
                _rewrite_objects(ledger, SubjectMatcher(key, subjects), set(), report, dry_run=dry_run)
        # Retention after the requests: an erased person's lines are gone before anything is sanitised.
        report.retention = retention.apply(wh, ledger.store, rules_from_settings(settings), now, dry_run=dry_run)
        report.seconds["retention"] = report.retention.seconds
        say(
            f"retention: {sum(report.retention.deleted.values()):,} row(s) deleted, "
            f"{sum(report.retention.sanitized.values()):,} sanitized{' (dry run)' if dry_run else ''}"
        )
        report.seconds["total"] = time.perf_counter() - started
        report.due_soon = due_soon(received(), now, due_soon_window(settings))
    return report


def _erase(
    ledger: Ledger,
    pending: list[RequestState],
    subjects: Any,
    report: RunReport,
    *,
    dry_run: bool,
    say: Say,
) -> None:
    wh, store, key = ledger.wh, ledger.store, ledger.key
    doomed = {h for s in pending for h in s.hashes}
    ids = sorted(tables.ids_of(wh, doomed))
    matcher = SubjectMatcher(key, subjects)  # every filtered subject: pending ones at every time
    quarantine = tables.quarantine_matches(wh, matcher)
    batch = {"requests": [s.request_id for s in pending]}

    def mark(store_name: str, status: str, detail: dict[str, Any]) -> None:
        if not dry_run:
            for state in pending:
                ledger.append(state, STORE, store=store_name, status=status, detail={**batch, **detail})

    clock = time.perf_counter()
    mark("warehouse", "started", {})
    if dry_run:
        report.rows = tables.deletable_counts(wh, ids, quarantine)
        candidates = tables.objects_holding(wh, ids) | set(quarantine.rows)
    else:
        deleted = tables.delete_subjects(wh, ids, quarantine)
        report.rows, report.days, candidates = deleted.rows, deleted.days, deleted.objects
    report.seconds["warehouse"] = time.perf_counter() - clock
    mark("warehouse", "done", {"rows": report.rows, "days_to_recompute": [d.isoformat() for d in report.days]})
    say(f"warehouse: {sum(report.rows.values()):,} row(s) {'to delete' if dry_run else 'deleted'}")

    mark("raw_objects", "started", {})
    keys = _rewrite_objects(ledger, matcher, candidates | _earlier_failures(pending), report, dry_run=dry_run)
    mark(
        "raw_objects",
        "failed" if report.objects_failed else "done",
        {
            "objects_scanned": len(keys),
            "objects_rewritten": report.objects_rewritten,
            "lines_removed": report.lines_removed,
            "old_versions_removed": report.old_versions_removed,
            "failed_objects": [p.split(": ", 1)[0] for p in report.objects_failed],
            "foreign_objects": len(report.foreign_objects),
        },
    )
    say(f"raw objects: {report.objects_rewritten} rewritten, {report.lines_removed} line(s) removed")
    if dry_run:
        return

    clock = time.perf_counter()
    check = SubjectMatcher(key, everything_of(doomed, key.key_id))
    rows = tables.count_rows(wh, check)
    scanned = raw_objects.scan_objects(store, sorted(keys), check)
    report.seconds["verification"] = time.perf_counter() - clock
    for state in pending:
        record = verification(state, rows, scanned, scope="the objects this run rewrote and unloaded objects")
        ledger.append(state, VERIFIED, detail=record)
        if record["clean"] and not report.objects_failed:
            ledger.append(state, FINISHED)
            report.finished.append(state.request_id)
        else:
            why = "verification found rows or objects left" if not record["clean"] else "raw objects failed"
            ledger.append(state, FAILED, detail={"error": why})
            report.failed[state.request_id] = why


def _rewrite_objects(
    ledger: Ledger, matcher: SubjectMatcher, candidates: set[str], report: RunReport, *, dry_run: bool
) -> list[str]:
    """Rewrite the candidates, the objects loads filtered, and the objects no load has read yet; their keys.

    Objects of other systems are never rewritten (every load filters them). Each rewrite is
    recorded in the load ledger, so the new object is not loaded again as new data.
    """
    wh, store = ledger.wh, ledger.store
    clock = time.perf_counter()
    queued = raw_objects.filtered_by_loads(wh)
    keys: dict[str, str] = {}
    for url in sorted(candidates | set(queued)):
        found = raw_objects.key_of(store, url)
        if found is None:
            report.foreign_objects.append(url)
        else:
            keys[found] = url
    for found in raw_objects.unloaded_keys(wh, store):
        keys.setdefault(found, store.url_for(found))
    edit = erasing(matcher)
    for object_key, url in sorted(keys.items()):
        try:
            done = rewrite_object(store, object_key, edit, dry_run=dry_run)
        except (RewriteError, FileNotFoundError, OSError) as exc:
            report.objects_failed.append(f"{url}: {exc}")
            continue
        if done.edited:
            report.objects_rewritten += 1
            report.lines_removed += done.edited
            report.old_versions_removed += done.old_versions_removed
            if done.replaced and done.fingerprint is not None:
                wh.record_rewrite(url, done.fingerprint, done.size, done.edited)
    if not dry_run:
        raw_objects.forget_filtered(wh, [u for u in queued if u in keys.values() and not _failed(report, u)])
    report.seconds["raw_objects"] = time.perf_counter() - clock
    return sorted(keys)


def _earlier_failures(pending: Sequence[RequestState]) -> set[str]:
    failed: set[str] = set()
    for state in pending:
        failed.update(state.store_status().get("raw_objects", {}).get("failed_objects", []))
    return failed


def _failed(report: RunReport, url: str) -> bool:
    return any(p.startswith(url + ": ") for p in report.objects_failed)


def verification(
    state: RequestState, rows: dict[str, Any], scanned: raw_objects.ScanResult, *, scope: str
) -> dict[str, Any]:
    """The verification record of one request: matching rows per table, lines and objects in raw."""
    hashes = state.hashes
    warehouse = {table: sum(counts[h] for h in hashes) for table, counts in sorted(rows.items())}
    lines, objects = scanned.found(hashes)
    return {
        "warehouse": warehouse,
        "raw_objects": {"objects": objects, "lines": lines, "scanned": scanned.objects_scanned, "scope": scope},
        "unreadable_objects": scanned.unreadable[:20],
        "clean": not any(warehouse.values()) and not lines and not scanned.unreadable,
    }


def verify(settings: Settings, request_id: str, *, record: bool = True) -> dict[str, Any]:
    """Scan every store for one request's subjects: rows per table, lines and objects in the raw store."""
    with open_ledger(settings) as ledger:
        state = ledger.state(request_id)
        if state is None:
            raise UnknownRequest(f"no erasure request {request_id}; `trackway privacy status` lists them")
        check = SubjectMatcher(ledger.key, everything_of(state.hashes, ledger.key.key_id))
        rows = tables.count_rows(ledger.wh, check)
        scanned = raw_objects.scan_objects(ledger.store, raw_objects.raw_keys(ledger.store), check)
        result = verification(state, rows, scanned, scope="every object of the raw store")
        published = mirror.read_subjects(ledger.store)
        if state.request.suppresses:
            suppressed = published.suppressed if published else frozenset()
            result["suppression"] = {
                "subjects_suppressed": len(state.hashes & suppressed),
                "subjects": len(state.hashes),
            }
        result["request_id"] = request_id
        result["status"] = state.status
        if record:
            ledger.append(
                state, VERIFIED, detail={k: v for k, v in result.items() if k not in ("request_id", "status")}
            )
        return result


def status(settings: Settings, request_id: str | None = None) -> list[dict[str, Any]]:
    with open_ledger(settings) as ledger:
        found = ledger.states()
    if request_id is not None:
        found = [s for s in found if s.request_id == request_id]
        if not found:
            raise UnknownRequest(f"no erasure request {request_id}; `trackway privacy status` lists them")
    return [s.summary() for s in found]
