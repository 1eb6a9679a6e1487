"""``trackway demo``: the whole pipeline once, on the embedded default.

Real parts only: the collector runs as its own process, traffic goes through
the official Segment SDK over HTTP, and the DAGs run with ``airflow dags test``
exactly as an operator would run them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from trackway.config import Settings, load_settings
from trackway.demo import answers
from trackway.demo.violations import PLAN_DIR, deliberate_violations
from trackway.orchestration.airflow_env import apply_airflow_defaults
from trackway.ports import free_ports
from trackway.rawdata.partitions import hour_floor, hours_between
from trackway.status import format_table, stage_counts
from trackway.warehouse import open_warehouse

DEMO_MARKER = ".trackway-demo"


class DemoError(RuntimeError):
    pass


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _stage(n: int, title: str) -> None:
    _say(f"\n[{n}/7] {title}")


def _prepare_home(settings: Settings) -> None:
    """The demo starts from nothing, but never wipes a TRACKWAY_HOME it did not create."""
    home = settings.home
    # dbt/ alone is what `trackway transform compile` (make install) writes: no data, rebuilt below.
    if home.exists() and any(p.name != "dbt" for p in home.iterdir()) and not (home / DEMO_MARKER).exists():
        raise DemoError(
            f"{home} holds data the demo did not create; set TRACKWAY_HOME to an empty folder "
            "(e.g. TRACKWAY_HOME=/tmp/trackway-demo make demo) or remove it yourself."
        )
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / DEMO_MARKER).write_text("created by `trackway demo`; the next demo run wipes this folder\n")
    (home / "logs").mkdir()


def _health(port: int) -> dict:
    """GET /health of a collector listener: liveness on the public port, every worker's counters on the admin port."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
        return json.load(resp)


def _start_collector(settings: Settings, port: int, admin_port: int, env: dict[str, str]) -> subprocess.Popen:
    log = open(settings.home / "logs" / "collector.log", "ab")  # noqa: SIM115 (owned by the child process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "trackway.cli", "collect", "--port", str(port), "--admin-port", str(admin_port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"the collector exited with {proc.returncode}; see {log.name}")
        try:
            _health(port)
            _health(admin_port)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise DemoError(f"the collector did not answer /health within 60s; see {log.name}")


def _start_collector_on_free_ports(
    settings: Settings, env: dict[str, str], attempts: int = 3
) -> tuple[subprocess.Popen, int, int]:
    """The collector on two ports free a moment ago; others if another process took one before it bound it."""
    log = settings.home / "logs" / "collector.log"
    for attempt in range(1, attempts + 1):
        port, admin_port = free_ports(2)
        seen = log.stat().st_size if log.exists() else 0
        try:
            return _start_collector(settings, port, admin_port, env), port, admin_port
        except DemoError:
            with log.open("rb") as handle:
                handle.seek(seen)
                taken = b"cannot listen on" in handle.read()
            if not taken or attempt == attempts:
                raise
            _say(f"  port {port} or {admin_port} was taken before the collector bound it; choosing two others")
    raise AssertionError("unreachable")


def _count_raw_objects(settings: Settings) -> tuple[int, int, set[str], str | None]:
    """Objects and lines in the raw store, the context.ip values stored and one stored traits.email."""
    from airflow.sdk import ObjectStoragePath

    root = ObjectStoragePath(settings.events_url, conn_id=settings.raw_conn_id)
    objects = lines = 0
    ips: set[str] = set()
    email: str | None = None
    if not root.exists():
        return 0, 0, ips, email
    import gzip

    for path in root.rglob("*"):
        if path.is_file() and not path.name.startswith((".", "_")):
            objects += 1
            with path.open("rb") as handle, gzip.GzipFile(fileobj=handle) as body:
                for line in body:
                    lines += 1
                    event = json.loads(line)
                    ips.add(str((event.get("context") or {}).get("ip")))
                    email = email or (event.get("traits") or {}).get("email")
    return objects, lines, ips, email


class _AirflowCommand:
    """An ``airflow`` CLI command running beside the demo, its output in a log under ``$TRACKWAY_HOME/logs``."""

    def __init__(self, args: list[str], log_name: str, settings: Settings) -> None:
        self.args = args
        self.log_path = settings.home / "logs" / log_name
        self.started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "airflow"), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                # `airflow dags test` crashes after a successful run of a DAG with a deadline (apache/airflow#73428,
                # Airflow 3.3.2): the one-shot demo runs without them; `make up` and production keep them.
                env={**os.environ, "TRACKWAY_DAG_DEADLINE_MINUTES": "0"},
            )

    def wait(self) -> float:
        """Seconds since it started; a failure raises with the log's tail."""
        if self.process.wait() != 0:
            tail = self.log_path.read_text(errors="replace").splitlines()[-25:]
            raise DemoError(
                f"`airflow {' '.join(self.args)}` failed (exit {self.process.returncode}); log: {self.log_path}\n"
                + "\n".join(tail)
            )
        return time.monotonic() - self.started


def _airflow(args: list[str], log_name: str, settings: Settings) -> float:
    return _AirflowCommand(args, log_name, settings).wait()


def _write_app_database(settings: Settings, calls: list, day: date, seed: int) -> Path | None:
    """Nestful's own database beside its events, and the sources file entry app_sync reads (unless one is set)."""
    from trackway.demo.appdb import write_app_database, write_sources_file

    if settings.sources_file is not None:
        return None  # TRACKWAY_SOURCES_FILE names the operator's own: the demo adds nothing to it
    path = settings.home / "app.sqlite"
    write_app_database(path, calls, day, seed)
    write_sources_file(settings.home / "sources.yml", path)
    return path


def _erase_one(settings: Settings) -> None:
    """A sample erasure (docs/privacy.md#erasure-requests): the busiest user, from request to a clean verification."""
    from trackway.config import ConfigError
    from trackway.privacy.runs import request, run, verify

    with open_warehouse(settings.read_warehouse, read_only=True) as wh:
        found = wh.query(
            "SELECT user_id, count(*) FROM analytics.events WHERE user_id IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
        )
    if not found:
        _say("  no identified user to erase")
        return
    user, events = found[0]
    try:
        state = request(settings, "suppress_with_delete", user_ids=[user], reason="demo")
    except ConfigError as exc:  # a warehouse of its own without TRACKWAY_PRIVACY_LEDGER_KEY
        _say(f"  skipped: {exc}")
        return
    _say(f"  request {state.request_id}: suppress_with_delete of user {user} ({events} events in analytics.events)")
    report = run(settings)
    tables = {table: rows for table, rows in report.rows.items() if rows}
    _say(
        f"  run: {sum(tables.values()):,} rows deleted from {len(tables)} tables, {report.links} anonymous id(s) linked, "
        f"{report.objects_rewritten} raw objects rewritten ({report.lines_removed} lines blanked); "
        f"request {'finished' if state.request_id in report.finished else 'NOT finished'}"
    )
    result = verify(settings, state.request_id)
    left = sum(result["warehouse"].values())
    raw = result["raw_objects"]
    _say(
        f"  verify: {left} rows in {len(result['warehouse'])} tables, {raw['lines']} lines in {raw['objects']} of "
        f"{raw['scanned']} raw objects — {'0 everywhere' if result['clean'] else 'NOT CLEAN'}"
    )
    _say("  (daily_active_users of that day is recomputed by the privacy DAG, or by `trackway privacy run`)")


def run_demo(people: int = 300, day: date | None = None, seed: int = 7) -> int:
    from trackway.demo.marketplace import generate_day, summarize
    from trackway.demo.sender import send_calls

    wall = time.monotonic()
    settings = load_settings()
    _prepare_home(settings)
    if settings.plan_dir is None:
        # The demo enforces Nestful's tracking plan (flag mode unless TRACKWAY_PLAN_MODES says otherwise);
        # os.environ, so the collector and the Airflow tasks started below see it too.
        os.environ["TRACKWAY_PLAN_DIR"] = str(PLAN_DIR)
        settings = load_settings()
    day = day or (datetime.now(UTC).date() - timedelta(days=1))
    if settings.pseudonym_keys is None:
        # A keyring of the demo's own (in its folder, wiped with it), so traits.email & co. become
        # pseudonyms rather than being dropped (docs/privacy.md); os.environ, as for the plan.
        from trackway.pseudonym import append_key, new_key

        keyring = settings.home / "pseudonym-keys.yaml"
        append_key(keyring, new_key("demo", day))
        os.environ["TRACKWAY_PSEUDONYM_KEYS"] = str(keyring)
        settings = load_settings()
    if settings.report_path is None:
        # events_transform's last task writes the HTML report here (docs/report.md); os.environ, as for the plan.
        os.environ["TRACKWAY_REPORT_PATH"] = str(settings.home / "report.html")
        settings = load_settings()
    # Before anything imports Airflow (counting the raw objects does): with the OpenLineage namespace unset,
    # Cosmos's settings printed "section/key [openlineage/namespace] not found in config".
    apply_airflow_defaults(settings)
    # Airflow's metadata DB (SQLite) is made while the collector starts and the SDK sends (the other core).
    migrate = _AirflowCommand(["db", "migrate"], "airflow-db-migrate.log", settings)
    env = dict(os.environ)
    env.update({"TRACKWAY_HOME": str(settings.home), "TRACKWAY_SPOOL_MAX_AGE_SECONDS": "2"})
    write_key = next(iter(settings.write_keys))
    _say(f"Trackway demo — Nestful, a home-rental marketplace, one day ({day}) of {people} people")
    _say(f"  data folder: {settings.home}")

    _stage(1, "collector: starting `trackway collect`")
    first_hour = hour_floor(datetime.now(UTC))
    collector, port, admin_port = _start_collector_on_free_ports(settings, env)
    _say(f"  listening on http://127.0.0.1:{port} (log: {settings.home / 'logs' / 'collector.log'})")

    _stage(2, "sending the day through the official Segment Python SDK")
    calls = generate_day(day, people=people, seed=seed)
    summary = summarize(calls)
    app_db = _write_app_database(settings, calls, day, seed)
    calls += deliberate_violations(calls, seed)  # an unplanned event, a wrong type, a missing property
    # A few client retries: the same messageId twice, as a flaky network produces.
    retries = calls[:: max(len(calls) // 50, 1)]
    last_shown = [0.0]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last_shown[0] > 2 or done == total:
            last_shown[0] = time.monotonic()
            _say(f"  sent {done:,}/{total:,}")

    try:
        report = send_calls(calls + retries, f"http://127.0.0.1:{port}", write_key, progress=progress)
        health = _health(admin_port)  # the counters of all workers
    finally:
        collector.send_signal(signal.SIGTERM)
    try:
        code = collector.wait(timeout=120)
    except subprocess.TimeoutExpired:
        collector.kill()
        raise DemoError("the collector did not stop within 120s after SIGTERM") from None
    if code != 0:
        raise DemoError(
            f"the collector exited with {code} after SIGTERM; see {settings.home / 'logs' / 'collector.log'}"
        )
    last_hour = hour_floor(datetime.now(UTC))
    _say(
        f"  {report.calls:,} calls ({len(calls):,} events + {len(retries)} deliberate retries) in {report.seconds:.1f}s "
        f"= {report.calls / max(report.seconds, 1e-9):,.0f} events/s; SDK reported {report.failed} failures"
    )
    if report.failed or getattr(report, "skipped", 0):
        errors = "; ".join(getattr(report, "errors", []) or []) or "see the collector log"
        raise DemoError(
            f"the collector refused {report.failed} events and {getattr(report, 'skipped', 0)} were not sent: {errors}"
        )
    _say(
        f"  collector acknowledged {health.get('events_accepted', 0):,} events, "
        f"quarantined {health.get('events_quarantined', 0)}; stopped cleanly with SIGTERM"
    )
    plan_counts = health.get("plan") or {}
    if plan_counts:
        _say(
            f"  tracking plan ({settings.plan_dir}): {plan_counts.get('events_checked', 0):,} events checked, "
            f"{plan_counts.get('events_flagged', 0)} flagged, {plan_counts.get('events_blocked', 0)} blocked"
        )

    _stage(3, "raw object store")
    objects, lines, ips, email = _count_raw_objects(settings)
    _say(f"  {objects} gzip'd NDJSON objects, {lines:,} lines under {settings.events_url}")
    _say(
        f"  personal data as stored: context.ip truncated ({', '.join(sorted(ips)[:3]) or 'none'}); "
        f"traits.email pseudonymised ({email[:24] + '…' if email else 'none sent'})"
    )

    _stage(4, "events_load: `airflow dags test events_load <hour end>` for each hour received; then app_sync")
    migrate.wait()
    _say("  Airflow metadata DB ready (SQLite, made beside the steps above)")
    from trackway.transform.manifest import compile_manifest

    # The ahead-of-time step (adr/0014): the manifest events_transform loads. It needs neither the warehouse
    # nor Airflow, so it runs on the other core beside the loads; stage 5 says when it was done, and its own
    # log line would land among the loads'.
    dbt_log = logging.getLogger("trackway.transform.dbt_runner")
    dbt_log_level = dbt_log.level
    dbt_log.setLevel(logging.WARNING)
    beside = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compile")
    compiling = beside.submit(compile_manifest, settings)
    beside.shutdown(wait=False)  # no more work for it; the compile runs on, and .result() below waits for it
    for hour in hours_between(first_hour, last_hour + timedelta(hours=1)):
        end = hour + timedelta(hours=1)
        secs = _airflow(["dags", "test", "events_load", end.isoformat()], f"events_load-{hour:%Y%m%dT%H}.log", settings)
        with open_warehouse(settings.read_warehouse, read_only=True) as wh:
            run = wh.query(
                "SELECT objects_loaded, objects_skipped, rows_loaded, parse_errors FROM raw.load_runs "
                "ORDER BY finished_at DESC LIMIT 1"
            )[0]
        _say(
            f"  {hour:%Y-%m-%d %H:00}–{end:%H:00} UTC: {run[0]} objects loaded ({run[1]} already loaded), "
            f"{run[2]:,} rows, {run[3]} unparseable — {secs:.0f}s"
        )

    if app_db is not None:
        # The app_sync DAG's task, run here as `trackway app-sync` does: an `airflow dags test` would add
        # ~20 s of Airflow start-up to the demo for one task (tests/test_app_sync.py runs the DAG itself).
        from trackway.load.app_sync import sync_named

        logging.getLogger("trackway.load.app_sync").setLevel(logging.WARNING)  # the line below says it all
        synced = sync_named(settings, "nestful")
        tables = ", ".join(f"{t.rows:,} {t.table}" for t in synced.tables)
        _say(f"  app_sync: Nestful's own database ({app_db.name}) into schema app: {tables} — {synced.seconds:.0f}s")

    _stage(5, "events_transform: `airflow dags test events_transform` (one task per dbt model, via Cosmos)")
    # The DAG's last task deploys the plan's typed views the first time (adr/0029); later plan changes
    # need `trackway plan deploy`.
    compiled = compiling.result()  # its exception, if it failed, is raised here
    dbt_log.setLevel(dbt_log_level)
    _say(
        f"  `trackway transform compile`: dbt manifest {compiled.manifest} in {compiled.seconds:.0f}s "
        "(beside the loads)"
    )
    secs = _airflow(["dags", "test", "events_transform"], "events_transform.log", settings)
    _say(f"  dbt models and tests finished in {secs:.0f}s (log: {settings.home / 'logs' / 'events_transform.log'})")
    report_path = settings.report_path
    if report_path is not None and report_path.is_file():
        _say(f"  its last task wrote the report: {report_path} ({report_path.stat().st_size / 1024:.0f} KiB)")

    _stage(6, "what arrived, stage by stage")
    counts = stage_counts(settings)
    rows = [
        ("events sent (SDK calls)", report.calls),
        ("acknowledged by the collector", health.get("events_accepted", 0)),
        ("raw objects written", objects),
        ("lines in raw objects", lines),
        ("rows in raw.events_raw", counts.raw_rows),
        ("  unparseable lines", counts.raw_parse_errors),
        ("quarantined by the collector", counts.quarantined),
        ("rows in analytics.events", counts.events or 0),
        ("  duplicates removed", counts.duplicates),
        ("  rejected (analytics.events_rejected)", counts.rejected or 0),
    ]
    _say(format_table(["stage", "count"], rows))
    _say(f"  people: {summary.get('people', people)}, sessions: {summary.get('sessions', '?')}")

    with open_warehouse(settings.read_warehouse, read_only=True) as wh:
        _say("\nDaily active people (stitched: a visitor who signed up counts once)")
        _say(
            format_table(
                ["day", "active people", "identified", "new people", "events"], wh.query(answers.DAILY_ACTIVE_USERS)
            )
        )
        _say("\nSessions per day")
        _say(
            format_table(
                ["day", "sessions", "median length (min)", "events per session"], wh.query(answers.SESSIONS_PER_DAY)
            )
        )
        _say("\nTop events")
        _say(format_table(["event", "events", "people"], wh.query(answers.TOP_EVENTS)))
        _say("\nPage views by path")
        _say(format_table(["path", "views", "viewers"], wh.query(answers.PAGE_VIEWS_BY_PATH)))
        _say("\nAnonymous visitors who signed up")
        _say(format_table(["anonymous visitors", "signed up"], wh.query(answers.SIGNUP_CONVERSION)))
        funnel_steps = wh.query(answers.FUNNEL_STEPS) if wh.table_exists("analytics", "funnels") else []
        if funnel_steps:
            _say("\nFunnels (analytics.funnels, declared in the plan's metrics.yaml; people, stitched)")
            _say(format_table(["funnel", "step", "name", "people", "% of entered"], funnel_steps))
            _say("\nrenter_activation by first touch (utm_source of each person's first visit)")
            _say(
                format_table(
                    ["first touch", "searched", "signed up", "% signed up"], wh.query(answers.FUNNEL_BY_FIRST_TOUCH)
                )
            )
        if wh.table_exists("analytics_x", "listing_viewed"):
            _say("\nListing views by neighbourhood (analytics_x.listing_viewed: events joined with app.listings)")
            _say(
                format_table(
                    ["city", "neighbourhood", "views", "listings", "hosts", "avg price"],
                    wh.query(answers.LISTING_VIEWS_BY_NEIGHBOURHOOD),
                )
            )
        if wh.table_exists("analytics", "tracking_plan_violations"):
            _say("\nTracking plan violations (analytics.tracking_plan_violations)")
            _say(format_table(["event", "source", "kind", "property", "count"], wh.query(answers.PLAN_VIOLATIONS)))
    if settings.plan_dir is not None:
        from trackway.plan.docs import write_docs
        from trackway.plan.model import load_plan
        from trackway.plan.querytest import run_plan_queries

        plan = load_plan(settings.plan_dir)
        results = run_plan_queries(settings, plan)
        _say(
            f"\nAnalyst queries of the plan (`trackway plan test`): {sum(r.ok for r in results)} of {len(results)} passed"
        )
        for result in results:
            _say("  " + result.line())
        html, _md, _note = write_docs(plan, settings.home / "plan-docs", settings)
        _say(f"\nData dictionary: {html} (and data-dictionary.md beside it)")

    _stage(7, "privacy: one person asks to be forgotten (`trackway privacy request`, `run`, `verify`)")
    _erase_one(settings)

    _say(f"\nDone in {time.monotonic() - wall:.0f}s.")
    _say(f"  Raw events:  {settings.events_url}")
    _say(f"  Warehouse:   {settings.warehouse.duckdb_path or settings.warehouse.display_url}")
    _say('  Query it:    .venv/bin/trackway query "SELECT event_name, count(*) FROM analytics.events GROUP BY 1"')
    _say("  Airflow:     make up   (the whole stack on this folder: scheduler, UI with these runs, collector)")
    if report_path is not None and report_path.is_file():
        _say(f"  Report:      {report_path}   (one HTML file, opens offline: `trackway report` rewrites it)")
    _say(f"  Logs:        {settings.home / 'logs'}")
    return 0
