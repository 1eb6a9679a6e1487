"""Retention (issue 17 §4): ``trackway privacy run --as-of`` 100 days later leaves only the allowlist.

The demo plan, with ``retain: true`` on a few fields and a ``delete`` rule on one event, on
real DuckDB and PostgreSQL with dbt really building the marts. The dry run changes nothing;
the run leaves only allowlisted fields in the raw objects, the raw tables and the marts,
deletes the ``delete`` event's rows and its object; a reload of the hour, with a restored
pre-retention copy of the object (a backup), and a ``--full-refresh`` bring nothing back.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from plan_fixtures import DEMO_PLAN
from raw_files import write_gz_lines
from trackway.cli import main
from trackway.config import ConfigError, load_settings
from trackway.config.retention import DEFAULT_RETENTION, Retention
from trackway.config.sources import parse_sources
from trackway.load.loader import load_interval
from trackway.plan.docs import WarehouseStats, render_markdown
from trackway.plan.model import PlanError, load_plan
from trackway.plan.retention import Expiry, RetentionRules, rules_from_settings
from trackway.rawdata.partitions import hour_floor
from trackway.transform.dbt_runner import run_dbt
from trackway.warehouse import open_warehouse

PSEUDONYM = "h1:k1:abcdefghijklmnopqrstuvwxyz"  # the collector's pseudonym of an email (key k1)
SECRETS = ("secret-agent/1.0", "token=abc", "203.0.113.0", PSEUDONYM, "Ana Secret", "free-text-note")


def _edit(path, change) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _plan(root):
    plan = shutil.copytree(DEMO_PLAN, root / "plan")
    _edit(plan / "events" / "signed_up.yaml", lambda d: d["properties"]["properties"]["method"].update(retain=True))

    def identify(d):
        d["traits"]["properties"]["role"]["retain"] = True
        d["traits"]["properties"]["email"]["retain"] = True  # a hash field: kept, under the run's key

    _edit(plan / "events" / "identify.yaml", identify)
    _edit(plan / "events" / "listing_favorited.yaml", lambda d: d.update(retention={"full_days": 30, "then": "delete"}))
    return plan


def _events(hour: datetime) -> tuple[list[dict], list[dict], dict]:
    at = (hour + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    context = {
        "sessionId": 1795910400000,
        "ip": "203.0.113.0",
        "userAgent": "secret-agent/1.0",
        "page": {"url": "https://nestful.example/search?token=abc", "path": "/search"},
        "library": {"name": "analytics.js", "version": "5.0.0"},
    }
    base = {"userId": "u-1", "anonymousId": "a-1", "timestamp": at, "receivedAt": at, "context": context}
    kept = [
        {
            **base,
            "messageId": "m-identify",
            "type": "identify",
            "traits": {"email": PSEUDONYM, "role": "renter", "plan": "free", "name": "Ana Secret"},
        },
        {
            **base,
            "messageId": "m-signup",
            "type": "track",
            "event": "Signed Up",
            "properties": {"method": "email", "role": "renter"},
        },
        {
            **base,
            "messageId": "m-page",
            "type": "page",
            "name": "Home",
            "properties": {"path": "/", "note": "free-text-note"},
        },
    ]
    deleted = [
        {
            **base,
            "messageId": f"m-fav-{i}",
            "type": "track",
            "event": "Listing Favorited",
            "properties": {"listing_id": "l-1"},
        }
        for i in range(2)
    ]
    quarantined = {
        "reason": "no userId or anonymousId",
        "receivedAt": at,
        "event": {
            **base,
            "userId": None,
            "anonymousId": None,
            "type": "identify",
            "messageId": "m-q",
            "traits": {"name": "Ana Secret"},
        },
    }
    return kept, deleted, quarantined


def _snapshot(home) -> dict[str, str]:
    """Every raw object's bytes and every table's rows, hashed: what a dry run must leave as it was.

    (Any privacy command creates the ledger's tables, empty, the first time: empty tables are left out.)
    """
    found = {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest() for p in (home / "raw").rglob("*.gz")}
    with open_warehouse(load_settings().warehouse, read_only=True) as wh:
        for schema, table in _tables(wh):
            rows = sorted(repr(r) for r in wh.query(f'select * from "{schema}"."{table}"'))
            if rows:
                found[f"{schema}.{table}"] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return found


def _tables(wh) -> list[tuple[str, str]]:
    rows = wh.query(
        "select table_schema, table_name from information_schema.tables "
        "where table_schema not in ('information_schema', 'pg_catalog') and table_schema not like 'pg_%'"
    )
    return [(str(s), str(t)) for s, t in rows]


def _leftovers(home) -> list[str]:
    """Every place a secret or a deleted event is still found: raw objects, then every row of every table."""
    found = []
    for path in (home / "raw").rglob("*.gz"):
        text = gzip.decompress(path.read_bytes()).decode()
        found += [f"{value} in {path.name}" for value in (*SECRETS, "m-fav-") if value in text]
    with open_warehouse(load_settings().warehouse, read_only=True) as wh:
        for schema, table in _tables(wh):
            for row in wh.query(f'select * from "{schema}"."{table}"'):
                text = " ".join(str(v) for v in row)
                found += [f"{value} in {schema}.{table}" for value in (*SECRETS, "m-fav-") if value in text]
    return sorted(set(found))


@pytest.mark.slow
def test_as_of_100_days_later_leaves_only_the_allowlist_in_every_store(warehouse_env, monkeypatch, capsys):
    home = warehouse_env
    monkeypatch.setenv("TRACKWAY_PLAN_DIR", str(_plan(home)))
    monkeypatch.delenv("TRACKWAY_RETENTION_DEFAULT")  # the built-in default (conftest keeps fixtures whole)
    monkeypatch.setenv("TRACKWAY_PRIVACY_LEDGER_KEY", "0123456789abcdef" * 4)  # generated on DuckDB; needed elsewhere
    hour = hour_floor(datetime.now(UTC)) - timedelta(hours=2)
    folder = home / "raw" / "events" / f"dt={hour:%Y-%m-%d}" / f"hour={hour:%H}"
    folder.mkdir(parents=True)
    kept, deleted, quarantined = _events(hour)
    write_gz_lines(folder / "part-1.ndjson.gz", kept)
    write_gz_lines(folder / "part-2.ndjson.gz", deleted)  # only lines of the delete rule: the object goes
    quarantine = home / "raw" / "quarantine" / f"dt={hour:%Y-%m-%d}" / f"hour={hour:%H}"
    quarantine.mkdir(parents=True)
    write_gz_lines(quarantine / "part-1.ndjson.gz", [quarantined])
    original = (folder / "part-1.ndjson.gz").read_bytes()
    settings = load_settings()
    loaded = load_interval(settings, hour, hour + timedelta(hours=1))
    assert (loaded.rows_loaded, loaded.quarantined_rows) == (5, 1)
    assert run_dbt(settings, "run").success
    before = _snapshot(home)
    assert len(_leftovers(home)) > 10  # everything is there, whole

    as_of = (datetime.now(UTC) + timedelta(days=100)).isoformat()
    assert main(["privacy", "run", "--as-of", as_of, "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "raw.events_raw: would delete 2 row(s), would sanitize 3" in dry, dry
    assert "raw.events_quarantine: would delete 0 row(s), would sanitize 1" in dry, dry
    assert "analytics.events: would delete 2 row(s), would sanitize 3" in dry, dry
    assert (
        f"events/dt={hour:%Y-%m-%d}/: would rewrite 1 object(s), would delete 1 object(s); "
        "3 line(s) to sanitize, 2 to delete" in dry
    ), dry
    assert f"quarantine/dt={hour:%Y-%m-%d}/: would rewrite 1 object(s)" in dry, dry
    assert _snapshot(home) == before  # the dry run changed nothing

    assert main(["privacy", "run", "--as-of", as_of]) == 0
    out = capsys.readouterr().out
    assert "raw.events_raw: delete 2 row(s), sanitize 3" in out, out
    assert "analytics.events: delete 2 row(s), sanitize 3" in out, out
    assert _leftovers(home) == []
    assert not (folder / "part-2.ndjson.gz").exists()
    lines = [json.loads(line) for line in gzip.decompress((folder / "part-1.ndjson.gz").read_bytes()).splitlines()]
    identify, signup, page = lines
    assert identify["traits"]["role"] == "renter" and identify["traits"]["plan"] is None
    assert identify["traits"]["email"].startswith("h1:ret-")  # the allowlisted pseudonym, under the run's key
    assert signup["properties"] == {"method": "email", "role": None}
    assert page["properties"] == {"path": None, "note": None} and page["name"] == "Home"
    assert signup["context"]["ip"] is None and signup["context"]["library"]["name"] == "analytics.js"
    assert (signup["userId"], signup["messageId"], signup["receivedAt"]) == ("u-1", "m-signup", kept[1]["receivedAt"])
    with open_warehouse(load_settings().warehouse, read_only=True) as wh:
        assert wh.query("select count(*) from analytics.events")[0][0] == 3
        rows = dict(wh.query("select event_id, ip from analytics.events"))
        assert rows == {"m-identify": None, "m-signup": None, "m-page": None}

    # Nothing comes back: the pre-retention object restored from a backup, a reload of the hour, a full refresh.
    (folder / "restored.ndjson.gz").write_bytes(original)
    write_gz_lines(folder / "restored-2.ndjson.gz", deleted)
    again = load_interval(load_settings(), hour, hour + timedelta(hours=1), reload=True)
    assert again.erased_lines == 2, again.summary()
    assert run_dbt(load_settings(), "run", "--full-refresh").success
    assert [place for place in _leftovers(home) if "restored" not in place] == []  # only in the backups' objects
    with open_warehouse(load_settings().warehouse, read_only=True) as wh:
        assert wh.query("select count(*) from analytics.events")[0][0] == 3
    assert main(["privacy", "run", "--as-of", as_of]) == 0  # and the next run rewrites the backups too
    assert _leftovers(home) == []


def test_rules_precedence_event_over_source_over_the_plans_default(tmp_path):
    plan = _plan(tmp_path)
    _edit(plan / "plan.yaml", lambda d: d.update(retention={"full_days": 400, "then": "delete"}))
    (sources,) = parse_sources(
        "sources:\n- {name: firehose, url: 's3://other/fh/', layout: firehose, retention: {full_days: 7}}\n", "s.yaml"
    )
    rules = RetentionRules(load_plan(plan), [sources])
    fav = {"type": "track", "event": "Listing Favorited"}
    other = {"type": "track", "event": "Signed Up"}
    assert rules.rule(fav, "s3://other/fh/2026/x.gz") == Retention(30, "delete", "event")
    assert rules.rule(other, "s3://other/fh/2026/x.gz") == Retention(7, "sanitize", "source")
    assert rules.rule(other, "file:///raw/events/x.gz") == Retention(400, "delete", "plan")
    assert RetentionRules(None).rule(other) == DEFAULT_RETENTION == Retention(90, "sanitize", "default")
    now = datetime(2027, 3, 1, tzinfo=UTC)
    expiry = Expiry.at(rules, now)
    assert expiry.bound == now - timedelta(days=7)
    old = {**other, "receivedAt": "2026-11-01T00:00:00Z"}
    assert expiry.decide(old, "s3://other/fh/a.gz") == "sanitize" and expiry.decide(old, "file:///e.gz") is None
    assert expiry.decide({**other, "receivedAt": "garbled"}, "s3://other/fh/a.gz") is None
    dictionary = render_markdown(load_plan(plan), WarehouseStats())  # the data dictionary shows rules and allowlist
    assert r"- retention: 30 days, then delete \(event\)" in dictionary
    assert r"- retention: 400 days, then delete \(plan\)" in dictionary and "kept after retention" in dictionary


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("plan.yaml", {"full_days": "90"}, "plan.yaml: retention.full_days must be a whole number"),
        ("plan.yaml", {"full_days": 90, "then": "archive"}, "plan.yaml: retention.then 'archive' is not one of"),
        ("events/signed_up.yaml", {"days": 90}, "signed_up.yaml: retention must be {full_days: 90"),
        ("events/signed_up.yaml", {"full_days": 0}, "from 1 to 3650"),
    ],
)
def test_a_bad_retention_names_the_file_and_the_key(tmp_path, where, value, message):
    plan = _plan(tmp_path)
    _edit(plan / where, lambda d: d.update(retention=value))
    with pytest.raises(PlanError, match=message.replace("{", r"\{")):
        load_plan(plan)


def test_a_bad_source_retention_names_the_source():
    with pytest.raises(ConfigError, match=r"s.yaml: source 'fh': retention.then 'forget' is not one of"):
        parse_sources(
            "sources:\n- {name: fh, url: 's3://b/', layout: firehose, retention: {full_days: 9, then: forget}}\n",
            "s.yaml",
        )


def test_the_installs_default_is_a_setting(trackway_env, monkeypatch):
    monkeypatch.delenv("TRACKWAY_PLAN_DIR", raising=False)
    monkeypatch.setenv("TRACKWAY_RETENTION_DEFAULT", "30:delete")
    assert rules_from_settings(load_settings()).default == Retention(30, "delete", "default")
    monkeypatch.setenv("TRACKWAY_RETENTION_DEFAULT", "thirty")
    with pytest.raises(
        ConfigError, match=r"TRACKWAY_RETENTION_DEFAULT='thirty': write DAYS:sanitize, DAYS:delete or keep"
    ):
        load_settings().retention_default  # noqa: B018
