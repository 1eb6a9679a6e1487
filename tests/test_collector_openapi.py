"""The OpenAPI document at /openapi.json is true to the server: schemathesis fuzzes every operation against it.

Bounded (examples per operation, no deadline per example). Across generated bodies, headers
(Content-Encoding) and auth, the only 5xx allowed is the documented 503, responses conform to the
document, and every event a 200 acknowledged is in the raw store afterwards.
"""

from __future__ import annotations

import base64
import uuid
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from collector_helpers import CollectorProcess, local_store, wait_for_events
from trackway.collector.http_api import ROUTES

AUTH = "Basic " + base64.b64encode(b"key-web:").decode()
ACKED: list[str] = []
EXAMPLES = 20  # per operation: ~340 requests in all
LENIENT = [checks.positive_data_acceptance, checks.negative_data_rejection, checks.ignored_auth]


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    proc = CollectorProcess(tmp_path_factory.mktemp("fuzz")).start()
    yield proc
    proc.close()


def _tag(case) -> list[str]:
    """Give every event a unique messageId we can look for in the store; return them in order."""
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("batch"), list):
        ids = []
        for event in body["batch"]:
            if isinstance(event, dict):
                event["messageId"] = f"fuzz-{uuid.uuid4()}"
                ids.append(event["messageId"])
            else:
                ids.append("")
        return ids
    if isinstance(body, dict):
        body["messageId"] = f"fuzz-{uuid.uuid4()}"
        return [body["messageId"]]
    return []


def test_api_conforms_to_its_openapi_document(collector):
    # schemathesis' Python API with hypothesis directly (its pytest plugin does not load under this pytest).
    schema = schemathesis.openapi.from_url(collector.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    documented = {op.path for op in operations}
    assert set(ROUTES) <= documented and {"/health", "/v1/projects/{writeKey}/settings"} <= documented
    assert "/metrics" not in documented  # the admin listener's, not this API's
    statuses: Counter = Counter()
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case) -> None:
            ids = _tag(case) if case.method == "POST" else []
            headers = dict(case.headers or {})
            if "Authorization" not in headers:
                headers["Authorization"] = AUTH  # most requests carry a valid key, so 200s are common
            response = case.call(headers=headers, timeout=10)
            statuses[response.status_code] += 1
            assert response.status_code < 500 or response.status_code == 503, (case.method, case.path, response.text)
            # Status codes, content types, headers and bodies must be as documented. Not checked: that a
            # schema-valid body is accepted (an event can match the schema and still break Segment's rules,
            # e.g. no userId) or an invalid one refused (a bad event in a batch is quarantined, 200).
            case.validate_response(response, excluded_checks=LENIENT)
            if response.status_code == 200 and case.method == "POST":
                refused = {e["index"] for e in response.json().get("errors", [])}
                ACKED.extend(mid for i, mid in enumerate(ids) if mid and i not in refused)

        fuzz()
    print(f"\nfuzzed {sum(statuses.values())} requests over {len(operations)} operations: {dict(statuses)}")
    assert statuses[200] > 0 and any(400 <= code < 500 for code in statuses)


def test_every_fuzzed_200_was_stored(collector):
    assert ACKED, "the fuzzer produced no 200 at all"
    wait_for_events(local_store(collector.home), ACKED)
