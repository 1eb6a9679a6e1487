"""Client-controlled text cannot forge log lines or rewrite the published data dictionary.

Real parts: the collector process and its log; the Markdown dictionary rendered
from a real plan with warehouse statistics, parsed with markdown-it (mkdocs' own
Markdown parser is python-markdown; markdown-it is CommonMark, as GitHub renders).
"""

from __future__ import annotations

import requests

from collector_helpers import CollectorProcess
from plan_fixtures import write_plan
from trackway.plan.docs import WarehouseStats, render_markdown
from trackway.plan.model import load_plan


def test_a_decoded_newline_in_the_path_forges_no_log_line(tmp_path):
    proc = CollectorProcess(tmp_path).start()
    try:
        r = requests.post(
            proc.url + "/v1/track%0A2026-12-02 ERROR forged: db dropped%0D%0Amore", data=b"{}", timeout=10
        )
        assert r.status_code == 404
    finally:
        proc.stop()
        proc.close()
    log = proc.err_path.read_text() + proc.out_path.read_text()
    assert "db dropped" in log, "the request was not logged at all"
    assert not any(line.startswith("2026-12-02 ERROR forged") for line in log.splitlines())
    assert "\\n2026-12-02 ERROR forged" in log


def test_hostile_names_stay_text_in_the_data_dictionary(tmp_path):
    hostile = "x](http://evil.example/steal) <img src=x onerror=alert(1)> | `tick` \n## Injected heading"
    plan = load_plan(
        write_plan(
            tmp_path / "plan",
            [
                {
                    "name": "Listing Viewed",
                    "type": "track",
                    "version": "1-0-0",
                    "description": hostile,
                    "properties": {"type": "object", "properties": {hostile: {"type": "string"}}},
                }
            ],
        )
    )
    stats = WarehouseStats(reachable=True, note="test")
    stats.volume[("track", "Listing Viewed")] = (3, "2026-12-01", "2026-12-02")
    stats.violations["Listing Viewed"] = [(hostile, hostile, 2)]  # what clients sent, read back from the warehouse
    text = render_markdown(plan, stats)

    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    kinds = {t.type for t in tokens} | {c.type for t in tokens for c in (t.children or [])}
    assert "link_open" not in kinds and "image" not in kinds and "html_inline" not in kinds
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert not any("Injected heading" in h for h in headings), headings
    rows = [line for line in text.splitlines() if line.startswith("| ") and "string" in line]
    # No extra column: the hostile name's row has as many cells as the property table's header.
    [header] = [line for line in text.splitlines() if line.startswith("| Property")]
    assert rows and all(line.count(" | ") == header.count(" | ") for line in rows), (header, rows)
