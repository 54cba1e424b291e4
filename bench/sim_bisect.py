"""A simulator of the driver's decisions, for the statistics benches and calibration.

It runs the same decision functions as the driver (bisect_driver.verdict.stats:
the soft step test, the strict floor test, the reference calibration, the floor,
the alpha spending) on a simulated linear history, without git, builds or
probes, so thousands of runs take seconds.  What it does not model: merges
(git's choice among parents), and the timing of batches (every batch is
``jobs`` trials).  Each design returns the trials and distinct commits it
used, its answer, and the confidence it claims (None: no claim, exit != 0).

Designs:
  v2     this tool: soft steps (SOFT_ALPHA vs the reproducing end), then one
         strict test of the answer's clean neighbour against the floor, with
         corrections and replay; near-rate check; inconclusive below the floor.
  v1     the previous design: every step at alpha = (1-confidence)/V against the
         reproducing end, confirmation at alpha/10 against it too.
  naive  N trials at every step, "bug" if any reproduced (fixed-30 by default).
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bisect_driver.verdict.stats import (  # noqa: E402
    SOFT_ALPHA,
    Reference,
    Verdict,
    calibration_pays,
    clean_trials_needed,
    decide,
    decide_anchor,
    decide_strict,
    default_floor,
    expected_verdicts,
    lower_bound,
    per_verdict_alpha,
    spent_alpha,
    strict_trials_needed,
    upper_bound,
)

NEAR_REPRODUCTIONS = 3
MAX_CORRECTIONS = 12


@dataclass
class Case:
    """A simulated history: commits 0..n; commit 0 is the old end, n the new end.

    Fix hunt: commits < change carry the bug.  ``rate(i)`` is commit i's reproduction
    rate if it carries the bug.  ``skips`` never build."""

    n: int
    change: int
    far_rate: float
    near_rate: float | None = None
    near_span: int = 0
    skips: frozenset[int] = frozenset()

    def buggy(self, i: int) -> bool:
        return i < self.change

    def rate(self, i: int) -> float:
        if not self.buggy(i):
            return 0.0
        if self.near_rate is not None and self.change - i <= self.near_span:
            return self.near_rate
        return self.far_rate


@dataclass
class Outcome:
    answer: int | None
    """The commit named (the first commit without the bug), None for no single answer."""
    confidence: float | None
    """The confidence claimed, None when no answer is claimed (exit != 0)."""
    trials: int = 0
    commits: set[int] = field(default_factory=set)
    why: str = ""
    """Why no confidence is claimed."""

    def wrong(self, case: Case) -> bool:
        return self.answer is not None and self.answer != case.change


class Lab:
    """Trials of a case: every commit's (reproduced, counted), drawn as needed."""

    def __init__(self, case: Case, rng: random.Random, jobs: int = 2) -> None:
        self.case, self.rng, self.jobs = case, rng, jobs
        self.k: dict[int, int] = {}
        self.m: dict[int, int] = {}
        self.trials = 0
        self.commits: set[int] = set()

    def batch(self, i: int, count: int | None = None) -> None:
        count = count or self.jobs
        p = self.case.rate(i)
        self.k[i] = self.k.get(i, 0) + sum(self.rng.random() < p for _ in range(count))
        self.m[i] = self.m.get(i, 0) + count
        self.trials += count
        self.commits.add(i)

    def ev(self, i: int) -> tuple[int, int]:
        return self.k.get(i, 0), self.m.get(i, 0)


def _soft_judge(
    lab: Lab, i: int, ref_commit: int, alpha: float, max_trials: int, strict_alpha: float | None
) -> Verdict:
    """CommitTester.judge in soft mode (calibrating the reference while that pays)."""
    if i in lab.case.skips:
        return Verdict.SKIP
    while True:
        k, n = lab.ev(i)
        rk, rn = lab.ev(ref_commit)
        d = decide(k, n, Reference(rk, rn), alpha)
        if d.verdict != Verdict.UNDECIDED:
            return d.verdict
        ref = Reference(rk, rn)
        cap = max_trials
        if rk:  # judge.CommitTester.trial_cap
            cap = max(cap, 2 * clean_trials_needed(ref, alpha, limit=10 * max_trials))
        if n >= cap:
            return Verdict.SKIP
        if (
            k == 0
            and rn < max_trials * 2
            and calibration_pays(ref, alpha, 2.0, strict_alpha=strict_alpha)
        ):
            lab.batch(ref_commit)
            continue
        lab.batch(i)


def _strict_judge(lab: Lab, i: int, floor: float, alpha: float, cap: int) -> Verdict:
    if i in lab.case.skips:
        return Verdict.SKIP
    while True:
        k, n = lab.ev(i)
        d = decide_strict(k, n, floor, alpha)
        if d.verdict != Verdict.UNDECIDED:
            return d.verdict
        if n >= cap:
            return Verdict.SKIP
        lab.batch(i)


def _bisect(
    case: Case, known: dict[int, Verdict], judge: Callable[[int], Verdict]
) -> tuple[int, int] | None:
    """git bisect over 0..n with recorded verdicts; returns (last bug, first clean)."""
    lo, hi = 0, case.n  # lo carries the bug, hi does not
    skipped: set[int] = set()
    while True:
        for i, v in known.items():
            if v == Verdict.BUG and lo < i < hi:
                lo = i
            elif v == Verdict.CLEAN and lo < i < hi:
                hi = i
        inside = [i for i in range(lo + 1, hi) if i not in skipped]
        if not inside:
            if any(lo < s < hi for s in skipped):
                return None  # a candidate set: skips border the answer
            return lo, hi
        mid = (lo + hi) / 2
        i = min(inside, key=lambda x: (abs(x - mid), x))
        if i not in known:
            known[i] = judge(i)
        if known[i] == Verdict.SKIP:
            skipped.add(i)


def run_v2(
    case: Case,
    rng: random.Random,
    confidence: float = 0.99,
    min_rate: float | None = None,
    max_trials: int = 200,
    jobs: int = 2,
) -> Outcome:
    lab = Lab(case, rng, jobs)
    delta = 1.0 - confidence
    strict0 = None if min_rate else spent_alpha(delta, 0)
    ends = _endpoints(lab, case, SOFT_ALPHA, max_trials, strict0, spent_alpha(delta, 0))
    if ends is None:
        return Outcome(None, None, lab.trials, lab.commits, why="ends alike")
    known: dict[int, Verdict] = {0: Verdict.BUG, case.n: Verdict.CLEAN}

    corrected: list[int] = []

    def reference_commit() -> int:
        """judge.CommitTester.reference_commit: the lowest-rate corrected commit, if lower."""
        best, best_rate = 0, lab.ev(0)[0] / max(1, lab.ev(0)[1])
        for i in corrected:
            k, n = lab.ev(i)
            if n and k and k / n < best_rate:
                best, best_rate = i, k / n
        return best

    def soft(i: int) -> Verdict:
        return _soft_judge(lab, i, reference_commit(), SOFT_ALPHA, max_trials, strict0)

    spent = 0.0
    for attempt in range(MAX_CORRECTIONS + 1):
        res = _bisect(case, known, soft)
        if res is None:
            return Outcome(None, None, lab.trials, lab.commits, why="candidate set")
        bug, cand = res
        floor = min_rate if min_rate is not None else default_floor(Reference(*lab.ev(0)))
        alpha = spent_alpha(delta, attempt)
        cap = max(max_trials * 2, strict_trials_needed(floor, alpha) + jobs)
        v = _strict_judge(lab, cand, floor, alpha, cap)
        tested = floor
        if v == Verdict.CLEAN:
            # confirm.near_rate, the floor check, and the lowered floor
            _measure_near(lab, bug, floor, cap)
            k, n = lab.ev(bug)
            if not n or upper_bound(k, n) < floor:
                return Outcome(cand, None, lab.trials, lab.commits, why="near below floor")
            tested = min(floor, lower_bound(k, n))
            if tested < floor:
                cap = max(max_trials * 2, strict_trials_needed(tested, alpha) + jobs)
                v = _strict_judge(lab, cand, tested, alpha, cap)
        if v == Verdict.BUG:
            known[cand] = Verdict.BUG  # corrected; replay
            corrected.append(cand)
            spent += alpha
            continue
        if v != Verdict.CLEAN:
            return Outcome(cand, None, lab.trials, lab.commits, why="strict undecided")
        return Outcome(cand, 1.0 - delta, lab.trials, lab.commits)  # result.RunResult.of
    return Outcome(None, None, lab.trials, lab.commits, why="corrections exhausted")


def _measure_near(lab: Lab, bug: int, floor: float, cap: int) -> None:
    """confirm.near_rate: until the rate is known above or below the floor (or 10 seen)."""

    def settled(k: int, n: int) -> bool:
        if k < NEAR_REPRODUCTIONS:
            return False
        return k >= 10 or lower_bound(k, n) >= floor or upper_bound(k, n) < floor

    while not settled(*lab.ev(bug)) and lab.ev(bug)[1] < cap:
        lab.batch(bug)


def _endpoints(
    lab: Lab,
    case: Case,
    alpha: float,
    max_trials: int,
    strict_alpha: float | None,
    anchor_alpha: float = 1.0,
) -> bool | None:
    """check_endpoints: the old end must reproduce, the new end be clean as an anchor
    (stats.decide_anchor at ``anchor_alpha``; 1.0 = the soft test alone, as v1 had it)."""
    while True:
        k0, n0 = lab.ev(0)
        k1, n1 = lab.ev(case.n)
        if k0 > 0:
            ref = Reference(k0, n0)
            if anchor_alpha < 1.0:
                d = decide_anchor(k1, n1, ref, alpha, anchor_alpha, cap=max_trials)
            else:
                d = decide(k1, n1, ref, alpha)
            if d.verdict == Verdict.CLEAN:
                return True
            if d.verdict == Verdict.BUG or n1 >= max_trials:
                return None
            if calibration_pays(Reference(k0, n0), alpha, 2.0, strict_alpha=strict_alpha):
                lab.batch(0)
            lab.batch(case.n)
            continue
        if n0 >= max_trials:
            return None
        lab.batch(0)
        lab.batch(case.n)


def run_v1(
    case: Case, rng: random.Random, confidence: float = 0.99, max_trials: int = 200, jobs: int = 2
) -> Outcome:
    """The previous design: every verdict at (1-confidence)/V against the reference."""
    lab = Lab(case, rng, jobs)
    alpha = per_verdict_alpha(confidence, expected_verdicts(case.n))
    if _endpoints(lab, case, alpha, max_trials, None) is None:
        return Outcome(None, None, lab.trials, lab.commits)
    known: dict[int, Verdict] = {0: Verdict.BUG, case.n: Verdict.CLEAN}
    res = _bisect(case, known, lambda i: _soft_judge(lab, i, 0, alpha, max_trials, None))
    if res is None:
        return Outcome(None, None, lab.trials, lab.commits)
    bug, cand = res
    strict = _soft_judge(lab, cand, 0, alpha / 10, max_trials * 2, None)
    if strict != Verdict.CLEAN:
        return Outcome(cand, None, lab.trials, lab.commits)
    return Outcome(cand, 1.0 - alpha / 10 - alpha, lab.trials, lab.commits)


def run_naive(case: Case, rng: random.Random, n_trials: int = 30) -> Outcome:
    lab = Lab(case, rng, 1)

    def judge(i: int) -> Verdict:
        if i in case.skips:
            return Verdict.SKIP
        lab.batch(i, n_trials)
        return Verdict.BUG if lab.ev(i)[0] else Verdict.CLEAN

    res = _bisect(case, {0: Verdict.BUG, case.n: Verdict.CLEAN}, judge)
    if res is None:
        return Outcome(None, None, lab.trials, lab.commits)
    return Outcome(res[1], 1.0, lab.trials, lab.commits)


def c_z(p: float) -> float:
    """Capacity of the Z-channel with crossover 1-p, in bits per trial."""
    return math.log2(1 + p * (1 - p) ** ((1 - p) / p))


def bound(n: int, p: float, delta: float = 0.01) -> float:
    """Trials any method needs, roughly: log2 N / C_Z(p) + ln(1/delta) / -ln(1-p)."""
    return math.log2(n) / c_z(p) + math.log(1 / delta) / -math.log1p(-p)
