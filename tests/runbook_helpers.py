"""docs/runbook.md's own commands, as the game-day tests run them: per section, as on call pastes them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNBOOK = REPO_ROOT / "docs" / "runbook.md"
TRACKWAY = str(Path(sys.executable).parent / "trackway")


def runbook_blocks(section: str) -> list[str]:
    """The ``bash`` blocks of one ``## section`` of the runbook, in order."""
    text = RUNBOOK.read_text()
    parts = re.split(r"^## ", text, flags=re.MULTILINE)
    [body] = [p for p in parts if p.splitlines()[0].strip() == section]
    return re.findall(r"^```bash\n(.*?)^```", body, flags=re.MULTILINE | re.DOTALL)


def run_block(block: str, **variables: str) -> subprocess.CompletedProcess:
    """One block under ``set -euo pipefail`` with the alert's variables (HOUR, FROM, TO, EVENT, MODEL) set."""
    env = {**os.environ, **variables, "PATH": f"{Path(TRACKWAY).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, (
        f"runbook command failed:\n{block}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return result
