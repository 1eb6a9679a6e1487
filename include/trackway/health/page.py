"""The Trackway page as HTML: plain, script-free, every value escaped.

Event names, reasons, object keys and error messages come from senders and
stores, so they are hostile: each goes through ``_e`` (HTML escaping, quotes
included) and nothing from the data ever becomes markup, a URL or a style. The
page carries no script at all, and is served with a Content-Security-Policy that
forbids scripts (trackway.orchestration.page), so a mistake here still cannot run
code. Each problem links to its runbook section and says what fixes it.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from urllib.parse import quote

from trackway.health.checks import CheckResult, State
from trackway.health.overview import LIST_LIMIT, HourStages, Overview

#: Airflow's UI, relative to the page (served at <airflow>/trackway/).
AIRFLOW = ".."
RUNBOOK_PAGE = "runbook"  # the plugin serves docs/runbook.md here when TRACKWAY_RUNBOOK_URL is not a web address

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 24px 32px;color:#1d2733;background:#fff}
h1{font-size:20px;margin:18px 0 4px}h2{font-size:16px;margin:26px 0 8px;border-bottom:1px solid #dde3ea;padding-bottom:4px}
.sub{color:#5b6b7c;margin:0 0 12px}table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef1f5;vertical-align:top}
th{background:#f5f7fa;font-weight:600;white-space:nowrap}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f2f4f7;padding:1px 4px;border-radius:3px;
word-break:break-all}.state{display:inline-block;min-width:54px;text-align:center;border-radius:3px;
padding:1px 6px;font-weight:600;font-size:12px;color:#fff}.ok{background:#2e7d32}.warn{background:#ed8b00}
.fail{background:#c62828}.unknown{background:#6a1b9a}.funnel{display:flex;gap:8px;flex-wrap:wrap;margin:8px 0}
.stage{border:1px solid #dde3ea;border-radius:6px;padding:8px 12px;min-width:150px}.stage b{font-size:20px;display:block}
.stage span{color:#5b6b7c;font-size:12px}.arrow{align-self:center;color:#8a99a8;font-size:20px}
.problem{border-left:4px solid #c62828;padding:6px 10px;margin:6px 0;background:#fdf3f3}
.problem.warn{border-color:#ed8b00;background:#fff8ec}.problem.unknown{border-color:#6a1b9a;background:#f7f0fb}
.muted{color:#8a99a8}.err{color:#c62828}a{color:#1a5fb4}.h{white-space:nowrap}
"""


def _e(value: object) -> str:
    """Text for HTML: every character that could start markup or end an attribute is escaped."""
    return html.escape("" if value is None else str(value), quote=True)


def _n(value: int | None) -> str:
    return '<span class="muted">-</span>' if value is None else f"{value:,}"


def runbook_href(runbook_url: str, anchor: str) -> str:
    """Where a runbook section is: TRACKWAY_RUNBOOK_URL when it is a web address, else the copy the plugin serves."""
    base = runbook_url if re.match(r"https?://", runbook_url, re.I) else RUNBOOK_PAGE
    return f"{base}#{quote(anchor)}"


def dag_href(dag_id: str) -> str:
    return f"{AIRFLOW}/dags/{quote(dag_id)}"


def _link(href: str, text: str) -> str:
    return f'<a href="{_e(href)}">{_e(text)}</a>'


def _table(headers: list[str], rows: list[list[str]], numeric: tuple[int, ...] = ()) -> str:
    """A table of cells that are HTML already (each caller escapes its values); ``numeric`` columns align right."""

    def cell(tag: str, i: int, content: str) -> str:
        return f"<{tag} class=n>{content}</{tag}>" if i in numeric else f"<{tag}>{content}</{tag}>"

    head = "".join(cell("th", i, _e(h)) for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>\n" for row in rows)
    return f"<table><tr>{head}</tr>\n{body}</table>"


def _state(state: State) -> str:
    return f'<span class="state {state.label}">{state.label.upper()}</span>'


def _actions(result: CheckResult, overview: Overview) -> list[str]:
    """What fixes the problem: a command to paste, or the DAG to trigger (HTML, escaped)."""

    reprocess = _link(dag_href("events_reprocess"), "Trigger events_reprocess")
    check = result.check
    if check in ("load_stale", "data_stale"):
        first = (overview.last_loaded_hour + timedelta(hours=1)) if overview.last_loaded_hour else None
        last = overview.last_complete_hour
        if first is not None and first <= last:
            span = f"--from {first:%Y-%m-%dT%H} --to {last:%Y-%m-%dT%H}"
            return [_code(f"trackway backfill {span} --dry-run"), _code(f"trackway backfill {span} --transform")]
        return [_link(dag_href("events_load"), "events_load's runs")]
    if check == "transform_stale":
        return [f"{reprocess} (from the first stale hour)", _code("trackway transform build")]
    if check == "objects_beyond_sweep":
        hours = sorted({hour for _, hour in overview.beyond_sweep})[:5]
        return [_code(f"trackway backfill --from {h} --to {h} --transform") for h in hours]
    if check == "damaged_objects":
        hours = sorted({hour for _, hour, _, _ in overview.damaged if hour})[:5]
        return [f"a good copy in place, then {_code(f'trackway load --hour {h} --reload')}" for h in hours]
    if check == "dbt_test_failed":
        return [
            f"{reprocess} with full_refresh (confirm: FULL REFRESH)",
            _code("trackway transform build -- --full-refresh"),
        ]
    if check == "quarantine_spike":
        return ["fix the sender or the plan, then " + _code("trackway quarantine replay")]
    if check == "violation_spike":
        return ["fix the sender or the plan: " + _code("trackway plan lint")]
    if check in ("event_stopped", "event_dropped", "source_volume"):
        return ["the sender's owner fixes the client; then backfill the hours it sends late"]
    if check == "unreadable":
        return [_code("trackway config check --component health")]
    return []


def render(overview: Overview, *, runbook_url: str, hours: int, user: str | None = None) -> str:
    out: list[str] = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Trackway pipeline</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    health = overview.health
    state = health.state if health else State.UNKNOWN
    out.append(f"<h1>Trackway pipeline {_state(state)}</h1>")
    who = f" · signed in as {_e(user)}" if user else ""
    out.append(
        f'<p class="sub">As of {_e(f"{overview.as_of:%Y-%m-%d %H:%M}")} UTC · the last {hours} hours and the current '
        f"one · read from the warehouse, the load ledger, the object store and the collector, not from Airflow{who}"
        f" · {_link(RUNBOOK_PAGE if not re.match(r'https?://', runbook_url, re.I) else runbook_url, 'runbook')}</p>"
    )
    for part, reason in overview.errors:
        out.append(f'<div class="problem unknown"><b>{_e(part)} could not be read:</b> {_e(reason)}</div>')
    out += _problems(overview, runbook_url)
    out += _funnel(overview, runbook_url)
    out += _checks(overview, runbook_url)
    out += _violations(overview, runbook_url)
    out += _objects(overview, runbook_url)
    out.append("</body></html>")
    return "\n".join(out)


def _problems(overview: Overview, runbook_url: str) -> list[str]:
    out = ["<h2>Problems</h2>"]
    results = overview.health.results if overview.health else []
    problems = sorted((r for r in results if r.state is not State.OK), key=lambda r: (-r.state, r.family, r.subject))
    if not problems:
        out.append('<p class="muted">None: every check is ok.</p>' if overview.health else "")
    for r in problems:
        anchor = r.runbook.split("#", 1)[1]
        subject = f" <b>{_e(r.subject)}</b>" if r.subject else ""
        actions = _actions(r, overview)
        fix = f"<br>Fix: {' · '.join(actions)}" if actions else ""
        out.append(
            f'<div class="problem {r.state.label}">{_state(r.state)} <b>{_e(r.family)}.{_e(r.check)}</b>{subject}: '
            f"{_e(r.summary)}<br>What to do: {_link(runbook_href(runbook_url, anchor), 'runbook: ' + anchor)}{fix}</div>"
        )
    return out


def _funnel(overview: Overview, runbook_url: str) -> list[str]:
    rows = overview.hours
    c = overview.collector
    stored = sum(r.objects or 0 for r in rows) if any(r.objects is not None for r in rows) else None
    waiting = sum(r.objects_waiting or 0 for r in rows)
    typed = sum(r.typed or 0 for r in rows) if any(r.typed is not None for r in rows) else None
    dups = sum(r.duplicates or 0 for r in rows)
    ack = (
        f"<b>{c.acknowledged:,}</b><span>since the collector started; {c.quarantined or 0:,} quarantined by it</span>"
        if c.acknowledged is not None
        else f"<b>unknown</b><span>{_e(c.unknown_because)}</span>"
    )
    out = [
        "<h2>Stages</h2>",
        '<div class="funnel">',
        f'<div class="stage">Acknowledged{ack}</div><div class="arrow">→</div>',
        f'<div class="stage">Stored<b>{_n(stored)}</b><span>objects, {waiting:,} not loaded yet</span></div>',
        '<div class="arrow">→</div>',
        f'<div class="stage">Loaded<b>{sum(r.loaded for r in rows):,}</b><span>rows; '
        f"{sum(r.unparseable for r in rows):,} unparseable, {sum(r.quarantined for r in rows):,} quarantined"
        "</span></div>",
        '<div class="arrow">→</div>',
        f'<div class="stage">Typed<b>{_n(typed)}</b><span>events; {dups:,} duplicates, '
        f"{sum(r.rejected or 0 for r in rows):,} rejected, {sum(r.waiting for r in rows):,} waiting</span></div>",
        "</div>",
        '<p class="sub">Per hour received (UTC). Acknowledged counts are the collector\'s, since it started: they are '
        "not kept per hour. <i>Waiting</i>: loaded after the last transform's batch.</p>",
    ]
    headers = ["hour", "objects stored", "not loaded", "damaged", "rows loaded", "unparseable", "quarantined"]
    headers += ["typed", "rejected", "duplicates", "waiting", "fix"]
    table = [
        [f"<span class=h>{_e(r.key)}</span>"]
        + [_n(v) for v in (r.objects, r.objects_waiting, r.objects_damaged, r.loaded, r.unparseable, r.quarantined)]
        + [_n(v) for v in (r.typed, r.rejected, r.duplicates, r.waiting)]
        + [_hour_fix(r, overview, runbook_url)]
        for r in reversed(rows)
    ]
    out.append(_table(headers, table, numeric=tuple(range(1, 11))))
    return out


def _hour_fix(row: HourStages, overview: Overview, runbook_url: str) -> str:
    fixes = []
    if row.objects_waiting and row.hour < overview.as_of.replace(minute=0, second=0, microsecond=0):
        fixes.append(_code(f"trackway backfill --from {row.key} --to {row.key}"))
    if row.objects_damaged:
        fixes.append(_link(runbook_href(runbook_url, "damaged-objects"), "damaged objects"))
    return " ".join(fixes)


def _checks(overview: Overview, runbook_url: str) -> list[str]:
    out = ["<h2>Freshness and health checks</h2>"]
    if overview.health is None:
        return [*out, '<p class="err">The checks could not run (see above).</p>']
    order = sorted(overview.health.results, key=lambda r: (r.family != "freshness", -r.state, r.family, r.check))
    rows = [
        [_state(r.state), f"{_e(r.family)}.{_e(r.check)}", _e(r.subject), _e(r.summary), _runbook_link(r, runbook_url)]
        for r in order
    ]
    out.append(_table(["state", "check", "subject", "detail", "runbook"], rows))
    return out


def _runbook_link(result: CheckResult, runbook_url: str) -> str:
    anchor = result.runbook.split("#", 1)[1]
    return _link(runbook_href(runbook_url, anchor), anchor)


def _violations(overview: Overview, runbook_url: str) -> list[str]:
    out = ["<h2>Tracking plan violations by event</h2>"]
    if overview.violations is None:
        return [*out, '<p class="muted">No tracking plan in the warehouse (analytics.tracking_plan_violations).</p>']
    if not overview.violations:
        return [*out, '<p class="muted">None.</p>']
    out.append(
        f'<p class="sub">All time, most first. What to do: '
        f"{_link(runbook_href(runbook_url, 'violation-spike'), 'runbook: violation-spike')}</p>"
    )
    rows = [[_e(event), _e(kind), _e(prop), f"{n:,}", _e(last)] for event, kind, prop, n, last in overview.violations]
    out.append(_table(["event", "kind", "property", "violations", "last seen"], rows, numeric=(3,)))
    return out


def _code(text: str) -> str:
    return f"<code>{_e(text)}</code>"


def _objects(overview: Overview, runbook_url: str) -> list[str]:
    out = ["<h2>Damaged and set-aside objects</h2>"]
    if overview.damaged:
        out.append(
            f'<p class="sub">Loaded as far as readable; the ledger says why. What to do: '
            f"{_link(runbook_href(runbook_url, 'damaged-objects'), 'runbook: damaged-objects')}</p>"
        )
        rows = [
            [_code(url), _e(hour), _e(error), f"{n:,}", _code(f"trackway load --hour {hour} --reload") if hour else ""]
            for url, hour, error, n in overview.damaged
        ]
        out.append(_table(["object", "hour", "error", "rows loaded", "fix"], rows, numeric=(3,)))
    else:
        out.append('<p class="muted">No damaged object in the ledger.</p>')
    set_aside = overview.collector.set_aside
    if set_aside:
        out.append(
            f"<p><b>{set_aside:,} spool segment(s) set aside</b> by the collector (acknowledged events not in the "
            f"object store). What to do: {_link(runbook_href(runbook_url, 'set-aside-segments'), 'runbook')}</p>"
        )
        if overview.set_aside:
            out.append(_table(["segment", "reason"], [[_code(seg), _e(why)] for seg, why in overview.set_aside]))
    else:
        unknown = " (unknown: the collector's spool is not here and its metrics are not set)"
        out.append(f'<p class="muted">No spool segment set aside{_e(unknown if set_aside is None else "")}.</p>')
    if overview.beyond_sweep:
        out.append(
            f"<p><b>{len(overview.beyond_sweep):,} late object(s) older than the load's sweep</b>: no ordinary run "
            f"loads them. What to do: {_link(runbook_href(runbook_url, 'objects-beyond-sweep'), 'runbook')}</p>"
        )
        rows = [
            [_code(url), _e(hour), _code(f"trackway backfill --from {hour} --to {hour} --transform")]
            for url, hour in overview.beyond_sweep[:LIST_LIMIT]
        ]
        out.append(_table(["object", "hour", "fix"], rows))
    return out


def runbook_html(markdown: str) -> str:
    """docs/runbook.md as a page, for installations without a published docs site (TRACKWAY_RUNBOOK_URL unset).

    A small renderer for the runbook's own Markdown (headings, paragraphs, lists, fenced
    code, inline code, bold, links as text), with the anchors mkdocs gives its headings.
    """
    out = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Trackway runbook</title>',
        f"<style>{_CSS}pre{{background:#f2f4f7;padding:8px;overflow:auto}}</style></head><body>",
    ]
    paragraph: list[str] = []
    code: list[str] | None = None

    def flush() -> None:
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    for line in markdown.splitlines():
        if code is not None:
            if line.startswith("```"):
                out.append(f"<pre><code>{_e(chr(10).join(code))}</code></pre>")
                code = None
            else:
                code.append(line)
            continue
        if line.startswith("```"):
            flush()
            code = []
        elif line.startswith("#"):
            flush()
            level = min(len(line) - len(line.lstrip("#")), 4)
            title = line.lstrip("#").strip()
            out.append(f'<h{level} id="{_e(_slug(title))}">{_inline(title)}</h{level}>')
        elif not line.strip():
            flush()
        elif line.lstrip().startswith("- "):  # a list item: a line of its own
            flush()
            out.append(f"<p>• {_inline(line.lstrip()[2:])}</p>")
        else:
            paragraph.append(line.strip())
    flush()
    out.append("</body></html>")
    return "\n".join(out)


def _slug(title: str) -> str:
    """mkdocs's heading anchor: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).strip().replace(" ", "-")


def _inline(text: str) -> str:
    escaped = _e(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    escaped = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", escaped)
    # Links: only the runbook's own anchors stay links; anything else shows its text.
    return re.sub(
        r"\[([^\]]+)\]\((#[a-z0-9-]+)\)|\[([^\]]+)\]\([^)]*\)",
        lambda m: f'<a href="{m[2]}">{m[1]}</a>' if m[2] else m[3],
        escaped,
    )
