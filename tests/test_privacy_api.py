"""The regulations API (POST/GET /v1/regulations), served by uvicorn on loopback over real HTTP.

The admin listener that will mount it belongs to another change; here the ASGI app
runs on its own, the way the admin app will hand it the /v1/regulations paths.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests
import uvicorn

from collector_helpers import free_port
from trackway.cli import main
from trackway.collector.regulations import RegulationsApi
from trackway.config import load_settings
from trackway.objectstore import open_object_store
from trackway.subjects import mirror

TOKEN = "t0ken-" + "x" * 30


@pytest.fixture
def api(trackway_env, monkeypatch):
    def serve(token: str | None):
        if token:
            monkeypatch.setenv("TRACKWAY_PRIVACY_API_TOKEN", token)
        settings = load_settings()
        app = RegulationsApi(settings, open_object_store(settings.raw_url))
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}/v1/regulations"

    servers: list = []
    yield serve
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def test_no_token_no_api_and_a_wrong_token_is_refused(api):
    url = api(None)
    assert requests.post(url, json={}, timeout=10).status_code == 503
    url = api(TOKEN)
    refused = requests.post(url, json={}, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert requests.get(url + "/rq-20260101T000000-00000000", timeout=10).status_code == 401


def test_post_records_and_suppresses_get_follows_the_request_to_finished(api, trackway_env, capsys):
    url = api(TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bad = requests.post(url, json={"regulationType": "SUPPRESS_WITH_DELETE", "subjectType": "EMAIL"}, headers=auth)
    assert bad.status_code == 400 and "USER_ID or ANONYMOUS_ID" in bad.text
    wrong_type = {"regulationType": "FORGET", "subjectType": "USER_ID", "subjectIds": ["u"]}
    assert requests.post(url, json=wrong_type, headers=auth, timeout=10).status_code == 400
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
    store = open_object_store(load_settings().raw_url)
    assert len(mirror.read_subjects(store).suppressed) == 1  # the collector suppresses at its next poll
    stored = b"".join(store.read_bytes(k) for k in store.list("_privacy/"))
    assert b"carol@example.com" not in stored and TOKEN.encode() not in stored

    assert main(["privacy", "run"]) == 0  # the warehouse picks the request up from the raw store, and applies it
    assert "1 finished, 0 failed" in capsys.readouterr().out
    regulation = requests.get(f"{url}/{request_id}", headers=auth, timeout=10).json()["data"]["regulation"]
    assert regulation["overallStatus"] == "FINISHED" and regulation["finishedAt"]
    assert requests.get(f"{url}/rq-20260101T000000-00000000", headers=auth, timeout=10).status_code == 404
    assert requests.get(f"{url}/../../etc", headers=auth, timeout=10).status_code == 404
