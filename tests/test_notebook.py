"""The analysts' notebook (examples/analyst-notebook.ipynb) runs top to bottom with papermill.

Against the demo-shaped DuckDB warehouse of tests/report_helpers.py, in a real
Jupyter kernel started from this environment: every cell runs, the queries
return the marts' rows, and the chart is drawn offline as SVG.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill

import report_helpers

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "analyst-notebook.ipynb"


def test_the_analyst_notebook_runs_on_a_demo_shaped_warehouse(trackway_env, tmp_path):
    trackway_env.mkdir(parents=True, exist_ok=True)
    report_helpers.build_duckdb(str(trackway_env / "warehouse.duckdb"))
    out = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(out),
        parameters={"days": 14},
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
    )
    cells = nbformat.read(out, as_version=4).cells
    outputs = [o for c in cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert f"reading duckdb:{trackway_env / 'warehouse.duckdb'}" in text
    assert "Listings Searched" in text and "renter_activation" in text and "checkout" in text
    # The DAU/WAU/MAU chart, drawn as SVG in the kernel (no CDN script).
    svgs = [o["data"]["image/svg+xml"] for o in outputs if "image/svg+xml" in o.get("data", {})]
    assert len(svgs) == 1 and "<svg" in svgs[0] and "Daily, weekly and monthly active people" in svgs[0]
    assert not any("cdn.jsdelivr" in str(o) for o in outputs)
