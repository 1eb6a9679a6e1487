"""The report as one HTML file: inline CSS, inline SVG charts, no script and nothing to fetch.

Every text from the warehouse goes through ``html.escape``; the charts' SVG
comes from Vega's serializer, which escapes its text too. A Content-Security-
Policy of ``default-src 'none'`` makes the browser refuse any request the page
might still try.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from html import escape
from typing import Any

from trackway.report.charts import Chart, render_svg
from trackway.report.data import Section, Table

CSP = "default-src 'none'; style-src 'unsafe-inline'"
# Columns shown as percentages; p-values with three decimals.
PERCENT = {"DAU/MAU", "rate", "rate 95% low", "rate 95% high", "lift", "lift 95% low", "lift 95% high"}
PERCENT |= {"relative lift", "retention", "conversion"}

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212121; margin: 0;
       background: #fafafa; }
header { background: #3f51b5; color: white; padding: 20px 32px 12px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 2px 0; opacity: .9; }
nav { margin-top: 10px; }
nav a { color: white; margin-right: 14px; text-decoration: none; border-bottom: 1px dotted rgba(255,255,255,.6); }
main { max-width: 1100px; margin: 0 auto; padding: 8px 32px 40px; }
section { background: white; border: 1px solid #e0e0e0; border-radius: 6px; margin: 18px 0; padding: 8px 20px 14px; }
h2 { font-size: 18px; margin: 10px 0 4px; }
.intro { color: #424242; margin: 4px 0; }
.source { color: #757575; font-size: 12px; margin: 0 0 8px; }
.note { background: #fff8e1; border-left: 4px solid #ffb300; padding: 6px 10px; margin: 8px 0; }
.kpis { display: flex; gap: 14px; flex-wrap: wrap; margin: 8px 0; }
.kpi { border: 1px solid #e0e0e0; border-radius: 6px; padding: 6px 14px; min-width: 90px; }
.kpi b { display: block; font-size: 22px; }
.kpi span { color: #616161; font-size: 12px; }
figure { margin: 12px 0; overflow-x: auto; }
figcaption { font-weight: 600; margin-bottom: 4px; }
details { margin: 6px 0; }
summary { cursor: pointer; color: #3f51b5; }
table { border-collapse: collapse; margin: 6px 0; font-size: 13px; }
th, td { border-bottom: 1px solid #eeeeee; padding: 3px 10px; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
footer { color: #757575; font-size: 12px; text-align: center; padding: 10px; }
"""


def _cell(header: str, value: Any) -> tuple[str, bool]:
    """The value as text, and whether it is a number (right-aligned)."""
    if value is None:
        return "", False
    if isinstance(value, bool):
        return ("yes" if value else "no"), False
    if isinstance(value, (int, float)) or type(value).__name__ == "Decimal":
        number = float(value)
        if header in PERCENT:
            return f"{number:.1%}", True
        if header == "p-value":
            return f"{number:.3f}", True
        if isinstance(value, int) or number.is_integer():
            return f"{int(number):,}", True
        return f"{number:,.2f}", True
    if isinstance(value, (date, datetime)):
        return value.isoformat(), False
    return str(value), False


def table_html(table: Table, limit: int = 60) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = []
    for row in table.rows[:limit]:
        cells = []
        for header, value in zip(table.headers, row, strict=True):
            text, numeric = _cell(header, value)
            cells.append(f'<td class="n">{escape(text)}</td>' if numeric else f"<td>{escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f"<p class='source'>{len(table.rows) - limit} more rows not shown.</p>" if len(table.rows) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def _kpis(section: Section) -> str:
    """The latest day's DAU, WAU, MAU and DAU/MAU, above the stickiness charts."""
    days = section.tables.get("days")
    if section.key != "stickiness" or not days or not days.rows:
        return ""
    latest = days.rows[-1]
    boxes = []
    for header, value in zip(days.headers[1:], latest[1:], strict=True):
        text, _ = _cell(header, value)
        boxes.append(
            f'<div class="kpi"><b>{escape(text)}</b><span>{escape(header)} on {escape(str(latest[0]))}</span></div>'
        )
    return '<div class="kpis">' + "".join(boxes) + "</div>"


def section_html(section: Section, charts: list[Chart], svg: Callable[[Chart, str], str], number: int) -> str:
    parts = [
        f'<section id="{escape(section.key)}">',
        f"<h2>{escape(section.title)}</h2>",
        f'<p class="intro">{escape(section.intro)}</p>',
        f'<p class="source">From {escape(", ".join(section.sources))}.</p>',
    ]
    parts += [f'<div class="note">{escape(note)}</div>' for note in section.notes]
    if section.empty and not section.notes:
        parts.append(
            '<div class="note">No rows yet (in the window, for the parts that have one): nothing to show.</div>'
        )
    parts.append(_kpis(section))
    for i, chart in enumerate(charts):
        figure = svg(chart, f"s{number}c{i}-")
        parts.append(f"<figure><figcaption>{escape(chart.title)}</figcaption>{figure}</figure>")
    tables = [(name, t) for name, t in section.tables.items() if t.rows]
    if tables:
        parts.append("<details><summary>The numbers</summary>")
        parts += [table_html(t) for _, t in tables]
        parts.append("</details>")
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def page_html(
    sections: list[tuple[Section, list[Chart]]],
    *,
    warehouse: str,
    window: str,
    generated_at: datetime,
    svg: Callable[[Chart, str], str] = render_svg,
) -> str:
    nav = "".join(f'<a href="#{escape(s.key)}">{escape(s.title)}</a>' for s, _ in sections)
    body = "\n".join(section_html(s, charts, svg, n) for n, (s, charts) in enumerate(sections))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Trackway report: {escape(window)}</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>Trackway report</h1>
<p>{escape(window)} &middot; warehouse {escape(warehouse)}</p>
<p>Generated {escape(generated_at.strftime("%Y-%m-%d %H:%M UTC"))} by <code>trackway report</code>; \
one file, no script, nothing fetched.</p>
<nav>{nav}</nav>
</header>
<main>
{body}
</main>
<footer>Trackway &middot; the marts are described in docs/models.md; this report in docs/report.md.</footer>
</body>
</html>
"""
