"""Sequential verdicts for one commit: bug present, clean, or undecided.

The test is documented with its formulas in docs/statistics.md.  In short:

* **Bug present** needs a reproduction the false-positive rate cannot explain.
  With ``fp = 0`` (the default) one reproduction is proof; with ``fp > 0`` the
  binomial tail ``P(X >= k | n, fp)`` must fall to ``alpha``.
* **Clean** is the hard direction: "not seen in n trials" means little unless n
  is large relative to the reproduction rate, which we only *measured*.  So the
  commit is compared with a **reference** (the pooled trials of the commits judged
  to carry the bug, counted as Haldane's estimate for trials that stop at a
  reproduction; see judge.CommitTester.reference) by a
  one-sided exact conditional test (Fisher's): if the commit had the reference's
  rate, the chance that *all* ``K`` reproductions seen so far landed in the
  reference's ``m`` trials and none in the commit's ``n`` is
  ``C(m, K) / C(m + n, K)`` (general ``k``: the hypergeometric lower tail).
  CLEAN once that is ``<= alpha``.  Being conditional on ``K``, it controls the
  error whatever the true rate is: no point estimate of the rate is trusted, and
  a rate measured from few trials automatically demands more clean trials.
  The boundary is monotone (each clean trial lowers the p-value), so checking
  after every batch does not inflate the error.
* Otherwise UNDECIDED; at ``max_trials`` that becomes a skip.

The run's confidence is ``1 - sum(error bounds)`` over the verdicts the answer
depends on (union bound); ``alpha`` per verdict is ``(1 - confidence) / V``
with ``V`` the expected number of verdicts (``ceil(log2(range + 1)) + 2``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    BUG = "bug"  # the bug is present at this commit
    CLEAN = "clean"  # the bug is absent at this commit
    UNDECIDED = "undecided"  # not enough evidence yet
    SKIP = "skip"  # cannot be judged: does not build, or still undecided at the trial cap


@dataclass(frozen=True)
class Reference:
    """Pooled trials of commits known to carry the bug: ``reproduced`` of ``trials``."""

    reproduced: int
    trials: int

    @property
    def rate(self) -> float:
        return self.reproduced / self.trials if self.trials else 0.0

    def plus(self, reproduced: int, trials: int) -> Reference:
        return Reference(self.reproduced + reproduced, self.trials + trials)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    error: float
    """Bound on the probability that this verdict is wrong (p-value of the test
    that ended it; for UNDECIDED, the smaller of the two p-values so far)."""


def _lcomb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _upper(k: int, n: int, p: float) -> float:
    """P(X >= k) summed from the point mass at k upwards, for k above the mean (where the
    terms fall): by the terms' ratio, until they no longer change the sum."""
    term = math.exp(_lcomb(n, k) + k * math.log(p) + (n - k) * math.log1p(-p))
    total, odds = term, p / (1.0 - p)
    for i in range(k, n):
        term *= (n - i) / (i + 1) * odds
        total += term
        if term <= total * 1e-17:
            break
    return min(1.0, total)


def _lower(k: int, n: int, p: float) -> float:
    """P(X <= k) summed from the point mass at k downwards, for k below the mean."""
    term = math.exp(_lcomb(n, k) + k * math.log(p) + (n - k) * math.log1p(-p))
    total, odds = term, p / (1.0 - p)
    for i in range(k, 0, -1):
        term *= i / (n - i + 1) / odds
        total += term
        if term <= total * 1e-17:
            break
    return min(1.0, total)


def binom_tail_ge(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p).

    Summed on the side of the mean where the terms fall (:func:`_upper` above it, one
    minus :func:`_lower` below it), by the terms' ratio: every verdict, bound and simulated
    hunt calls this, so it must not cost n lgamma calls."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    if k > n * p:
        return _upper(k, n, p)
    return max(0.0, 1.0 - _lower(k - 1, n, p))


def clean_p_value(k: int, n: int, ref: Reference) -> float:
    """One-sided exact conditional p-value of "this commit reproduces as often as the reference".

    With ``K = k + ref.reproduced`` reproductions among ``N = n + ref.trials``
    trials, the probability that the commit's ``n`` trials hold ``k`` or fewer
    of them (hypergeometric lower tail).
    """
    total_k = k + ref.reproduced
    total_n = n + ref.trials
    if n == 0 or total_k == 0:
        return 1.0
    denom = _lcomb(total_n, n)
    p = 0.0
    for i in range(0, k + 1):
        if total_k - i > ref.trials or i > n:
            continue
        p += math.exp(_lcomb(total_k, i) + _lcomb(total_n - total_k, n - i) - denom)
    return min(1.0, p)


def bug_p_value(k: int, n: int, fp: float) -> float:
    """P-value of "these reproductions are only false positives"."""
    if k == 0:
        return 1.0
    if fp <= 0.0:
        return 0.0
    return binom_tail_ge(k, n, fp)


def decide(
    k: int, n: int, ref: Reference, alpha: float, fp: float = 0.0, bug_alpha: float | None = None
) -> Decision:
    """The verdict after ``k`` reproductions in ``n`` counted trials of one commit: BUG at
    ``bug_alpha`` (default ``alpha``), CLEAN at ``alpha``."""
    p_bug = bug_p_value(k, n, fp)
    if p_bug <= (alpha if bug_alpha is None else bug_alpha):
        return Decision(Verdict.BUG, p_bug)
    p_clean = clean_p_value(k, n, ref)
    if p_clean <= alpha:
        return Decision(Verdict.CLEAN, p_clean)
    return Decision(Verdict.UNDECIDED, min(p_bug, p_clean))


ANCHOR_SHARE = 0.5
"""The clean end is tested until a failure half as frequent as the bug at the reproducing
end would have shown there (endpoints.check_endpoints)."""


def anchor_trials(ref: Reference, alpha: float, cap: int) -> int:
    """Trials the clean end needs before its CLEAN verdict anchors a hunt.

    The ends are the anchors of every later verdict, and nothing after them re-tests them:
    a clean end that in truth fails (the bug at a low rate, or another failure that makes
    the hunted bug ambiguous) corrupts the whole run, its direction included.  So the clean
    end must have run ``n`` trials with ``(1 - ANCHOR_SHARE * rate)^n <= alpha``: a failure
    half as frequent as the bug at the reproducing end would have shown with probability
    ``1 - alpha``.  Capped at ``cap`` (--max-trials)."""
    if ref.reproduced == 0 or ref.trials == 0:
        return cap
    q = min(ANCHOR_SHARE * ref.rate, 0.999999)
    return min(cap, math.ceil(math.log(alpha) / math.log1p(-q)))


def decide_anchor(
    k: int,
    n: int,
    ref: Reference,
    alpha: float,
    anchor_alpha: float,
    fp: float = 0.0,
    cap: int = 200,
) -> Decision:
    """The clean end's verdict: :func:`decide` at the steps' ``alpha``, CLEAN only after
    :func:`anchor_trials` at ``anchor_alpha`` (the steps' alpha: core.ends_next says why).

    Why not the Fisher test itself at ``anchor_alpha``: at low rates it needs more than
    --max-trials (a simulation of 1200 runs turned 22 more of them into "ends alike",
    exit 3), while the trial count alone already carries the guarantee that matters here:
    a failure at half the reference's rate would have shown with 1 - anchor_alpha."""
    d = decide(k, n, ref, alpha, fp)
    if d.verdict == Verdict.CLEAN and n < anchor_trials(ref, anchor_alpha, cap):
        return Decision(Verdict.UNDECIDED, d.error)
    return d


def clean_trials_needed(ref: Reference, alpha: float, limit: int = 100_000) -> int:
    """Clean trials in a row a CLEAN verdict needs against ``ref`` (``limit`` if never)."""
    if ref.reproduced == 0:
        return limit
    lo, hi = 0, 1
    while clean_p_value(0, hi, ref) > alpha:
        lo, hi = hi, hi * 2
        if hi >= limit:
            return limit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if clean_p_value(0, mid, ref) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


MIN_REFERENCE_REPRODUCTIONS = 3
"""Below this the exact test can hardly ever say CLEAN: always calibrate further."""


def calibration_pays(
    ref: Reference,
    alpha: float,
    clean_tests_left: float,
    look: int = 8,
    strict_alpha: float | None = None,
    steady: bool = False,
) -> bool:
    """Should the reproducing endpoint get more reference trials?

    Yes while it has fewer than ``MIN_REFERENCE_REPRODUCTIONS``, and after that
    while ``look`` more trials there are expected to save more than ``look``
    trials over the clean verdicts still to come (each needs
    ``clean_trials_needed``).  Looking a few trials ahead, with the expected
    number of new reproductions interpolated, smooths the discreteness of the
    exact test.
    """
    if ref.reproduced < MIN_REFERENCE_REPRODUCTIONS:
        return True
    expected = ref.rate * look
    low = int(expected)
    frac = expected - low

    def saving(cost: Callable[[Reference], float]) -> float:
        """What ``look`` more reference trials are expected to save of ``cost``."""
        after = (1 - frac) * cost(ref.plus(low, look)) + frac * cost(ref.plus(low + 1, look))
        return cost(ref) - after

    saved = saving(lambda r: clean_trials_needed(r, alpha)) * clean_tests_left
    if strict_alpha is not None:
        # A better reference shortens the confirmation's strict test too: under
        # --steady-rate the exact test against it, otherwise the floor test at a sixth of
        # its rate.
        a_s = strict_alpha
        if steady:
            saved += saving(lambda r: clean_trials_needed(r, a_s))
        else:
            saved += saving(lambda r: strict_trials_needed(default_floor(r), a_s))
    return saved > look


def per_verdict_alpha(confidence: float, verdicts: int) -> float:
    """Error target for each verdict so that all ``verdicts`` hold with ``confidence``."""
    return (1.0 - confidence) / max(1, verdicts)


def bisect_steps(commits: int) -> int:
    """Steps a bisect takes to choose among ``commits`` commits: ceil(log2(commits + 1)),
    at least 1 (the driver's first estimate, each step's "steps left", `status`)."""
    return math.ceil(math.log2(max(2, commits + 1)))


def expected_verdicts(range_size: int) -> int:
    """Verdicts a bisect over ``range_size`` commits depends on: its steps + 2 endpoints."""
    return bisect_steps(range_size) + 2


@functools.lru_cache(maxsize=65536)
def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) confidence interval for a binomial rate."""
    if n == 0:
        return (0.0, 1.0)
    tail = (1.0 - level) / 2.0

    def solve(f: Callable[[float], float], target: float) -> float:  # f increases with p
        lo, hi = 0.0, 1.0
        for _ in range(40):
            mid = (lo + hi) / 2
            if f(mid) < target:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    lower = 0.0 if k == 0 else solve(lambda p: binom_tail_ge(k, n, p), tail)
    upper = 1.0 if k == n else solve(lambda p: binom_tail_ge(k + 1, n, p), 1.0 - tail)
    return (lower, upper)


# -- Statistics v2: soft steps, one strict test against a floor --------------------------

SOFT_ALPHA = 0.1
"""Error target of a bisect step's CLEAN verdict.  Steps may be wrong: a wrong CLEAN
sends git to a candidate that still carries the bug, which the strict confirmation
catches (it reproduces) and corrects.  Only the confirmation's strict test spends the
answer's error budget (docs/statistics.md, "Statistics v2").  0.1, not 0.05 (issue 18): a
CLEAN step then needs ln 10 / ln 20 = 0.77 of the trials.

Why not looser (issue 18's fourth round, measured with bench/where_trials_go.py
--soft-alpha and bench/bench_statistics.py): at 0.15-0.3 a hunt's trials change by -9 %
to +4 % (mostly -1 % to -6 %), but its wrong CLEANs send git the wrong way more often, and
each correction bisects commits it had not built: at 0.15 the distinct commits rose 0-5 % at
N = 100 and 2-24 % at N = 2713 (0.2: up to +23 %, +40-45 % under --steady-rate).  On QEMU
a build costs minutes and a trial about a second, so the trials saved do not pay for one
build more.
The clean end's anchor and a soft BUG over a background have their own level
(:data:`ANCHOR_ALPHA`), so this one can be studied alone."""

ANCHOR_ALPHA = 0.1
"""Level of the clean end's anchor (core.ends_next, :func:`anchor_trials`: a failure half
as frequent as the bug shows there with probability 0.9) and of a soft BUG verdict over a
background (core.verdict_of).  The same value as :data:`SOFT_ALPHA` today, but not the same
promise: the anchor guards what no later test looks at again (a failure of the clean end's
own that would make the hunted bug ambiguous), and a wrong BUG is not repaired by the strict
test as a wrong CLEAN is; so neither follows a study of the steps' level (where_trials_go.py
--soft-alpha).  The backport checks are ten times stricter than it
(bisect.confirm.CONFIRM_FACTOR)."""

FLOOR_FACTOR = 6.0
"""Default floor = the bug's pooled rate / FLOOR_FACTOR (:func:`default_floor`): the commits
next to the change may reproduce six times less often than the commits judged to carry it."""

FLOOR_LEVEL = 0.95
"""Level of the bounds the decisions quote (a background, the rate next to the change)."""


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p).

    Summed directly below the mean (where it is small and ``1 - tail`` would lose its
    digits: the strict test compares it with error targets of 1e-6), as one minus the
    upper tail above it."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    if k < n * p:
        return _lower(k, n, p)
    return max(0.0, 1.0 - _upper(k + 1, n, p))


def lower_bound(k: int, n: int, level: float = FLOOR_LEVEL) -> float:
    """One-sided lower confidence bound of a binomial rate (Clopper-Pearson)."""
    lo, _hi = clopper_pearson(k, n, 1.0 - 2.0 * (1.0 - level))
    return lo


def upper_bound(k: int, n: int, level: float = FLOOR_LEVEL) -> float:
    """One-sided upper confidence bound of a binomial rate (Clopper-Pearson)."""
    _lo, hi = clopper_pearson(k, n, 1.0 - 2.0 * (1.0 - level))
    return hi


def default_floor(pool: Reference, factor: float = FLOOR_FACTOR) -> float:
    """The lowest rate a bug-carrying commit is assumed to have: a sixth of ``pool``'s
    plain rate ``K/M``, the reproductions over the trials of every commit judged to carry
    the bug, counted as they stood (judge.CommitTester.pooled_counts).

    Why the plain rate, and not a lower estimate of it (issue 18, third round): the floor
    is what the answer assumes, not a bound it must hold, and what it costs is the strict
    test, ``ln(1/alpha) / -ln(1 - r)``, about ``M / K`` times ``6 ln(1/alpha)``.  The pool's
    trials mostly stop at a reproduction (a step at its first, the bug-side neighbour at its
    third), and for such trials ``M / K`` estimates ``1 / p`` without bias: the strict test
    then costs on average what it would at the true rate, the drift-aware bound's own term.
    Each lower estimate made it dearer on average: the 95 % lower bound (until issue 18)
    twice as dear at low rates, the median-unbiased estimate of Haldane's count (K-1)/(M-1)
    (issue 18's second round) about 1.15 times, in the mean over constant-rate hunts.  A
    floor above a sixth of the true rate, as a plain estimate is half of the time, matters
    only at a drift of a sixth, and there the bug-side neighbour's own 95 % lower bound
    takes over (core.floor_after_near) unless the neighbour sits just outside the drift;
    the calibration's "drift 1/6" kind is that edge (docs/statistics.md)."""
    return pool.rate / factor


def floor_p_value(k: int, n: int, floor: float) -> float:
    """P-value of "this commit carries the bug at a rate >= floor" after k of n.

    The binomial lower tail at the floor: for k = 0 it is (1 - floor)^n.  It holds
    whatever the commit's true rate is, as long as it is at least the floor: the
    assumption the report states."""
    if n == 0:
        return 1.0
    return binom_cdf(k, n, floor)


def decide_strict(k: int, n: int, floor: float, alpha: float, fp: float = 0.0) -> Decision:
    """The confirmation's verdict: BUG on reproductions fp cannot explain, CLEAN only when
    a bug at the floor rate would have shown with probability >= 1 - alpha."""
    p_bug = bug_p_value(k, n, fp)
    if p_bug <= alpha:
        return Decision(Verdict.BUG, p_bug)
    p_clean = floor_p_value(k, n, floor)
    if p_clean <= alpha:
        return Decision(Verdict.CLEAN, p_clean)
    return Decision(Verdict.UNDECIDED, min(p_bug, p_clean))


def strict_trials_needed(floor: float, alpha: float) -> int:
    """Clean trials in a row a strict CLEAN verdict needs: ceil(ln alpha / ln(1 - floor))."""
    if floor <= 0.0:
        return 10**9
    n = max(1, math.ceil(math.log(alpha) / math.log1p(-floor)))
    # The logs round both ways: settle on the first n the strict test itself accepts.
    while floor_p_value(0, n, floor) > alpha:
        n += 1
    while n > 1 and floor_p_value(0, n - 1, floor) <= alpha:
        n -= 1
    return n
