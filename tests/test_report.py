"""`trackway report`: one self-contained HTML file of the metrics (docs/report.md).

On a demo-shaped warehouse (tests/report_helpers.py) on DuckDB and on a real
PostgreSQL as a role that may only SELECT: the page refers to nothing outside
itself, every chart renders, hostile names stay text, and missing marts become
notes. Headless Chromium (Debian's) opens it and requests nothing.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import uuid
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
import yaml

import report_helpers
from trackway.cli import main
from trackway.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
# Attributes that make a browser fetch something (or navigate) when they hold a URL.
URL_ATTRIBUTES = {"src", "href", "xlink:href", "srcset", "action", "formaction", "poster", "data", "background"}
FETCHING_TAGS = {"script", "link", "img", "iframe", "object", "embed", "video", "audio", "source", "base", "form"}
SECTIONS = ["stickiness", "events", "sessions", "paths", "funnels", "retention", "experiments", "health", "marketplace"]


class Page(HTMLParser):
    """Every start tag with its attributes, the text, and the svg open/close balance."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.svg_depth = 0
        self.svg_closed_early = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "svg":
            self.svg_depth += 1

    def handle_endtag(self, tag):
        if tag == "svg":
            self.svg_depth -= 1
            self.svg_closed_early |= self.svg_depth < 0

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def external_references(html: str) -> list[str]:
    """Whatever in the page would make a browser fetch: URL attributes not pointing inside the page, and CSS url()."""
    page = parse(html)
    found = [f"<{tag}>" for tag, _ in page.tags if tag in FETCHING_TAGS]
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            if name in URL_ATTRIBUTES and not (value or "").startswith("#"):
                found.append(f"<{tag} {name}={value!r}>")
            if name == "style" and "url(" in (value or "").replace("url(#", ""):
                found.append(f"<{tag} style={value!r}>")
    css = "".join(t for t in page.text if "{" in t)
    if "@import" in css or "url(" in css.replace("url(#", ""):
        found.append("CSS url() or @import")
    return found


@pytest.fixture(scope="module")
def built_duckdb(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "warehouse.duckdb"
    report_helpers.build_duckdb(str(path))
    return path


@pytest.fixture
def demo_duckdb(trackway_env, built_duckdb) -> Path:
    """TRACKWAY_HOME with its own copy of the demo-shaped warehouse (built once per module)."""
    trackway_env.mkdir(parents=True, exist_ok=True)
    shutil.copy(built_duckdb, trackway_env / "warehouse.duckdb")
    return trackway_env


def _report(tmp_path: Path, capsys, *args: str) -> tuple[str, str]:
    out = tmp_path / "out" / "report.html"
    assert main(["report", "--out", str(out), *args]) == 0
    captured = capsys.readouterr()
    return out.read_text(encoding="utf-8"), captured.out + captured.err


def test_the_report_is_one_file_that_fetches_nothing_and_every_chart_renders(demo_duckdb, tmp_path, capsys):
    html, said = _report(tmp_path, capsys, "--days", "14")
    assert external_references(html) == []
    assert "<script" not in html.lower()
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    # Progress while it works, then one line with what it wrote.
    assert "reading duckdb:" in said and "chart 14/14" in said
    assert "14 charts, 0 notes" in said and "2026-11-08 to 2026-11-21" in said

    page = parse(html)
    ids = [attrs.get("id") for tag, attrs in page.tags if tag == "section"]
    assert ids == SECTIONS
    # Every chart is an SVG with marks in it; ids are unique across charts (clip paths, gradients).
    assert html.count("<figure>") == html.count("<svg ") == 14
    assert html.count('class="mark-') > 14
    element_ids = [attrs["id"] for _, attrs in page.tags if attrs.get("id")]
    assert len(element_ids) == len(set(element_ids))
    assert 'class="note"' not in html
    # The numbers behind the charts: the latest DAU/MAU (40 + 140 % 23 = 42 of 200 people), the p-value.
    assert "21.0%" in html and "0.008" in html
    # Bookings by neighbourhood: the deleted one and the one made before the window are not counted.
    assert '<td>Lisbon</td><td>Alfama</td><td class="n">2</td>' in html


def test_every_chart_spec_converts_to_svg(demo_duckdb):
    """Each section's Vega-Lite spec, as Altair validated it, renders with vl-convert (not only the whole page)."""
    import vl_convert

    from trackway.report.charts import CHARTS
    from trackway.report.data import SECTIONS as BUILDERS
    from trackway.report.data import Reader, find_window
    from trackway.warehouse import open_warehouse

    with open_warehouse(load_settings().read_warehouse, read_only=True) as wh:
        reader = Reader(wh)
        window = find_window(reader, 30)
        sections = [build(reader, window) for build in BUILDERS]
    charts = [chart for section in sections for chart in CHARTS[section.key](section)]
    assert {s.key for s in sections if CHARTS[s.key](s)} == set(SECTIONS)
    for chart in charts:
        assert chart.spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
        assert "url" not in str(chart.spec.get("data", {})), chart.title  # inline values only
        svg = vl_convert.vegalite_to_svg(chart.spec)
        assert svg.startswith("<svg") and 'class="mark-' in svg, chart.title


def test_hostile_names_stay_text(demo_duckdb, tmp_path, capsys):
    html, _ = _report(tmp_path, capsys)
    page = parse(html)
    assert not [t for t, _ in page.tags if t in ("script", "img")]
    assert not page.svg_closed_early and page.svg_depth == 0  # the variant "</svg><script>..." closed nothing
    text = "".join(page.text)
    # Each hostile name is shown, as text, in the charts (SVG text) and in the tables.
    assert text.count(report_helpers.HOSTILE_EVENT) >= 4
    assert report_helpers.HOSTILE_PAGE in text and report_helpers.HOSTILE_VARIANT in text
    assert "&lt;script&gt;alert(&quot;event&quot;)&lt;/script&gt;" in html or "&lt;script&gt;alert(" in html


def test_an_empty_warehouse_gives_a_report_of_notes(trackway_env, tmp_path, capsys):
    trackway_env.mkdir(parents=True, exist_ok=True)
    duckdb.connect(str(trackway_env / "warehouse.duckdb")).close()
    html, said = _report(tmp_path, capsys)
    assert "0 charts" in said and "no events in the warehouse yet" in said
    assert "<svg" not in html and external_references(html) == []
    page = parse(html)
    assert [a.get("id") for t, a in page.tags if t == "section"] == SECTIONS  # every section, each with its note
    assert html.count('class="note"') >= len(SECTIONS)
    assert "analytics.stickiness is not in the warehouse" in html and "analytics_x.listing_viewed" in html


def test_a_missing_or_empty_mart_is_a_note_and_the_rest_is_drawn(demo_duckdb, tmp_path, capsys):
    con = duckdb.connect(str(demo_duckdb / "warehouse.duckdb"))
    con.execute("DROP TABLE analytics.funnels")
    con.execute("DELETE FROM analytics.experiment_results")
    con.execute("DROP SCHEMA analytics_x CASCADE")
    # A mart that is there but fails when read (a view over something broken): its error, as a note.
    con.execute("DROP TABLE analytics.stickiness")
    con.execute(
        "CREATE VIEW analytics.stickiness AS SELECT activity_date, CAST('n/a' AS BIGINT) AS dau, 1 AS wau, "
        "1 AS mau, 1.0 AS dau_over_mau FROM analytics.daily_active_users"
    )
    con.close()
    html, said = _report(tmp_path, capsys)
    assert "analytics.funnels is not in the warehouse" in html
    assert "No rows yet (in the window, for the parts that have one)" in html  # experiments: the table is there, empty
    assert "analytics_x.listing_viewed (with listing__neighbourhood" in html
    assert "Could not read days: ConversionException: Conversion Error" in html
    assert "9 charts" in said  # 14 less the two of stickiness, the funnel, the experiment and the neighbourhoods


def test_the_missing_warehouse_file_is_a_clear_error(trackway_env, tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path / "r.html")]) == 1
    assert "no DuckDB warehouse at" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_help_and_bad_days(capsys):
    with pytest.raises(SystemExit) as done:
        main(["report", "--help"])
    assert done.value.code == 0 and "one HTML file" in capsys.readouterr().out.replace("\n", " ")
    with pytest.raises(SystemExit) as done:
        main(["report", "--days", "0"])
    assert done.value.code == 2 and "--days must be between 1 and 3660" in capsys.readouterr().err


def test_postgres_as_a_role_that_may_only_select(trackway_env, postgres_url, tmp_path, monkeypatch, capsys):
    from urllib.parse import urlparse, urlunparse

    import psycopg

    from postgres_server import create_database, superuser_url

    admin = superuser_url(create_database(postgres_url, f"report_{uuid.uuid4().hex[:10]}"))
    report_helpers.build_postgres(admin)
    role = f"report_reader_{uuid.uuid4().hex[:8]}"
    schemas = sorted({s for s, _ in report_helpers.TABLES})
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw-Report-Secret'")
        for schema in schemas:
            con.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
            con.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
    parsed = urlparse(admin)
    reader = urlunparse(parsed._replace(netloc=f"{role}:pw-Report-Secret@{parsed.hostname}:{parsed.port}"))
    monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", admin)
    monkeypatch.setenv("TRACKWAY_READ_WAREHOUSE_URL", reader)

    html, said = _report(tmp_path, capsys, "--days", "14")
    assert f"reading postgresql://{role}:***@" in said and "Report-Secret" not in said + html
    assert "14 charts, 0 notes" in said and external_references(html) == []
    assert "21.0%" in html and report_helpers.HOSTILE_VARIANT not in html  # escaped, as on DuckDB

    # A mart the role may not read is a note, not a failure (PostgreSQL: the query is refused).
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f"REVOKE SELECT ON analytics.retention_cohorts FROM {role}")
    html, said = _report(tmp_path, capsys)
    assert "13 charts, 1 notes" in said
    assert "analytics.retention_cohorts is not in the warehouse (or this role cannot read it)" in html


def test_the_helper_warehouse_has_the_columns_dbt_builds():
    """The demo-shaped marts are only useful while they match the models: every column is in the models' yml."""
    documented: dict[str, set[str]] = {}
    for path in (ROOT / "include" / "dbt" / "models").rglob("*.yml"):
        for model in (yaml.safe_load(path.read_text()) or {}).get("models", []):
            documented[model["name"]] = {c["name"] for c in model.get("columns", [])}
    for (schema, table), columns in report_helpers.TABLES.items():
        if schema != "analytics":
            continue
        sql = next((ROOT / "include" / "dbt" / "models").rglob(f"{table}.sql")).read_text()
        # Documented in the yml, or (a column the yml leaves out) selected by name in the model's SQL.
        documented[table] |= {c for c, _ in columns if re.search(rf"\b{c}\b", sql)}
        missing = {c for c, _ in columns} - documented[table]
        assert not missing, (table, missing)


# -- headless Chromium: the page as a browser opens it ------------------------------------------------------


class RecordingProxy:
    """An HTTP proxy on 127.0.0.1 that records each request's first line and answers 502: where the browser
    would have gone. Chromium is pointed at it for every scheme, so no request can leave the machine."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    first = conn.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
                    self.requests.append(first)
                    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


# Chromium's own background calls (component updates, sign-in), made whatever the page: the flags below do
# not stop all of them. They go to the recording proxy too, so they never leave the machine either.
BROWSER_HOSTS = ("update.googleapis.com", "accounts.google.com", "clients2.google.com", "clientservices.googleapis.com")


def _browser_own(request: str) -> bool:
    target = request.split(" ")[1] if " " in request else ""
    host = target.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return host in BROWSER_HOSTS


def _chromium(page: Path, proxy: RecordingProxy, profile: Path) -> str:
    """The DOM after load, from Debian's chromium, with background networking off and every request to ``proxy``."""
    command = [
        shutil.which("chromium") or "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--disable-extensions",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-breakpad",
        "--no-pings",
        "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,DialMediaRouteProvider,"
        "AutofillServerCommunication,CertificateTransparencyComponentUpdater,Translate,AccountConsistency",
        f"--user-data-dir={profile}",
        f"--proxy-server=http://127.0.0.1:{proxy.port}",
        "--proxy-bypass-list=<-loopback>",
        "--virtual-time-budget=3000",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
def test_chromium_opens_the_report_and_requests_nothing(demo_duckdb, tmp_path, capsys):
    _report(tmp_path, capsys)
    report = tmp_path / "out" / "report.html"
    # The detector works: a page without the policy that loads an image from elsewhere is seen trying.
    control = tmp_path / "control.html"
    control.write_text('<html><body><img src="http://report-test.invalid/pixel.gif">control</body></html>')
    proxy = RecordingProxy()
    try:
        _chromium(control, proxy, tmp_path / "profile-control")
        assert any("report-test.invalid" in r for r in proxy.requests), proxy.requests
        proxy.requests.clear()
        dom = _chromium(report, proxy, tmp_path / "profile")
    finally:
        proxy.close()
    assert [r for r in proxy.requests if not _browser_own(r)] == []
    assert "Trackway report" in dom and dom.count("<svg") == 14
    assert "<script" not in dom.split("</head>", 1)[1]  # nothing hostile became an element in the browser either


def test_bigquery_is_refused_with_a_reason(trackway_env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRACKWAY_WAREHOUSE_URL", "bigquery://a-project/trackway")
    assert main(["report", "--out", str(tmp_path / "r.html")]) == 2
    assert "trackway report reads DuckDB and PostgreSQL warehouses, not bigquery" in capsys.readouterr().err
