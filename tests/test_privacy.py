"""Personal data before anything is stored (docs/privacy.md): the keyring, pseudonyms, IP truncation,
sampling and consent, as pure functions and at a real collector over HTTP (the official Segment SDK
where it is cheap). No timed asserts; the secret is looked for in every output the collector makes."""

from __future__ import annotations

import base64
import gzip
import hmac
import re
import shutil
import subprocess
import sys
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from segment.analytics import Client

from collector_helpers import (
    DEADLINE,
    CollectorProcess,
    clean_env,
    local_store,
    make_keyring,
    read_lines,
    wait_for,
    wait_for_events,
)
from plan_fixtures import DEMO_PLAN
from trackway.plan.lint import lint_plan
from trackway.plan.model import PlanError, load_plan
from trackway.plan.privacy import PlanPrivacy, Privacy, stored_plan
from trackway.pseudonym import (
    KeyringError,
    NoValidKey,
    is_pseudonym,
    load_keyring,
    pseudonymise,
    sampled,
    truncate_ip,
)
from trackway.pseudonym.keyring import parse_keyring

SECRET_A = bytes(range(32))
SECRET_B = bytes(range(100, 140))


def _ring(text_keys: list[dict]) -> str:
    return yaml.safe_dump({"keys": text_keys})


RING = _ring(
    [
        {
            "id": "k2025",
            "secret": "hex:" + SECRET_A.hex(),
            "valid_from": "2025-01-01T00:00:00Z",
            "valid_until": "2026-01-01T00:00:00Z",
        },
        {
            "id": "k2026",
            "secret": "base64:" + base64.b64encode(SECRET_B).decode(),
            "valid_from": "2026-01-01T00:00:00Z",
        },
    ]
)


# ---- pure functions


@settings(max_examples=2000, deadline=None)
@given(digest=st.binary(min_size=16, max_size=16))
def test_the_pseudonyms_base32_is_rfc_4648s(digest):
    """The collector's own base32 of 128 bits is the stdlib's, lower case, without padding."""
    from trackway.pseudonym.hashing import base32_128

    assert base32_128(digest) == base64.b32encode(digest).decode()[:26].lower()


def test_a_pseudonym_is_stable_within_a_key_window_and_differs_across_keys():
    keyring = parse_keyring(RING, "test")
    march, june = "2025-03-01T10:00:00Z", "2025-06-30T23:59:59Z"
    first = pseudonymise("ana@example.com", keyring, at=march)
    assert re.fullmatch(r"h1:k2025:[a-z2-7]{26}", first)
    # HMAC-SHA256 (RFC 2104) under the key, its first 128 bits in base32: checked against the stdlib's hmac.
    expected = base64.b32encode(hmac.digest(SECRET_A, b"ana@example.com", "sha256")[:16]).decode()[:26].lower()
    assert first == f"h1:k2025:{expected}"
    assert pseudonymise("ana@example.com", keyring, at=june) == first  # joins work inside the window
    assert pseudonymise("bob@example.com", keyring, at=june) != first
    later = pseudonymise("ana@example.com", keyring, at="2026-02-01T00:00:00Z")
    assert later.startswith("h1:k2026:") and later.split(":")[2] != first.split(":")[2]  # rotation: a new key
    assert pseudonymise(42, keyring, at=march) == pseudonymise("42", keyring, at=march)  # ids as number or text
    assert pseudonymise(first, keyring) == first and is_pseudonym(first)  # never hashed twice
    assert pseudonymise(None, keyring) is None
    with pytest.raises(NoValidKey):
        pseudonymise("x", keyring, at="2024-12-31T23:59:59Z")
    # Deleting a key: what it made cannot be made again by any other key.
    without = parse_keyring(
        _ring([{"id": "k2026", "secret": "base64:" + base64.b64encode(SECRET_B).decode(), "valid_from": "2026-01-01"}]),
        "t",
    )
    with pytest.raises(NoValidKey):
        pseudonymise("ana@example.com", without, at=march)


def test_keyring_errors_name_the_problem_and_never_the_secret(tmp_path):
    secret = "hex:" + (b"\xab" * 16).hex()  # too short
    for text, expected in [
        (_ring([{"id": "k1", "secret": secret, "valid_from": "2026-01-01"}]), "use at least 32"),
        (
            _ring([{"id": "k1", "secret": "plain-" + SECRET_A.hex(), "valid_from": "2026-01-01"}]),
            "must be 'base64:...' or 'hex:...'",
        ),
        (_ring([{"id": "k:1", "secret": "hex:" + SECRET_A.hex(), "valid_from": "2026-01-01"}]), "id must be"),
        (_ring([{"id": "k1", "secret": "hex:" + SECRET_A.hex()}]), "valid_from is missing"),
        (_ring([{"id": "k1", "secret": "hex:" + SECRET_A.hex(), "valid_from": "2026-01-01"}] * 2), "appears twice"),
        ("keys: [{id: k1, secret: 'hex:" + SECRET_A.hex() + "', valid_from: [", "not valid YAML"),
    ]:
        with pytest.raises(KeyringError) as err:
            parse_keyring(text, "TRACKWAY_PSEUDONYM_KEYS")
        assert expected in str(err.value)
        assert SECRET_A.hex() not in str(err.value) and "abab" not in str(err.value)
    with pytest.raises(KeyringError, match="cannot read"):
        load_keyring(str(tmp_path / "missing.yaml"))
    assert load_keyring(RING).by_id("k2026") is not None  # the document itself, inline
    assert "secret" not in repr(load_keyring(RING).keys[0]) and SECRET_A.hex() not in repr(load_keyring(RING).keys)


@pytest.mark.parametrize(
    ("address", "truncated"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::"),
        ("::ffff:203.0.113.77", "203.0.113.0"),  # IPv4-mapped: /48 alone would keep the whole IPv4 address
        ("2002:cb00:714d::1", "2002:cb00:7100::"),  # 6to4 holds 203.0.113.77 in bits 16-47
        ("fe80::1%eth0", "fe80::"),
        (" 198.51.100.9 ", "198.51.100.0"),
        ("not an address", None),
        ("10.0.0.1, 10.0.0.2", None),
    ],
)
def test_ip_truncation(address, truncated):
    assert truncate_ip(address) == truncated


def test_sampling_at_10_percent_keeps_10_percent_of_users_and_all_their_events():
    users = [f"user-{i}" for i in range(5000)]
    kept = [u for u in users if sampled(u, 0.1)]
    assert 0.08 * len(users) <= len(kept) <= 0.12 * len(users)
    # Deterministic: the same user is kept in every event; a lower rate is a subset of a higher one.
    assert all(sampled(u, 0.1) for u in kept for _ in range(3))
    assert {u for u in users if sampled(u, 0.05)} <= set(kept)
    assert sampled("x", 1.0) and not sampled("x", 0.0)
    # Through the collector's privacy step: every event of a kept user, none of the others.
    privacy = Privacy(lambda: PlanPrivacy(None), None, sample_by_source={"web": (0.1, "user_id")})
    stored: dict[str, int] = defaultdict(int)
    for user in users[:2000]:
        for n in range(3):
            event = {"type": "track", "event": "E", "userId": user, "context": {"n": n}}
            out, why = privacy.process(event, "web")
            if out is not None:
                stored[user] += 1
                assert out["context"]["trackway"] == {"sample_rate": 0.1}
            else:
                assert why == "sampled_out"
    assert 160 <= len(stored) <= 240 and set(stored.values()) == {3}


def test_the_privacy_step_never_changes_what_it_is_given_and_drops_hash_without_a_key():
    privacy = Privacy(lambda: PlanPrivacy(None), None)
    event = {
        "type": "identify",
        "userId": "u1",
        "traits": {"email": "ana@example.com", "plan": "pro"},
        "context": {"ip": "203.0.113.7", "traits": {"phone": "+1 555 0100"}, "trackway": {"sample_rate": 0.001}},
    }
    snapshot = yaml.safe_dump(event)
    out, _ = privacy.process(event, "web")
    assert yaml.safe_dump(event) == snapshot  # the plan validates the event as the client sent it
    assert out["traits"] == {"plan": "pro"}  # no keyring: hash means drop, never clear
    assert out["context"] == {"ip": "203.0.113.0", "traits": {}, "trackway": {}}  # a client cannot claim a rate
    group = {"type": "group", "groupId": "g", "userId": "u", "traits": {"name": "Acme", "email": "hi@acme.example"}}
    assert privacy.process(group, "web")[0]["traits"] == group["traits"]  # a group's traits are the company's


# ---- the tracking plan


def _plan(root: Path) -> Path:
    """The demo plan plus a contact event with PII properties, a consent category and a name rule."""
    plan = shutil.copytree(DEMO_PLAN, root / "plan")
    meta = yaml.safe_load((plan / "plan.yaml").read_text())
    meta["privacy"] = {"fields": [{"name": "*email*", "pii": "direct", "action": "hash"}]}
    (plan / "plan.yaml").write_text(yaml.safe_dump(meta))
    newsletter = yaml.safe_load((plan / "events" / "newsletter_subscribed.yaml").read_text())
    newsletter["consent_category"] = "Marketing"
    (plan / "events" / "newsletter_subscribed.yaml").write_text(yaml.safe_dump(newsletter))
    contact = {
        "name": "Contact Requested",
        "type": "track",
        "description": "A renter asked a landlord to call back.",
        "owner": "marketplace-team",
        "properties": {
            "type": "object",
            "required": ["listing_id", "phone", "message"],
            "properties": {
                "listing_id": {"type": "string", "privacy": "public"},
                "phone": {"type": "string", "privacy": "pii", "pii": "direct"},
                "message": {"type": "string", "privacy": "pii", "pii": "indirect", "action": "drop"},
                "callback_ip": {"type": "string", "privacy": "pii", "pii": "indirect", "action": "truncate"},
                "score": {"type": "integer", "privacy": "internal", "pii": "indirect", "action": "hash"},
            },
        },
    }
    (plan / "events" / "contact_requested.yaml").write_text(yaml.safe_dump(contact))
    return plan


def test_plan_classes_defaults_and_name_rules(tmp_path):
    plan = load_plan(_plan(tmp_path))
    rules = PlanPrivacy(plan)
    contact = next(e for e in plan.events if e.name == "Contact Requested")
    identify = next(e for e in plan.events if e.type == "identify")
    assert rules.class_of(contact, ("properties", "phone")).label() == "direct · hash"  # class default action
    assert rules.class_of(contact, ("properties", "message")).action == "drop"
    assert rules.class_of(contact, ("properties", "work_email")).origin == "rule"  # the plan-wide name rule
    assert rules.class_of(identify, ("traits", "email")).origin == "plan"
    assert rules.class_of(None, ("traits", "phone")).origin == "default"
    assert rules.class_of(None, ("context", "ip")).action == "truncate"
    assert PlanPrivacy(plan, ip_truncation=False).class_of(None, ("context", "ip")).action == "truncate"  # the plan's
    assert PlanPrivacy(None, ip_truncation=False).class_of(None, ("context", "ip")).action == "keep"
    # What the warehouse models are built from: a hashed property is a string, a dropped one not required.
    stored = next(e for e in stored_plan(plan).events if e.name == "Contact Requested").current.schema
    assert stored["properties"]["score"]["type"] == "string" and "message" not in stored["required"]
    stored_identify = next(e for e in stored_plan(plan).events if e.type == "identify").current.schema
    assert "format" not in stored_identify["properties"]["email"]  # a pseudonym is not a bad email


def test_lint_flags_personal_data_without_a_class_and_bad_classes(tmp_path):
    plan_dir = _plan(tmp_path)
    doc = yaml.safe_load((plan_dir / "events" / "contact_requested.yaml").read_text())
    doc["properties"]["properties"].update(
        {
            "client_ip": {"type": "string", "privacy": "pii"},
            "full_name": {"type": "string", "privacy": "pii"},
            "contact": {"type": "string", "privacy": "pii", "examples": ["+44 20 7946 0958"]},
            "reference": {"type": "string", "privacy": "internal", "examples": ["2026-11-22"]},
            "work_email": {"type": "string", "privacy": "pii"},  # covered by the name rule
        }
    )
    (plan_dir / "events" / "contact_requested.yaml").write_text(yaml.safe_dump(doc))
    problems = [p for p in lint_plan(load_plan(plan_dir)) if "personal data" in p]
    flagged = sorted(p.split("property '")[1].split("'")[0] for p in problems)
    assert flagged == ["client_ip", "contact", "full_name"], problems
    assert "pii: direct|indirect|none" in problems[0]
    doc["properties"]["properties"]["full_name"]["pii"] = "secret"
    (plan_dir / "events" / "contact_requested.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanError, match="pii 'secret' is not one of direct, indirect, none"):
        PlanPrivacy(load_plan(plan_dir))
    assert any("pii 'secret'" in p for p in lint_plan(load_plan(plan_dir)))


def test_data_dictionary_shows_each_property_class_and_action(tmp_path):
    from trackway.plan.docs import WarehouseStats, render_html, render_markdown

    plan = load_plan(_plan(tmp_path))
    markdown = render_markdown(plan, WarehouseStats())
    assert "| PII · action |" in markdown
    assert "| `phone` | `phone` | string | yes |  | pii | direct · hash |" in markdown
    assert "| `message` | `message` | string | yes |  | pii | indirect · drop |" in markdown
    assert "| `ip` | string |  | pii | indirect · truncate |" in markdown  # common context
    assert "dropped unless context\\.consent grants 'Marketing'" in markdown
    assert "direct · hash" in render_html(plan, WarehouseStats())


# ---- at a real collector


WRITE_KEYS = "web:key-web,backend:key-backend,sampled:key-sampled,accounts:key-accounts"


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    home = tmp_path_factory.mktemp("privacy-collector")
    keyring_path = home / "keys.yaml"
    keyring = make_keyring(keyring_path, "k2026q4")
    proc = CollectorProcess(
        home,
        TRACKWAY_WRITE_KEYS=WRITE_KEYS,
        TRACKWAY_PLAN_DIR=str(_plan(home)),
        TRACKWAY_PLAN_MODES="web:block,*:flag",
        TRACKWAY_PSEUDONYM_KEYS=str(keyring_path),
        TRACKWAY_SAMPLE="sampled:0.1:user_id",
        TRACKWAY_HASH_USER_ID="accounts",
    ).start()
    proc.keyring = keyring
    proc.keyring_path = keyring_path
    yield proc
    proc.close()


def _post(collector, key: str, batch: list[dict]) -> dict:
    answer = requests.post(collector.url + "/v1/batch", json={"batch": batch}, auth=(key, ""), timeout=DEADLINE)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _mid() -> str:
    return str(uuid.uuid4())


def test_planned_properties_are_hashed_dropped_and_truncated_before_storage(collector):
    keyring = collector.keyring
    contact = {
        "type": "track",
        "event": "Contact Requested",
        "messageId": _mid(),
        "anonymousId": "anon-1",
        "properties": {
            "listing_id": "lst_1",
            "phone": "+1 555 0100",
            "message": "call me at home, 12 Rua Augusta",
            "callback_ip": "2001:db8:abcd:12::7",
            "score": 7,
            "contact_email": "ana@example.com",  # unplanned property, matched by the name rule
        },
        "context": {"sessionId": 1, "ip": "198.51.100.23", "device": {"advertisingId": "idfa-1", "id": "dev-1"}},
    }
    assert _post(collector, "key-backend", [contact])["accepted"] == 1
    stored = wait_for_events(local_store(collector.home), [contact["messageId"]])[contact["messageId"]]
    props = stored["properties"]
    assert props["phone"] == pseudonymise("+1 555 0100", keyring) and props["phone"].startswith("h1:k2026q4:")
    assert "message" not in props and props["callback_ip"] == "2001:db8:abcd::"
    assert props["score"] == pseudonymise(7, keyring) and props["contact_email"] == pseudonymise(
        "ana@example.com", keyring
    )
    assert props["listing_id"] == "lst_1"
    assert stored["context"]["ip"] == "198.51.100.0"
    assert stored["context"]["device"] == {"advertisingId": pseudonymise("idfa-1", keyring), "id": "dev-1"}


def test_a_source_can_have_its_user_ids_pseudonymised(collector):
    client = Client("key-accounts", host=collector.url, sync_mode=True)
    sent = [
        client.identify("acct-991", {"email": "ana@example.com", "plan": "pro"}, message_id=_mid())[1],
        client.alias("acct-990", "acct-991", message_id=_mid())[1],
        client.track("acct-991", "Listing Favorited", {"listing_id": "lst_1"}, message_id=_mid())[1],
    ]
    rows = wait_for_events(local_store(collector.home), [m["messageId"] for m in sent])
    identify, alias, track = (rows[m["messageId"]] for m in sent)
    account = pseudonymise("acct-991", collector.keyring)
    assert identify["userId"] == track["userId"] == alias["userId"] == account  # joins still work
    assert alias["previousId"] == pseudonymise("acct-990", collector.keyring)
    assert identify["traits"] == {"email": pseudonymise("ana@example.com", collector.keyring), "plan": "pro"}
    # Another source keeps its ids as sent.
    _post(collector, "key-backend", [{"type": "track", "event": "E", "userId": "acct-991", "messageId": (m := _mid())}])
    assert wait_for_events(local_store(collector.home), [m])[m]["userId"] == "acct-991"


def test_quarantined_events_are_scrubbed_too(collector):
    store = local_store(collector.home)
    invalid = {  # neither userId nor anonymousId: the Segment rules refuse it
        "type": "identify",
        "messageId": _mid(),
        "traits": {"email": "ana@example.com", "phone": "+1 555 0100", "plan": "pro"},
        "context": {"ip": "203.0.113.77", "traits": {"email": "ana@example.com"}},
    }
    blocked = {  # valid, but the plan (web: block) refuses its city
        "type": "track",
        "event": "Contact Requested",
        "messageId": _mid(),
        "anonymousId": "anon-q",
        "properties": {"listing_id": 5, "phone": "+1 555 0199", "message": "private", "home_email": "b@example.com"},
        "context": {"sessionId": 1, "ip": "2001:db8:ffff:1::9"},
    }
    body = _post(collector, "key-web", [invalid, blocked])
    assert (body["accepted"], body["quarantined"]) == (0, 2)
    records = wait_for(
        lambda: (
            (r := {x["event"].get("messageId"): x for x in read_lines(store, "quarantine/")})
            and {invalid["messageId"], blocked["messageId"]} <= r.keys()
            and r
        ),
        "both quarantine records",
    )
    kept = records[invalid["messageId"]]["event"]
    assert kept["traits"] == {
        "email": pseudonymise("ana@example.com", collector.keyring),
        "phone": pseudonymise("+1 555 0100", collector.keyring),
        "plan": "pro",
    }
    assert kept["context"] == {
        "ip": "203.0.113.0",
        "traits": {"email": pseudonymise("ana@example.com", collector.keyring)},
    }
    plan_blocked = records[blocked["messageId"]]
    assert plan_blocked["violations"][0]["kind"] == "wrong_type"
    assert plan_blocked["event"]["properties"] == {
        "listing_id": 5,
        "phone": pseudonymise("+1 555 0199", collector.keyring),
        "home_email": pseudonymise("b@example.com", collector.keyring),
    }
    assert plan_blocked["event"]["context"]["ip"] == "2001:db8:ffff::"


def test_consent_denied_events_are_dropped_and_counted(collector):
    def newsletter(consent) -> dict:
        event = {
            "type": "track",
            "event": "Newsletter Subscribed",
            "messageId": _mid(),
            "anonymousId": "anon-c",
            "properties": {"source": "footer", "topics": ["city_guides"]},
            "context": {"sessionId": 1},
        }
        if consent is not None:
            event["context"]["consent"] = consent
        return event

    granted = newsletter({"categoryPreferences": {"Marketing": True, "Analytics": False}})
    unmanaged = newsletter(None)  # no consent object: Segment enforces nothing
    denied = newsletter({"categoryPreferences": {"Marketing": False, "Analytics": True}})
    missing = newsletter({"categoryPreferences": {"Analytics": True}})  # a category left out is not consent
    body = _post(collector, "key-backend", [granted, unmanaged, denied, missing])
    assert (body["accepted"], body["dropped"]) == (2, 2)
    single = requests.post(
        collector.url + "/v1/track",
        json=newsletter({"categoryPreferences": {}}),
        auth=("key-backend", ""),
        timeout=DEADLINE,
    )
    assert single.status_code == 200 and single.json() == {"success": True}
    store = local_store(collector.home)
    wait_for_events(store, [granted["messageId"], unmanaged["messageId"]])
    stored = {e["messageId"] for e in read_lines(store, "events/")}
    assert not {denied["messageId"], missing["messageId"]} & stored
    metrics = requests.get(collector.admin_url + "/metrics", timeout=DEADLINE).text
    assert 'trackway_collector_events_dropped_total{reason="consent_denied",source="backend"} 3.0' in metrics


def test_sampling_at_the_collector_keeps_10_percent_of_users_with_all_their_events(collector):
    """2,000 users x 3 events through the official SDK to a source sampled at 10% by user id."""
    client = Client("key-sampled", host=collector.url, upload_size=100, upload_interval=0.05, max_retries=0)
    failures = []
    client.on_error = lambda err, batch: failures.append(err)
    sent = defaultdict(list)
    for n in range(3):
        for i in range(2000):
            user = f"sampled-user-{i}"
            sent[user].append(client.track(user, "Listing Viewed", {"n": n}, message_id=_mid())[1]["messageId"])
    client.flush()
    client.join()
    assert failures == []

    def settled():
        text = requests.get(collector.admin_url + "/metrics", timeout=DEADLINE).text
        lines = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if "sampled" in line and not line.startswith("#")
        }
        accepted = lines.get('trackway_collector_events_accepted_total{source="sampled"}', 0)
        dropped = lines.get('trackway_collector_events_dropped_total{reason="sampled_out",source="sampled"}', 0)
        return (accepted, dropped) if accepted + dropped == 6000 else None

    accepted, dropped = wait_for(settled, "6,000 events accepted or sampled out")
    store = local_store(collector.home)
    rows = wait_for(
        lambda: (
            (r := [e for e in read_lines(store, "events/") if e.get("sourceId") == "sampled"])
            and len(r) == accepted
            and r
        ),
        f"{accepted:.0f} sampled events in the raw store",
    )
    by_user = defaultdict(set)
    for row in rows:
        by_user[row["userId"]].add(row["messageId"])
        assert row["context"]["trackway"]["sample_rate"] == 0.1
    assert 160 <= len(by_user) <= 240, len(by_user)  # 10% +- 2% of 2,000 users
    assert all(ids == set(sent[user]) for user, ids in by_user.items())  # every event of a kept user
    assert dropped == 6000 - 3 * len(by_user)


def test_a_new_key_in_the_file_takes_over_after_sighup(collector):
    import signal

    from trackway.pseudonym import append_key, new_key

    append_key(collector.keyring_path, new_key("k2027q1", datetime.now(UTC).isoformat()))
    collector.proc.send_signal(signal.SIGHUP)
    wait_for(
        lambda: (
            collector.health()["privacy"]["current_key"] == "k2027q1"
            and all(collector.health()["privacy"]["current_key"] == "k2027q1" for _ in range(6))
        ),
        "every worker on the new key",
    )
    event = {"type": "identify", "userId": "u-rot", "messageId": _mid(), "traits": {"email": "ana@example.com"}}
    _post(collector, "key-backend", [event])
    stored = wait_for_events(local_store(collector.home), [event["messageId"]])[event["messageId"]]
    assert stored["traits"]["email"].startswith("h1:k2027q1:")
    assert stored["traits"]["email"] == pseudonymise("ana@example.com", load_keyring(str(collector.keyring_path)))


def test_the_key_never_appears_in_any_output(collector, tmp_path):
    """Raw objects, the quarantine, logs, /metrics, /health, `config check` and the keys CLI."""
    keyring = load_keyring(str(collector.keyring_path))
    forms = set()
    for key in keyring.keys:
        forms |= {
            key.secret.hex(),
            base64.b64encode(key.secret).decode(),
            base64.urlsafe_b64encode(key.secret).decode(),
        }
    outputs = {
        "collector log": collector.stdout + collector.stderr,
        "/metrics": requests.get(collector.admin_url + "/metrics", timeout=DEADLINE).text,
        "/health": requests.get(collector.admin_url + "/health", timeout=DEADLINE).text,
    }
    store = local_store(collector.home)
    for key in store.list(""):
        if key.endswith(".gz"):
            outputs[key] = gzip.decompress(store.read_bytes(key)).decode("utf-8", "replace")
    env = clean_env(TRACKWAY_HOME=str(tmp_path), TRACKWAY_PSEUDONYM_KEYS=str(collector.keyring_path))
    for args in (["config", "check"], ["config", "check", "--json"], ["privacy", "keys", "list"]):
        result = subprocess.run(
            [sys.executable, "-m", "trackway.cli", *args], capture_output=True, text=True, env=env, timeout=DEADLINE
        )
        outputs[" ".join(args)] = result.stdout + result.stderr
    new = subprocess.run(
        [
            sys.executable,
            "-m",
            "trackway.cli",
            "privacy",
            "keys",
            "new",
            "--id",
            "k9",
            "--file",
            str(tmp_path / "k.yaml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=DEADLINE,
    )
    assert new.returncode == 0 and "added key k9" in new.stdout
    made = load_keyring(str(tmp_path / "k.yaml")).keys[0].secret
    forms |= {made.hex(), base64.b64encode(made).decode()}
    outputs["privacy keys new"] = new.stdout + new.stderr
    assert len(outputs) > 6 and any(k.startswith("events/") for k in outputs)
    for where, text in outputs.items():
        for form in forms:
            assert form not in text, f"a key's secret is in {where}"
    assert "k2026q4" in outputs["privacy keys list"]  # ids are shown, secrets never


def test_a_keyring_that_cannot_be_used_stops_the_collector_at_start(tmp_path):
    bad = tmp_path / "keys.yaml"
    bad.write_text(
        _ring(
            [{"id": "old", "secret": "hex:" + SECRET_A.hex(), "valid_from": "2020-01-01", "valid_until": "2021-01-01"}]
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "trackway.cli", "collect", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env=clean_env(TRACKWAY_HOME=str(tmp_path), TRACKWAY_PSEUDONYM_KEYS=str(bad)),
    )
    assert result.returncode == 1 and "no key is valid at" in result.stderr
    assert SECRET_A.hex() not in result.stderr + result.stdout


def test_config_check_warns_that_hash_drops_without_a_keyring(tmp_path):
    env = clean_env(TRACKWAY_HOME=str(tmp_path))
    run = [sys.executable, "-m", "trackway.cli", "config", "check", "--component", "privacy"]
    without = subprocess.run(run, capture_output=True, text=True, env=env, timeout=DEADLINE)
    assert without.returncode == 0 and "TRACKWAY_PSEUDONYM_KEYS is not set: the collector drops" in without.stdout
    env["TRACKWAY_PSEUDONYM_KEYS"] = RING  # the document itself: masked, never shown
    given = subprocess.run(run, capture_output=True, text=True, env=env, timeout=DEADLINE)
    assert "is not set" not in given.stdout and SECRET_A.hex() not in given.stdout + given.stderr
    assert "TRACKWAY_PSEUDONYM_KEYS" in given.stdout and "***" in given.stdout
