"""No full IP address and no clear personal trait anywhere after a demo-like run (docs/privacy.md).

The official Segment SDK sends a day's worth of calls (request address 127.0.0.1, clients' own
context.ip in IPv4, IPv6 and IPv4-mapped form, emails, a sampled source) to a real collector with the
demo plan and a keyring; the raw objects are loaded and dbt builds every model, on DuckDB and on a
real PostgreSQL. Then every raw object, every quarantine record and every row of every table is
searched for the addresses and emails as sent: none may be there. analytics.events.sample_rate
weighs the sampled source.
"""

from __future__ import annotations

import gzip
import shutil
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from segment.analytics import Client

from collector_helpers import DEADLINE, CollectorProcess, local_store, make_keyring, trackway_environ
from plan_fixtures import DEMO_PLAN
from trackway.config import load_settings
from trackway.load.loader import load_interval
from trackway.rawdata.partitions import hour_floor
from trackway.transform.dbt_runner import run_dbt
from trackway.warehouse import open_warehouse

FULL_IPS = ("127.0.0.1", "203.0.113.77", "2001:db8:abcd:12::7", "::ffff:198.51.100.9", "198.51.100.9")
EMAILS = ("ana@example.com", "bob@example.com")
CTX = {"sessionId": 1795910400000}


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def pipeline(request, tmp_path_factory):
    home = tmp_path_factory.mktemp(f"privacy-pipeline-{request.param}")
    plan = shutil.copytree(DEMO_PLAN, home / "plan")
    make_keyring(home / "keys.yaml", "k1")
    env = {
        "TRACKWAY_HOME": str(home),
        "TRACKWAY_PLAN_DIR": str(plan),
        "TRACKWAY_PSEUDONYM_KEYS": str(home / "keys.yaml"),
        "TRACKWAY_WRITE_KEYS": "web:key-web,sampled:key-sampled",
        "TRACKWAY_SAMPLE": "sampled:0.5",
    }
    if request.param == "postgres":
        from postgres_server import create_database

        env["TRACKWAY_WAREHOUSE_URL"] = create_database(request.getfixturevalue("postgres_url"), "privacy_pipeline")
    started = hour_floor(datetime.now(UTC))
    collector = CollectorProcess(home, **env).start()
    try:
        client = Client("key-web", host=collector.url, sync_mode=True)
        for n, (ip, email) in enumerate(zip(FULL_IPS, EMAILS * 3, strict=False)):
            context = {**CTX} if ip == "127.0.0.1" else {**CTX, "ip": ip}
            client.identify(f"u-{n}", {"email": email, "role": "renter", "plan": "free"}, context=context)
            client.page(f"u-{n}", None, "Home", {"path": "/", "url": "https://nestful.example/"}, context=context)
            client.track(f"u-{n}", "Signed Up", {"method": "email", "role": "renter"}, context=context)
        invalid = {"type": "identify", "traits": {"email": EMAILS[0]}, "context": {"ip": FULL_IPS[1]}}  # no ids
        valid = {
            "type": "track",
            "event": "Signed Up",
            "userId": "u-9",
            "properties": {"method": "email", "role": "renter"},
            "context": CTX,
        }
        answer = requests.post(
            collector.url + "/v1/batch", json={"batch": [invalid, valid]}, auth=("key-web", ""), timeout=DEADLINE
        )
        assert answer.json()["quarantined"] == 1, answer.text
        sampled = Client("key-sampled", host=collector.url, sync_mode=True)
        for i in range(200):
            sampled.track(
                f"s-{i}", "Signed Up", {"method": "email", "role": "renter"}, context=CTX, message_id=str(uuid.uuid4())
            )
        assert collector.stop() == 0, collector.stderr
    finally:
        collector.close()
    mp = trackway_environ(env)
    now = hour_floor(datetime.now(UTC))
    report = load_interval(load_settings(), started - timedelta(hours=1), now + timedelta(hours=2))
    assert report.object_errors == []
    dbt = run_dbt(load_settings(), "build")
    yield {"home": home, "dbt": dbt, "kind": request.param}
    mp.undo()


def _tables(wh) -> list[tuple[str, str]]:
    rows = wh.query(
        "select table_schema, table_name from information_schema.tables "
        "where table_schema not in ('information_schema', 'pg_catalog') and table_schema not like 'pg_%'"
    )
    return [(str(s), str(t)) for s, t in rows]


def test_the_build_passes(pipeline):
    assert pipeline["dbt"].success and pipeline["dbt"].tests_failed == 0


def test_no_full_ip_and_no_clear_email_in_any_raw_object(pipeline):
    store = local_store(pipeline["home"])
    texts = {key: gzip.decompress(store.read_bytes(key)).decode() for key in store.list("") if key.endswith(".gz")}
    assert any(k.startswith("events/") for k in texts) and any(k.startswith("quarantine/") for k in texts)
    for key, text in texts.items():
        for value in FULL_IPS + EMAILS:
            assert value not in text, f"{value} in {key}"
    assert "127.0.0.0" in "".join(texts.values())  # the request address, truncated


def test_no_full_ip_and_no_clear_email_in_any_table(pipeline):
    with open_warehouse(load_settings().warehouse, read_only=True) as wh:
        tables = _tables(wh)
        assert {("raw", "events_raw"), ("analytics", "events"), ("analytics", "users")} <= set(tables)
        for schema, table in tables:
            for row in wh.query(f'select * from "{schema}"."{table}"'):
                text = " ".join(str(v) for v in row)
                for value in FULL_IPS + EMAILS:
                    assert value not in text, f"{value} in {schema}.{table}"
        ips = {r[0] for r in wh.query("select distinct ip from analytics.events")}
    assert ips == {"127.0.0.0", "203.0.113.0", "2001:db8:abcd::", "198.51.100.0"}


def test_sample_rate_weighs_the_sampled_source(pipeline):
    with open_warehouse(load_settings().warehouse, read_only=True) as wh:
        rows = {
            (source, float(rate)): count
            for source, rate, count in wh.query(
                "select source_id, sample_rate, count(*) from analytics.events group by 1, 2"
            )
        }
        weighted = wh.query("select sum(1 / sample_rate) from analytics.events where source_id = 'sampled'")[0][0]
    assert set(rows) == {("web", 1.0), ("sampled", 0.5)}, rows
    assert 70 <= rows[("sampled", 0.5)] <= 130  # about half of 200 users, each with its one event
    assert float(weighted) == 2 * rows[("sampled", 0.5)]
