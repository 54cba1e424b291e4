"""bench/bayesect_simulated.py as documented (docs/benchmarks.md), at the smallest size."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bayesect_simulated.py"


@pytest.mark.slow
def test_both_tools_run_on_the_same_simulated_hunts(tmp_path: Path) -> None:
    """It installs git-bayesect into its own venv, drives git-bayesect's own bisector and
    the shipped hunt over the same cases, and prints a row per tool with the ratios."""
    out = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--runs",
            "3",
            "--rates",
            "0.5",
            "--commits",
            "24",
            "--confidence",
            "0.99",
            "--seed",
            "2",
            "--venv",
            str(tmp_path / "venv"),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| 0.5 |")]
    assert [r.split(" | ")[1] for r in rows] == [
        "bisect-qemu",
        "bisect-qemu --steady-rate",
        "git-bayesect",
    ], out.stdout
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        trials = float(cells[2].split(" ± ")[0])
        assert trials > 0 and float(cells[3]) > 0, row
        assert cells[4] == "3", row  # claimed: every hunt of this easy cell
        assert cells[5] == "0", row  # none wrong
    assert rows[0].rstrip(" |").endswith("x"), rows[0]
    assert (tmp_path / "venv" / "bin" / "git-bayesect").exists()
