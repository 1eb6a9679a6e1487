"""What every load filters out: erased subjects (warehouse and raw store together), and lines past retention.

``privacy.erased_subjects`` (the warehouse) and ``_privacy/subjects.json`` (the raw store)
are both written from the erasure ledger; either one alone is enough, so a warehouse
restored without its privacy schema, or a raw store that lost ``_privacy/``, still
filters. Without the ledger key, a load with erasure requests to honour fails: loading
unfiltered would bring erased people back.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from trackway.config import ConfigError, Settings
from trackway.load.paths import storage_path
from trackway.plan.retention import Expiry, rules_from_settings
from trackway.subjects import mirror
from trackway.subjects.keys import ledger_key
from trackway.subjects.sets import SubjectFilter, SubjectMatcher, parse_time
from trackway.warehouse import Warehouse
from trackway.warehouse.ddl import PRIVACY_SCHEMA

log = logging.getLogger(__name__)


def _published(settings: Settings) -> SubjectFilter | None:
    path = storage_path(settings.raw_url.rstrip("/") + "/" + mirror.SUBJECTS_KEY, settings.raw_conn_id)
    path.fs.invalidate_cache()
    try:
        with path.open("rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    try:
        return SubjectFilter.from_document(json.loads(data))
    except ValueError as exc:  # fail closed: an unreadable set must not mean "nobody"
        raise ConfigError(
            f"{mirror.SUBJECTS_KEY} in {settings.raw_url} is damaged ({exc}); run `trackway privacy run`"
        ) from exc


def erased_subjects(settings: Settings, wh: Warehouse) -> SubjectMatcher | None:
    """What this load must drop; None when no erasure request asks for anything."""
    stored = SubjectFilter()
    if wh.table_exists(PRIVACY_SCHEMA, "erased_subjects"):
        key_ids = sorted({r[0] for r in wh.query(f"SELECT DISTINCT key_id FROM {PRIVACY_SCHEMA}.requests")})
        if len(key_ids) > 1:
            raise ConfigError(f"the erasure ledger holds requests under several keys ({', '.join(key_ids)})")
        rows = wh.query(f"SELECT subject_hash, drop_from, drop_until, suppressed FROM {PRIVACY_SCHEMA}.erased_subjects")
        stored = SubjectFilter.from_rows(rows, key_ids[0] if key_ids else None)
    published = _published(settings)
    try:
        subjects = stored.union(published) if published is not None else stored
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if not subjects:
        return None
    key = ledger_key(settings, create=False)
    if key is None:
        raise ConfigError(
            f"erasure requests exist but the ledger key is missing ({settings.home}/privacy/ledger.key): restore it; "
            "loading without it would bring erased people back"
        )
    try:
        matcher = SubjectMatcher(key, subjects)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    wh.ensure_privacy_tables()  # privacy.load_filtered notes what this load drops
    log.info("load filters %d erased or suppressed subject(s)", len(subjects.intervals))
    return matcher


def retention_at_load(settings: Settings, wh: Warehouse, now: datetime | None = None) -> Expiry | None:
    """What this load deletes or sanitises as past retention (None: no rule expires anything).

    As of now, or of the latest retention run if that is later (``trackway privacy run --as-of``
    ahead of the clock): a reload, backfill or late object never brings back what a run removed.
    """
    as_of = now or datetime.now(UTC)
    if wh.table_exists(PRIVACY_SCHEMA, "retention_runs"):
        latest = wh.query(f"SELECT max(as_of) FROM {PRIVACY_SCHEMA}.retention_runs")[0][0]
        moment = parse_time(latest)
        if moment is not None and moment > as_of:
            as_of = moment
    expiry = Expiry.at(rules_from_settings(settings), as_of)
    return expiry if expiry.bound is not None else None
