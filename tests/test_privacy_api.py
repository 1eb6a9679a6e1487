"""The regulations API (POST/GET /v1/regulations) on the collector's admin listener, over real HTTP.

A real collector process: the API answers on the admin listener only, behind its bearer
token, and writes to the ledger's copy in the raw store (the collector has no warehouse);
`trackway privacy run` then applies the request and the API follows it to FINISHED.
"""

from __future__ import annotations

import requests

from collector_helpers import CollectorProcess, local_store
from trackway.cli import main
from trackway.subjects import mirror

TOKEN = "t0ken-" + "x" * 30


def test_no_token_no_api_and_a_wrong_token_is_refused(trackway_env):
    collector = CollectorProcess(trackway_env).start()
    try:
        assert requests.post(collector.admin_url + "/v1/regulations", json={}, timeout=10).status_code == 503
    finally:
        collector.close()
    collector = CollectorProcess(trackway_env, TRACKWAY_PRIVACY_API_TOKEN=TOKEN).start()
    try:
        url = collector.admin_url + "/v1/regulations"
        refused = requests.post(url, json={}, headers={"Authorization": "Bearer nope"}, timeout=10)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert requests.get(url + "/rq-20260101T000000-00000000", timeout=10).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        public = requests.post(collector.url + "/v1/regulations", json={}, headers=auth, timeout=10)
        assert public.status_code in (401, 404)  # never on the tracking port
    finally:
        collector.close()


def test_post_records_and_suppresses_get_follows_the_request_to_finished(trackway_env, capsys):
    collector = CollectorProcess(trackway_env, TRACKWAY_PRIVACY_API_TOKEN=TOKEN).start()
    url = collector.admin_url + "/v1/regulations"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        bad = requests.post(url, json={"regulationType": "SUPPRESS_WITH_DELETE", "subjectType": "EMAIL"}, headers=auth)
        assert bad.status_code == 400 and "USER_ID or ANONYMOUS_ID" in bad.text
        wrong_type = {"regulationType": "FORGET", "subjectType": "USER_ID", "subjectIds": ["u"]}
        assert requests.post(url, json=wrong_type, headers=auth, timeout=10).status_code == 400
        assert requests.post(url, data=b"{not json", headers=auth, timeout=10).status_code == 400
        body = {"regulationType": "SUPPRESS_WITH_DELETE", "subjectType": "USER_ID", "subjectIds": ["carol@example.com"]}
        created = requests.post(url, json=body, headers=auth, timeout=10)
        assert created.status_code == 200
        request_id = created.json()["data"]["regulateId"]

        regulation = requests.get(f"{url}/{request_id}", headers=auth, timeout=10).json()["data"]["regulation"]
        assert (regulation["id"], regulation["regulationType"], regulation["overallStatus"]) == (
            request_id,
            "SUPPRESS_WITH_DELETE",
            "INITIALIZED",
        )
        assert {"name": "suppression", "status": "DONE"} in regulation["streamStatus"]
        store = local_store(trackway_env)
        assert len(mirror.read_subjects(store).suppressed) == 1  # the workers suppress at their next poll
        stored = b"".join(store.read_bytes(k) for k in store.list("_privacy/"))
        assert b"carol@example.com" not in stored and TOKEN.encode() not in stored

        assert main(["privacy", "run"]) == 0  # the warehouse picks the request up from the raw store, and applies it
        assert "1 finished, 0 failed" in capsys.readouterr().out
        regulation = requests.get(f"{url}/{request_id}", headers=auth, timeout=10).json()["data"]["regulation"]
        assert regulation["overallStatus"] == "FINISHED" and regulation["finishedAt"]
        assert requests.get(f"{url}/rq-20260101T000000-00000000", headers=auth, timeout=10).status_code == 404
        assert requests.get(f"{url}/..%2F..%2Fetc", headers=auth, timeout=10).status_code == 404
    finally:
        collector.close()
