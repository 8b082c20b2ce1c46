"""``benchmarks/run.py --quick`` runs every section and reports every figure.

A smoke test of the tool, not of the figures: those are timed, and judged from full runs
(benchmarks/README.md). Each response the benchmark times is checked before timing
(``world.check_authorization``), so a broken request path fails here too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

FIGURES = ["1.1", "1.2", "1.3", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "2.7", "3.1", "3.2", "4.1", "4.2", "4.3"]


def test_the_quick_run_reports_every_figure():
    done = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick"],
        cwd=REPO_ROOT,
        # The benchmark's own settings: no test-run JARM overrides.
        env={name: value for name, value in os.environ.items() if name != "JARM_TEST_SETTINGS"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = done.stdout.split("\nSummary\n", 1)[1]
    reported = re.findall(r"^  (\d\.\d) ", summary, flags=re.MULTILINE)
    assert reported == FIGURES
    assert re.search(r"^\d of 9 targets met; took \d+ s$", summary, flags=re.MULTILINE)
    # Every figure is a number: no variant failed or measured nothing.
    assert not re.search(r"\bnan\b", summary)
