"""analytics.js (@segment/analytics-next) in a real headless Chromium, pointed at the collector.

The page changes nothing but the CDN host: analytics.js fetches its settings from the
collector (GET /v1/projects/<key>/settings), which names the collector as its only
destination. The real-world loadings are driven: the classic snippet + standalone.js
bundle, and the npm API (AnalyticsBrowser.load with cdnURL) from the package's UMD build,
one request per event and with the batching delivery strategy (/v1/b).
Both bundles come from node_modules (`make sdk-clients`), Chromium from Debian
(`make browser`), driven by playwright-core; the machine has no internet, and the test
checks the page made no request anywhere but the page server and the collector.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import requests

from trackway.pseudonym import pseudonymise

try:
    from collector_helpers import DEADLINE, WRITE_KEYS, CollectorProcess, privacy_defaults, wait_for_events
except ImportError:  # tests/ imported as a package
    from tests.collector_helpers import DEADLINE, WRITE_KEYS, CollectorProcess, privacy_defaults, wait_for_events

SDK_DIR = Path(__file__).resolve().parent / "sdk_clients"
AJS_DIR = SDK_DIR / "node_modules" / "@segment" / "analytics-next"
CHROMIUM = Path("/usr/bin/chromium")
KEY = "key-web"
TITLE = "Trackway browser test"
QUERY = "?utm_source=newsletter&utm_campaign=launch"
EVENT_PATHS = {"page": "/v1/p", "identify": "/v1/i", "track": "/v1/t", "group": "/v1/g", "alias": "/v1/a"}

# The calls the page makes, in order; args exactly as a page author writes them.
CALLS = [
    ["page", "Docs", "Install"],
    # before identify: analytics.js replaces an alias' userId with the identified user's id
    ["alias", "u-browser-2", "u-browser-1"],
    ["identify", "u-browser-1", {"email": "b1@example.com", "plan": "pro"}],
    ["track", "Order Completed", {"total": 12.5, "items": [1, 2], "coupon": None, "note": 'Café ☕ "quoted"'}],
    ["group", "acme", {"name": "Acme", "seats": 40}],
]

RUN_CALLS_JS = """
async function runCalls(analytics, calls) {
  const out = [];
  for (const [method, ...args] of calls) {
    const ctx = await analytics[method](...args);
    const failed = ctx.failedDelivery();
    out.push({method, messageId: ctx.event.messageId, failed: failed ? String(failed.reason) : null});
  }
  window.__result = {calls: out, anonymousId: analytics.user().anonymousId(), userAgent: navigator.userAgent};
}
"""

# The classic snippet (stub that buffers calls, then loads the bundle); `_cdn` is the only change.
SNIPPET_PAGE = """<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>%(title)s</title>
<script>%(run_calls)s</script>
<script>
(function () {
  var analytics = (window.analytics = window.analytics || []);
  ['page', 'track', 'identify', 'group', 'alias', 'ready', 'reset', 'on', 'once', 'off', 'screen', 'debug'].forEach(function (m) {
    analytics[m] = function () { analytics.push([m].concat(Array.prototype.slice.call(arguments))); return analytics; };
  });
  analytics.load = function (key, options) {
    var script = document.createElement('script');
    script.async = true;
    script.src = '/ajs/standalone.js';
    document.head.appendChild(script);
    analytics._loadOptions = options;
  };
  analytics._writeKey = %(key)s;
  analytics._cdn = %(collector)s;
  analytics.load(%(key)s);
  analytics.page(%(page_args)s);
  analytics.ready(function () { runCalls(window.analytics, %(calls)s); });
})();
</script></head><body>snippet</body></html>
"""

# The npm API, from the package's UMD build (global AnalyticsNext); optionally batching to /v1/b.
NPM_PAGE = """<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>%(title)s</title>
<script>%(run_calls)s</script>
<script src="/ajs/index.js"></script>
<script>
AnalyticsNext.AnalyticsBrowser.load({writeKey: %(key)s, cdnURL: %(collector)s}, %(load_options)s)
  .then(([analytics]) => runCalls(analytics, %(all_calls)s))
  .catch((err) => { window.__result = {loadError: String(err && err.message || err)}; });
</script></head><body>npm</body></html>
"""


@pytest.fixture(scope="module")
def browser_tools():
    node = shutil.which("node")
    assert node, "node not found: install Node.js 20+ and run `make sdk-clients`"
    assert (AJS_DIR / "dist" / "umd" / "standalone.js").is_file(), f"{AJS_DIR} is missing: run `make sdk-clients`"
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make browser` (Debian's chromium package)"
    version = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=DEADLINE).stdout
    match = re.search(r"Chromium (\d+)\.", version)
    assert match, f"cannot read the Chromium version from {version!r}"
    return node, match.group(1)


class _PageHandler(BaseHTTPRequestHandler):
    pages: ClassVar[dict[str, bytes]] = {}

    def do_GET(self):
        path = self.path.split("?")[0]
        if path.startswith("/ajs/") and "/" not in path[5:] and path.endswith(".js"):
            file = AJS_DIR / "dist" / "umd" / path[5:]
            body, ctype = (file.read_bytes(), "text/javascript") if file.is_file() else (None, None)
        else:
            body, ctype = self.pages.get(path), "text/html; charset=utf-8"
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def page_server(collector):
    """The web site: the test pages plus the analytics.js bundles, on its own origin."""
    fill = {
        "title": TITLE,
        "run_calls": RUN_CALLS_JS,
        "collector": json.dumps(collector.url),
        "page_args": ", ".join(json.dumps(a) for a in CALLS[0][1:]),
        "calls": json.dumps(CALLS[1:]),
        "all_calls": json.dumps(CALLS),
        "load_options": "{}",
    }
    batching = {
        "integrations": {
            "Segment.io": {
                "deliveryStrategy": {
                    "strategy": "batching",
                    "config": {"size": len(CALLS), "timeout": 60_000},  # size, not time, sends it
                }
            }
        }
    }
    handler = type(
        "PageHandler",
        (_PageHandler,),
        {
            "pages": {
                "/snippet.html": (SNIPPET_PAGE % {**fill, "key": json.dumps(KEY)}).encode(),
                "/npm.html": (NPM_PAGE % {**fill, "key": json.dumps(KEY)}).encode(),
                "/batching.html": (
                    NPM_PAGE % {**fill, "key": json.dumps(KEY), "load_options": json.dumps(batching)}
                ).encode(),
                "/npm-unknown-key.html": (NPM_PAGE % {**fill, "key": json.dumps("no-such-key")}).encode(),
            }
        },
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _open(browser_tools, page_url: str, collector, tmp_path: Path, expected_posts: int) -> dict:
    node, _ = browser_tools
    proc = subprocess.run(
        [
            node,
            str(SDK_DIR / "browser_page.js"),
            page_url,
            str(tmp_path / "chromium-profile"),
            collector.url,
            str(expected_posts),
        ],
        capture_output=True,
        text=True,
        timeout=2 * DEADLINE,
        cwd=SDK_DIR,
    )
    assert proc.returncode == 0, f"browser_page.js failed ({proc.returncode}):\n{proc.stderr}"
    return json.loads(proc.stdout)


def _only_local_traffic(out: dict, page_server: str, collector) -> None:
    """Nothing went to Segment's CDN/API or any other integration; nothing failed."""
    for req in out["requests"]:
        assert req["url"].startswith((page_server + "/", collector.url + "/")), f"unexpected request {req['url']}"
        assert req["failure"] is None, f"{req['url']} failed: {req['failure']}"
    assert out["pendingAtEnd"] == []


@pytest.mark.parametrize("variant", ["snippet", "npm", "batching"])
def test_analytics_js_in_chromium_lands_every_call(variant, browser_tools, collector, store, page_server, tmp_path):
    page_url = f"{page_server}/{variant}.html{QUERY}"
    batched = variant == "batching"
    out = _open(browser_tools, page_url, collector, tmp_path, expected_posts=1 if batched else len(CALLS))
    console = "\n".join(out["console"])
    result = out.get("result") or {}
    assert "loadError" not in result, f"analytics.js did not load: {result}\n{console}"
    _only_local_traffic(out, page_server, collector)

    # The SDK fetched its settings from the collector and got a 200 for every event it posted.
    settings = [r for r in out["requests"] if r["url"] == f"{collector.url}/v1/projects/{KEY}/settings"]
    assert [r["status"] for r in settings] == [200], console
    posts = [r for r in out["requests"] if r["method"] == "POST"]
    paths = ["/v1/b"] if batched else EVENT_PATHS.values()
    assert sorted(r["url"] for r in posts) == sorted(collector.url + p for p in paths), console
    assert all(r["status"] == 200 for r in posts), [(r["url"], r["status"]) for r in posts]
    assert [c["failed"] for c in result["calls"]] == [None] * len(result["calls"]), result

    bodies = [json.loads(r["body"]) for r in posts]
    wire = {e["type"]: e for body in bodies for e in body.get("batch", [body])}
    assert sorted(wire) == sorted(EVENT_PATHS) and all(body["writeKey"] == KEY for body in bodies)
    for call in result["calls"]:  # what the page's promises resolved with is what went on the wire
        assert wire[call["method"]]["messageId"] == call["messageId"]
    rows = wait_for_events(store, [w["messageId"] for w in wire.values()])
    stored = {t: rows[w["messageId"]] for t, w in wire.items()}

    for t, event in stored.items():
        sent = privacy_defaults(wire[t], collector.keyring)  # traits.email a pseudonym, context.ip truncated
        for key, value in sent.items():  # stored exactly as analytics.js sent it, plus only our enrichments
            if key == "writeKey":
                assert key not in event
            elif key == "context":
                assert event["context"] == {**value, "ip": "127.0.0.0"}, t
            else:
                assert event[key] == value, f"{t}.{key}"
        if batched:  # analytics.js moves sentAt to the batch; the collector copies it back to each event
            assert event["sentAt"] == bodies[0]["sentAt"]
        assert set(event) - set(sent) == {"receivedAt", "sourceId"} | ({"sentAt"} if batched else set()), t
        assert event["sourceId"] == WRITE_KEYS[KEY]
        assert event["anonymousId"] == result["anonymousId"], t
        ctx = event["context"]
        assert ctx["userAgent"] == result["userAgent"] and f"Chrome/{browser_tools[1]}." in ctx["userAgent"]
        assert ctx["library"]["name"] == "analytics.js"
        assert ctx["library"]["version"].endswith(json.loads((AJS_DIR / "package.json").read_text())["version"])
        assert ctx["page"]["url"] == page_url and ctx["page"]["path"] == f"/{variant}.html"
        assert ctx["page"]["search"] == QUERY and ctx["page"]["title"] == TITLE
        assert ctx["campaign"] == {"source": "newsletter", "name": "launch"}

    assert stored["page"]["category"] == "Docs" and stored["page"]["name"] == "Install"
    assert stored["page"]["properties"]["url"] == page_url
    assert stored["identify"]["userId"] == "u-browser-1"
    assert stored["identify"]["traits"] == {
        **CALLS[2][2],
        "email": pseudonymise(CALLS[2][2]["email"], collector.keyring),
    }
    assert stored["track"]["event"] == "Order Completed" and stored["track"]["userId"] == "u-browser-1"
    assert stored["track"]["properties"] == CALLS[3][2]
    assert stored["group"]["groupId"] == "acme" and stored["group"]["traits"] == CALLS[4][2]
    assert stored["alias"]["userId"] == "u-browser-2" and stored["alias"]["previousId"] == "u-browser-1"


def test_analytics_js_with_an_unknown_key_fails_to_load_and_sends_nothing(
    browser_tools, collector, page_server, tmp_path
):
    out = _open(browser_tools, f"{page_server}/npm-unknown-key.html", collector, tmp_path, expected_posts=0)
    assert "unknown write key" in out["result"]["loadError"], out
    settings = [r for r in out["requests"] if "/settings" in r["url"]]
    assert [r["status"] for r in settings] == [401]  # the same answer as an unknown key on any other route
    assert not [r for r in out["requests"] if r["method"] == "POST"]
    _only_local_traffic(out, page_server, collector)


# -- the settings endpoint itself, over plain HTTP ------------------------------


def test_settings_point_analytics_js_back_at_the_host_it_was_asked_on(collector):
    resp = requests.get(
        f"{collector.url}/v1/projects/{KEY}/settings", headers={"Origin": "https://shop.example"}, timeout=10
    )
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    doc = resp.json()
    assert list(doc["integrations"]) == ["Segment.io"]  # no other destination is loaded
    segment = doc["integrations"]["Segment.io"]
    assert (segment["apiKey"], segment["apiHost"], segment["protocol"]) == (
        KEY,
        f"127.0.0.1:{collector.port}/v1",
        "http",
    )
    assert doc["metrics"]["sampleRate"] == 0 and doc["remotePlugins"] == []

    other = requests.get(
        f"{collector.url}/v1/projects/{KEY}/settings/", headers={"Host": "collector.example:8443"}, timeout=10
    )
    assert other.json()["integrations"]["Segment.io"]["apiHost"] == "collector.example:8443/v1"
    # Forwarded headers are not trusted by default.
    untrusted = requests.get(
        f"{collector.url}/v1/projects/{KEY}/settings",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"},
        timeout=10,
    ).json()["integrations"]["Segment.io"]
    assert (untrusted["apiHost"], untrusted["protocol"]) == (f"127.0.0.1:{collector.port}/v1", "http")


def test_settings_behind_a_trusted_proxy_use_forwarded_host_and_proto(tmp_path):
    proc = CollectorProcess(tmp_path / "trusted", TRACKWAY_TRUST_FORWARDED_FOR="true").start()
    try:
        doc = requests.get(
            f"{proc.url}/v1/projects/{KEY}/settings",
            headers={"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "track.example.com"},
            timeout=10,
        ).json()
        segment = doc["integrations"]["Segment.io"]
        assert (segment["apiHost"], segment["protocol"]) == ("track.example.com/v1", "https")
        # Only http/https are believed; anything else keeps the request's own protocol.
        odd = requests.get(
            f"{proc.url}/v1/projects/{KEY}/settings", headers={"X-Forwarded-Proto": "gopher"}, timeout=10
        )
        assert odd.json()["integrations"]["Segment.io"]["protocol"] == "http"
    finally:
        proc.close()


def test_settings_for_an_unknown_key_or_a_bad_host_are_refused_clearly(collector):
    resp = requests.get(f"{collector.url}/v1/projects/no-such-key/settings", timeout=10)
    assert resp.status_code == 401
    body = resp.json()
    assert body["success"] is False and body["code"] == "unauthorized"
    assert "unknown write key" in body["message"]
    assert not any(k in resp.text for k in [*WRITE_KEYS, *WRITE_KEYS.values()])  # says nothing about which keys exist
    assert resp.headers["Access-Control-Allow-Origin"] == "*"

    bad = requests.get(f"{collector.url}/v1/projects/{KEY}/settings", headers={"Host": "a b/<script>"}, timeout=10)
    assert bad.status_code == 400 and "Host header" in bad.json()["message"]
    assert requests.post(f"{collector.url}/v1/projects/{KEY}/settings", data="{}", timeout=10).status_code == 404
