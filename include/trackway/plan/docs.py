"""`trackway plan docs`: the data dictionary as one self-contained HTML page and as Markdown.

Everything comes from the plan; volumes and violations come from the warehouse
(analytics.events, analytics.tracking_plan_violations) when it can be read. The
HTML has no external resources: inline CSS and a few lines of JavaScript for the
search box, so it can be mailed, attached or served from anywhere.
"""

from __future__ import annotations

import html
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trackway.config import Settings
from trackway.config.retention import DEFAULT_RETENTION
from trackway.plan import names
from trackway.plan.diff import event_label
from trackway.plan.model import EventSpec, Plan, PropertySpec
from trackway.plan.privacy import PlanPrivacy


@dataclass
class WarehouseStats:
    reachable: bool = False
    note: str = "warehouse not read"
    volume: dict[tuple[str, str], tuple[int, str, str]] = field(default_factory=dict)  # (type, name) -> n, first, last
    violations: dict[str, list[tuple[str, str, int]]] = field(default_factory=lambda: defaultdict(list))


def read_stats(settings: Settings | None) -> WarehouseStats:
    stats = WarehouseStats()
    if settings is None:
        return stats
    from trackway.warehouse import open_warehouse

    try:
        with open_warehouse(settings.read_warehouse, read_only=True) as wh:
            if not wh.table_exists("analytics", "events"):
                stats.note = f"{settings.read_warehouse.display_url} has no analytics.events yet"
                return stats
            for etype, name, count, first, last in wh.query(
                "select event_type, event_name, count(*), min(received_at), max(received_at) "
                "from analytics.events group by event_type, event_name"
            ):
                stats.volume[(str(etype), str(name))] = (int(count), str(first)[:19], str(last)[:19])
            if wh.table_exists("analytics", "tracking_plan_violations"):
                for name, kind, prop, count in wh.query(
                    "select event_name, kind, property, sum(violation_count) from analytics.tracking_plan_violations "
                    "group by event_name, kind, property order by 4 desc"
                ):
                    stats.violations[str(name)].append((str(kind), "" if prop is None else str(prop), int(count)))
        stats.reachable = True
        stats.note = f"volumes and violations from {settings.read_warehouse.display_url}"
    except Exception as exc:  # docs are still useful without the warehouse
        stats.note = f"warehouse not reachable ({type(exc).__name__}: {str(exc)[:120]})"
    return stats


def _type_text(prop: PropertySpec) -> str:
    text = "/".join(prop.types) or "any"
    if prop.format:
        text += f" ({prop.format})"
    return text


def _enum_text(prop: PropertySpec) -> str:
    return ", ".join(json.dumps(v, ensure_ascii=False) for v in prop.enum) if prop.enum else ""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _anchor(event: EventSpec) -> str:
    return "ev-" + names.identifier(f"{event.type} {event.name}", "e_")


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2a44;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;opacity:.8}main{padding:18px 28px;max-width:1200px}
#search{width:100%;max-width:560px;padding:9px 12px;font-size:15px;border:1px solid #b9c0cc;border-radius:6px}
nav{margin:12px 0 18px;columns:3 220px}nav a{display:block;color:#24528f;text-decoration:none;padding:1px 0}
section.event{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:14px 18px;margin:0 0 16px}
section.event h2{margin:0 0 6px;font-size:19px;overflow-wrap:anywhere}.meta span{display:inline-block;margin-right:14px;color:#4a5568}
.badge{display:inline-block;white-space:nowrap;overflow-wrap:normal;border-radius:10px;padding:1px 8px;font-size:12px;font-weight:600;color:#fff}
.active{background:#2f855a}.draft{background:#718096}.deprecated{background:#c05621}
.public{background:#2b6cb0}.internal{background:#4a5568}.pii{background:#b7791f}.sensitive{background:#c53030}
table{border-collapse:collapse;width:100%;margin:8px 0;font-size:14px}th,td{border-bottom:1px solid #e2e6ec;
text-align:left;padding:5px 8px;vertical-align:top;overflow-wrap:anywhere}th{background:#f0f2f5}code{font-size:13px}
pre{background:#f0f2f5;padding:8px;border-radius:6px;overflow-x:auto;font-size:13px}
.viol{color:#c53030}.ok{color:#2f855a}.hidden{display:none}#count{color:#4a5568;margin-left:8px}
"""

_JS = """
const box=document.getElementById('search'),cards=[...document.querySelectorAll('section.event')],
count=document.getElementById('count');
function filter(){const q=box.value.trim().toLowerCase();let n=0;
const events=cards.filter(c=>c.dataset.event);
for(const c of cards){const hit=!q||c.dataset.search.includes(q);c.classList.toggle('hidden',!hit);n+=hit&&!!c.dataset.event;}
count.textContent=n+' of '+events.length+' events';}
box.addEventListener('input',filter);filter();
"""


def _pii_text(rules: PlanPrivacy, event: EventSpec | None, path: tuple[str, ...]) -> str:
    """'direct · hash' as the collector applies it; '(default)' or '(rule)' when not written on the property."""
    found = rules.class_of(event, path)
    if found is None:
        return "—"
    return found.label() + ("" if found.origin == "plan" else f" ({found.origin})")


def _property_rows(event: EventSpec, rules: PlanPrivacy) -> list[tuple[str, str, str, str, str, str, str, str]]:
    columns = names.unique_columns([p.name for p in event.current.properties])
    return [
        (
            p.name,
            columns[p.name],
            _type_text(p),
            "yes" if p.required else "",
            _enum_text(p),
            p.privacy,
            p.description,
            _pii_text(rules, event, (event.payload_field, p.name))
            + (" · kept after retention" if p.schema.get("retain") is True else ""),
        )
        for p in event.current.properties
    ]


def _retention_text(plan: Plan, event: EventSpec) -> str:
    """The event's retention rule (a sources-file source's rule may apply to other systems' events instead)."""
    rule = event.retention or plan.retention or DEFAULT_RETENTION
    return f"{rule.label()} ({rule.origin})"


def _collection_text(event: EventSpec) -> str:
    """The event's consent category and sample, as the collector applies them ('' when neither)."""
    parts = []
    if event.consent_category:
        parts.append(f"dropped unless context.consent grants '{event.consent_category}'")
    if event.sample:
        parts.append(f"sampled at {event.sample.get('rate')} per {event.sample.get('unit', 'anonymous_id')}")
    return "; ".join(parts)


def render_html(plan: Plan, stats: WarehouseStats, typed_schema: str = "analytics_typed") -> str:
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(plan.name)} data dictionary</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(plan.name)} data dictionary</h1>",
        f"<p>{len(plan.events)} events · generated {generated} from the tracking plan · {_e(stats.note)}</p></header>",
        "<main><input id='search' type='search' placeholder='Search events, properties, owners…' autofocus>",
        "<span id='count'></span><nav>",
    ]
    for event in plan.events:
        parts.append(f"<a href='#{_anchor(event)}'>{_e(event_label(event))}</a>")
    parts.append("</nav>")
    rules = PlanPrivacy(plan)
    if plan.common_properties:
        parts.append("<section class='event' data-search='common context'><h2>Common context</h2>")
        parts.append("<p>Every event's <code>context</code> must carry:</p><table><tr><th>Field</th><th>Type</th>")
        parts.append("<th>Required</th><th>Privacy</th><th>PII · action</th><th>Description</th></tr>")
        for p in plan.common_properties:
            parts.append(
                f"<tr><td><code>{_e(p.name)}</code></td><td>{_e(_type_text(p))}</td><td>{'yes' if p.required else ''}</td>"
                f"<td><span class='badge {_e(p.privacy)}'>{_e(p.privacy)}</span></td>"
                f"<td>{_e(_pii_text(rules, None, ('context', p.name)))}</td><td>{_e(p.description)}</td></tr>"
            )
        parts.append("</table></section>")
    for event in plan.events:
        rows = _property_rows(event, rules)
        search = " ".join(
            [event.name, event.type, event.owner, event.status, event.description]
            + [f"{r[0]} {r[1]} {r[2]} {r[5]} {r[6]} {r[7]}" for r in rows]
        ).lower()
        view = f"{typed_schema}.{names.relation_name(event.name)}"
        parts.append(f"<section class='event' id='{_anchor(event)}' data-event='1' data-search='{_e(search)}'>")
        parts.append(f"<h2>{_e(event.name)} <span class='badge {_e(event.status)}'>{_e(event.status)}</span></h2>")
        parts.append(
            f"<div class='meta'><span>type <b>{_e(event.type)}</b></span><span>owner <b>{_e(event.owner or '—')}</b></span>"
            f"<span>version <b>{_e(event.version)}</b></span><span>typed view <code>{_e(view)}</code></span></div>"
        )
        parts.append(f"<p>{_e(event.description or '(no description)')}</p>")
        if event.previous:
            parts.append(
                "<p>Older versions still accepted: " + ", ".join(_e(v.version) for v in event.previous) + "</p>"
            )
        if rows:
            parts.append(
                "<table><tr><th>Property</th><th>Column</th><th>Type</th><th>Required</th><th>Allowed values</th>"
                "<th>Privacy</th><th>PII · action</th><th>Description</th></tr>"
            )
            for name, column, type_text, required, enum, privacy, desc, pii in rows:
                parts.append(
                    f"<tr><td><code>{_e(name)}</code></td><td><code>{_e(column)}</code></td><td>{_e(type_text)}</td>"
                    f"<td>{required}</td><td>{_e(enum)}</td><td><span class='badge {_e(privacy)}'>{_e(privacy)}</span></td>"
                    f"<td>{_e(pii)}</td><td>{_e(desc)}</td></tr>"
                )
            parts.append("</table>")
        extra = "forbidden" if not event.current.allows_extra else "allowed"
        parts.append(f"<p>Properties not in the plan: {extra}.</p>")
        collection = _collection_text(event)
        if collection:
            parts.append(f"<p>Collection: {_e(collection)}.</p>")
        parts.append(f"<p>Retention: {_e(_retention_text(plan, event))}.</p>")
        if stats.reachable:
            volume = stats.volume.get(event.key)
            if volume:
                parts.append(f"<p>Seen <b>{volume[0]:,}</b> times ({_e(volume[1])} – {_e(volume[2])} UTC).</p>")
            else:
                parts.append("<p>Not seen in the warehouse.</p>")
            found = stats.violations.get(event.name, [])
            if found:
                parts.append(
                    "<p class='viol'>Violations: "
                    + "; ".join(
                        f"{_e(kind)}{' ' + _e(prop) if prop else ''} × {count:,}" for kind, prop, count in found[:12]
                    )
                    + "</p>"
                )
            elif volume:
                parts.append("<p class='ok'>No violations.</p>")
        for query in event.queries:
            path = plan.query_path(query)
            sql = path.read_text(encoding="utf-8") if path.is_file() else "(file missing)"
            parts.append(f"<p>Analyst query <code>{_e(query)}</code>:</p><pre>{_e(sql)}</pre>")
        parts.append("</section>")
    if stats.reachable:
        planned = {e.key for e in plan.events}
        unplanned = sorted((k, v) for k, v in stats.volume.items() if k not in planned)
        if unplanned:
            parts.append("<section class='event' data-search='unplanned'><h2>Seen but not in the plan</h2><ul>")
            for (etype, name), (count, _first, _last) in unplanned:
                parts.append(f"<li>{_e(etype)} <code>{_e(name)}</code>: {count:,}</li>")
            parts.append("</ul></section>")
    parts.append(f"</main><script>{_JS}</script></body></html>")
    return "\n".join(parts)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def _md(text: object) -> str:
    """Plain text for a Markdown table cell: specials escaped, HTML neutralised, one line.

    Property names, event names and violation kinds come from plans and from the warehouse
    (what clients sent): none of them may add a link, an image, HTML or a table column.
    """
    one_line = " ".join(str(text).split())
    return _MD_SPECIAL.sub(r"\\\1", one_line).replace("<", "&lt;")


def _code(text: object) -> str:
    """A Markdown code span that no backtick in ``text`` can end early (CommonMark's longer fence)."""
    value = " ".join(str(text).split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def _cell_code(text: object) -> str:
    """A code span inside a table cell: GitHub's tables need its pipes escaped even there."""
    return _code(text).replace("|", "\\|")


def render_markdown(plan: Plan, stats: WarehouseStats, typed_schema: str = "analytics_typed") -> str:
    out = [f"# {plan.name} data dictionary", "", f"{len(plan.events)} events; {stats.note}.", ""]
    rules = PlanPrivacy(plan)
    if plan.common_properties:
        out += [
            "## Common context",
            "",
            "| Field | Type | Required | Privacy | PII · action | Description |",
            "|---|---|---|---|---|---|",
        ]
        for p in plan.common_properties:
            out.append(
                f"| {_cell_code(p.name)} | {_md(_type_text(p))} | {'yes' if p.required else ''} | {p.privacy} "
                f"| {_md(_pii_text(rules, None, ('context', p.name)))} | {_md(p.description)} |"
            )
        out.append("")
    for event in plan.events:
        out += [
            f"## {_md(event.name)}",
            "",
            f"- type: {event.type}; status: **{event.status}**; owner: {_md(event.owner or '—')}; version: {event.version}"
            + (f" (older: {', '.join(str(v.version) for v in event.previous)})" if event.previous else ""),
            f"- typed view: `{typed_schema}.{names.relation_name(event.name)}`",
        ]
        if stats.reachable:
            volume = stats.volume.get(event.key)
            out.append(f"- seen: {volume[0]:,}" if volume else "- seen: never")
            found = stats.violations.get(event.name, [])
            if found:
                out.append(
                    "- violations: "
                    + "; ".join(f"{_md(k)}{' ' + _code(p) if p else ''} × {c:,}" for k, p, c in found[:12])
                )
        collection = _collection_text(event)
        if collection:
            out.append(f"- collection: {_md(collection)}")
        out.append(f"- retention: {_md(_retention_text(plan, event))}")
        out += ["", _md(event.description or "(no description)"), ""]
        rows = _property_rows(event, rules)
        if rows:
            out += [
                "| Property | Column | Type | Required | Allowed values | Privacy | PII · action | Description |",
                "|---|---|---|---|---|---|---|---|",
            ]
            out += [
                f"| {_cell_code(r[0])} | {_cell_code(r[1])} | {_md(r[2])} | {_md(r[3])} "
                f"| {_md(r[4])} | {_md(r[5])} | {_md(r[7])} | {_md(r[6])} |"
                for r in rows
            ]
            out.append("")
        for query in event.queries:
            path = plan.query_path(query)
            sql = path.read_text(encoding="utf-8") if path.is_file() else "(file missing)"
            out += [f"Analyst query `{query}`:", "", "```sql", sql.rstrip(), "```", ""]
    return "\n".join(out) + "\n"


def write_docs(plan: Plan, out: Path, settings: Settings | None) -> tuple[Path, Path, str]:
    stats = read_stats(settings)
    typed_schema = settings.typed_schema if settings else "analytics_typed"
    out.mkdir(parents=True, exist_ok=True)
    html_path, md_path = out / "index.html", out / "data-dictionary.md"
    html_path.write_text(render_html(plan, stats, typed_schema), encoding="utf-8")
    md_path.write_text(render_markdown(plan, stats, typed_schema), encoding="utf-8")
    return html_path, md_path, stats.note
