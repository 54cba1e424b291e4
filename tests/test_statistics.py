"""The statistics: unit checks and property-based checks with hypothesis."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bisect_driver.verdict.stats import (
    Reference,
    Verdict,
    calibration_pays,
    clean_p_value,
    clean_trials_needed,
    clopper_pearson,
    decide,
    expected_verdicts,
    per_verdict_alpha,
)


def test_one_reproduction_is_proof_without_false_positives():
    d = decide(1, 1, Reference(5, 20), alpha=1e-3)
    assert d.verdict == Verdict.BUG and d.error == 0.0


def test_false_positive_rate_needs_more_than_one_reproduction():
    ref = Reference(10, 20)
    assert decide(1, 10, ref, alpha=1e-3, fp=0.05).verdict != Verdict.BUG
    assert decide(8, 10, ref, alpha=1e-3, fp=0.05).verdict == Verdict.BUG


def test_clean_needs_a_reference_that_reproduces():
    assert decide(0, 10_000, Reference(0, 50), alpha=0.01).verdict == Verdict.UNDECIDED


def test_clean_p_value_is_the_hypergeometric_all_in_reference_probability():
    # 3 reproductions among 10 + 5 trials, none in the commit's 5: C(10,3)/C(15,3)
    assert clean_p_value(0, 5, Reference(3, 10)) == pytest.approx(120 / 455)


def test_clopper_pearson_known_values():
    lo, hi = clopper_pearson(0, 42)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 42), rel=1e-6)
    lo, hi = clopper_pearson(10, 40)
    assert lo == pytest.approx(0.1269, abs=1e-3) and hi == pytest.approx(0.4120, abs=1e-3)
    lo, hi = clopper_pearson(13, 50)
    assert lo == pytest.approx(0.1463, abs=1e-3) and hi == pytest.approx(0.4034, abs=1e-3)


def test_alpha_follows_confidence_and_range():
    assert expected_verdicts(100) == 9  # 7 steps + 2 endpoints
    assert per_verdict_alpha(0.99, 9) == pytest.approx(0.01 / 9)


@given(k=st.integers(1, 60), extra=st.integers(0, 200), n=st.integers(0, 300))
def test_each_clean_trial_lowers_the_p_value(k, extra, n):
    ref = Reference(k, k + extra)
    assert clean_p_value(0, n + 1, ref) <= clean_p_value(0, n, ref)


@given(k=st.integers(1, 40), extra=st.integers(0, 120))
def test_more_reference_reproductions_need_fewer_clean_trials(k, extra):
    a = clean_trials_needed(Reference(k, k + extra), 0.01)
    b = clean_trials_needed(Reference(k + 1, k + 1 + extra), 0.01)
    assert b <= a


def simulate_commit(
    rng: random.Random, rate: float, ref: Reference, alpha: float, batch: int = 2, cap: int = 400
) -> tuple[str, int]:
    """Run the sequential test on one simulated commit; (verdict, trials)."""
    k = n = 0
    while n < cap:
        d = decide(k, n, ref, alpha)
        if d.verdict != Verdict.UNDECIDED:
            return d.verdict, n
        for _ in range(batch):
            n += 1
            k += rng.random() < rate
    return Verdict.UNDECIDED, n


def calibrate(rng: random.Random, rate: float, alpha: float, left: float) -> Reference:
    """The endpoint calibration the driver does: trials while they pay."""
    ref = Reference(0, 0)
    while ref.trials < 400 and (ref.trials < 2 or calibration_pays(ref, alpha, left)):
        ref = ref.plus(int(rng.random() < rate), 1)
    return ref


@settings(max_examples=12, deadline=None)
@given(rate=st.floats(0.05, 0.9), seed=st.integers(0, 2**32 - 1))
def test_wrong_verdict_rate_stays_under_target(rate, seed):
    """Over many simulated bug-present commits, a step's CLEAN (the wrong verdict) stays rare.

    alpha is large here (0.05) so that 'under the target' is measurable with a
    few thousand simulated commits.  Checking after every batch while the
    reference grows makes the soft step test slightly anticonservative: this
    example (rate 0.108, seed 629) gives 118 wrong of 1800 (6.6 %) with the
    previous design's code as well.  Since statistics v2 a step's verdict only
    steers git (a wrong CLEAN is caught and corrected by the strict
    confirmation; tests/test_calibration.py checks the answer), so the bound
    here is 1.5 alpha plus 3 standard deviations of sampling noise.  The
    reference is the calibrated endpoint only, as in the driver: pooling
    bug-present commits, whose trials stop at the first reproduction, biases
    the rate upwards and broke this very test.
    """
    alpha = 0.05
    rng = random.Random(seed)
    commits, wrong = 0, 0
    for _ in range(30):  # 30 runs, each with its own calibration
        ref = calibrate(rng, rate, alpha, left=4)
        for _ in range(60):
            verdict, n = simulate_commit(rng, rate, ref, alpha)
            commits += 1
            wrong += verdict == Verdict.CLEAN

    bound = 1.5 * alpha * commits + 3 * math.sqrt(alpha * (1 - alpha) * commits)
    assert wrong <= bound, f"{wrong} wrong of {commits} at rate {rate:.2f}"


LOWEST_RATE = 0.2


@settings(max_examples=10, deadline=None)
@given(rate=st.floats(LOWEST_RATE, 0.9), seed=st.integers(0, 2**32 - 1))
def test_expected_trials_below_fixed_n_design_at_same_error(rate, seed):
    """Sequential beats fixed-N at the same error.

    A fixed design does not know the rate either: to keep every clean verdict's
    error under alpha for any rate down to LOWEST_RATE it needs
    N = ceil(log(alpha) / log(1 - LOWEST_RATE)) trials on *every* commit (31
    here: the "N=30" people use).  We stop at the first reproduction on
    bug-present commits.  Calibration trials are charged to us.  Averaged
    over 5 simulated bisects of 40 commits each.
    """
    alpha = per_verdict_alpha(0.99, expected_verdicts(100))
    fixed_n = math.ceil(math.log(alpha) / math.log(1 - LOWEST_RATE))
    rng = random.Random(seed)
    total = commits = 0
    for _run in range(5):
        ref = calibrate(rng, rate, alpha, left=20)
        total += ref.trials
        for i in range(40):  # half the commits carry the bug, as in a bisect
            verdict, n = simulate_commit(rng, rate if i % 2 else 0.0, ref, alpha)
            total += n
            commits += 1
    assert total / commits < fixed_n, f"{total / commits:.1f} per commit vs fixed {fixed_n}"
