"""bench/clean_test_size.py: the shipped CLEAN test keeps its error against a reference
gathered up to reproductions, and the cheaper test the eighth round rejected does not
(docs/statistics.md, "Eighth round")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import clean_test_size  # noqa: E402

from bisect_driver.verdict.stats import Reference, clean_trials_needed  # noqa: E402


@pytest.mark.parametrize(
    ("rate", "reproductions", "alpha"),
    [(0.05, 3, 0.1), (0.1, 10, 0.1), (0.25, 5, 0.008), (0.05, 10, 0.008), (0.5, 1, 0.1)],
)
def test_the_shipped_clean_test_keeps_its_error(
    rate: float, reproductions: int, alpha: float
) -> None:
    """The exact error of a CLEAN verdict at a commit that carries the bug at the
    reference's own rate, summed over every size the reproductions can give the reference,
    is at most the test's target."""
    size, trials = clean_test_size.size(rate, reproductions, alpha)
    assert 0.0 < size <= alpha
    assert trials > 0


def test_the_rejected_unconditional_test_does_not() -> None:
    """It needs fewer clean trials, but its error is about twice its target when the
    reference stops at its tenth reproduction (a fixed-size reference is what it assumes)."""
    shipped, shipped_trials = clean_test_size.size(0.05, 10, 0.008)
    rejected, rejected_trials = clean_test_size.size(0.05, 10, 0.008, unconditional=True)
    assert rejected_trials < shipped_trials
    assert rejected > 1.5 * 0.008 > shipped


def test_the_bench_uses_the_shipped_count() -> None:
    """What the bench calls the shipped test is stats.clean_trials_needed itself."""
    ref = Reference(4, 37)
    assert clean_test_size.shipped_trials_needed(ref, 0.1) == clean_trials_needed(ref, 0.1)
    assert clean_test_size.unconditional_trials_needed(ref, 0.1) < clean_trials_needed(ref, 0.1)


def test_the_documented_command_prints_both_columns() -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(BENCH / "clean_test_size.py"),
            "--rates",
            "0.25",
            "--reproductions",
            "3",
            "--alphas",
            "0.1",
            "--unconditional",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "| 0.1 | 0.25 | 3 |" in out.stdout
    assert "unconditional: size / alpha" in out.stdout
