"""bench/bench_bayesect.py as documented (docs/benchmarks.md), at the smallest size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_bayesect.py"


@pytest.mark.slow
def test_the_bayesect_bench_runs_both_tools_on_one_repo(tmp_path: Path) -> None:
    """It installs git-bayesect into its own venv, runs it and bisect-qemu on the same
    generated repo, and prints and writes both hunts' figures."""
    out = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--seeds",
            "1",
            "--rates",
            "0.5",
            "--commits",
            "24",
            "--venv",
            str(tmp_path / "venv"),
            "--json",
            str(tmp_path / "b.json"),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    for tool in ("bisect-qemu", "bisect-qemu --steady-rate", "git-bayesect"):
        assert f"| 0.5 | {tool} |" in out.stdout, out.stdout
    (row,) = json.loads((tmp_path / "b.json").read_text())
    for tool in ("bisect-qemu", "bisect-qemu --steady-rate", "git-bayesect"):
        hunt = row[tool]
        assert hunt["trials"] > 0 and hunt["commits"] > 0, (tool, hunt)
        assert hunt["found"] is None or len(hunt["found"]) == 40
        if tool != "git-bayesect" and hunt["found"]:
            # the fix cherry-picks onto the old end: REF + fix was built and probed
            assert 0 < hunt["backport_trials"] < hunt["trials"], hunt
    assert "trials without the backport check" in out.stdout
    # bisect-qemu's own venv never gets git-bayesect: it is the bench's, not a dependency
    assert (tmp_path / "venv" / "bin" / "git-bayesect").exists()
    assert not (Path(sys.executable).parent / "git-bayesect").exists()


def test_backport_trials_count_the_stage_s_own_trees_only() -> None:
    sys.path.insert(0, str(BENCH.parent))
    from bench_flaky import backport_trials

    ref = "r" * 40
    report = {
        "backports": [
            {
                "ref_sha": ref,
                "trials": [{"commit": ref, "trials": 8}, {"commit": "s" * 40, "trials": 40}],
                "patches": [{"trial": {"trials": 5}}, {"trial": None}],
                "candidates": [{"trial": {"trials": 7}}, {"trial": None}],
            }
        ]
    }
    assert backport_trials(report) == 52
    assert backport_trials({}) == 0
