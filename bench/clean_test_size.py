"""The true error of a CLEAN verdict against a reference gathered up to reproductions
(issue 18, eighth round).

    .venv/bin/python bench/clean_test_size.py [--rates 0.05 0.1 0.25 0.5 0.86]
        [--reproductions 1 3 5 10] [--alphas 0.1 0.008] [--unconditional]

A hunt's reference is gathered by inverse sampling: the reproducing end is tested until it
has reproduced a few times, a bisect step that carries the bug stops at its first
reproduction, the bug-side neighbour at its third.  So ``r`` reproductions are fixed and
the trials ``N`` they took are what varies (negative binomial).  A commit judged against
that reference, with no reproduction of its own, is CLEAN after ``m*(N)`` clean trials
(:func:`bisect_driver.verdict.stats.clean_trials_needed` against
:func:`bisect_driver.verdict.core.haldane` of ``r`` in ``N``, as
judge.CommitTester.reference counts it).  Were that commit carrying the bug at the same rate
``q``, it would show nothing in them with probability ``(1 - q)^m*``: the verdict's true
error is

    size(q, r, alpha) = sum over n of P(N = n) * (1 - q)^m*(n)

computed here exactly (the sum runs until the rest of N's distribution is below 1e-12), not
simulated.  A test that keeps its promise has size <= alpha at every rate; the table prints
size / alpha.  The model is one part of a hunt, idealized: a real pool also holds the trials
a batch runs past a reproduction, and several commits' counts.

With --unconditional the same is computed for the cheaper test measured and rejected in the
eighth round (not shipped): the unconditional p-value ``max over p of (1 - p)^m *
P(Bin(N - 1, p) >= r - 1)``, which needs fewer trials than Fisher's at every reference (5 in
20, at 0.008: 19 clean trials instead of 30) but holds only for a reference of a fixed size.
The table shows what its size is when the reference's size is what the reproductions made it.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bisect_driver.verdict.core import haldane  # noqa: E402
from bisect_driver.verdict.stats import Reference, binom_tail_ge, clean_trials_needed  # noqa: E402

TAIL = 1e-12
"""The sum over N stops when less than this of its distribution is left."""


@functools.cache
def unconditional_p(k: int, n: int, m: int) -> float:
    """The rejected test's p-value for no reproduction in ``m`` trials against ``k`` in
    ``n``: the largest ``(1 - p)^m P(Bin(n, p) >= k)`` over the rate (log-concave in p:
    golden-section search)."""

    def log_chance(p: float) -> float:
        tail = binom_tail_ge(k, n, p)
        return m * math.log1p(-p) + math.log(tail) if tail > 0.0 else -math.inf

    lo, hi = 0.0, 1.0
    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = log_chance(a), log_chance(b)
    for _ in range(64):
        if fa < fb:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = log_chance(b)
        else:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = log_chance(a)
    return min(1.0, math.exp(max(fa, fb)))


def unconditional_trials_needed(ref: Reference, alpha: float, limit: int = 100_000) -> int:
    """Clean trials the rejected test needs against ``ref`` (``limit`` if never)."""
    m = 1
    while unconditional_p(ref.reproduced, ref.trials, m) > alpha:
        m *= 2
        if m >= limit:
            return limit
    lo, hi = m // 2, m
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if unconditional_p(ref.reproduced, ref.trials, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def shipped_trials_needed(ref: Reference, alpha: float) -> int:
    """What the shipped soft and steady-strict test needs (stats.clean_trials_needed)."""
    return clean_trials_needed(ref, alpha)


def size(q: float, r: int, alpha: float, unconditional: bool = False) -> tuple[float, float]:
    """(true error, mean clean trials) of a CLEAN verdict at error target ``alpha`` for a
    commit carrying the bug at rate ``q``, judged against a reference of ``r``
    reproductions at that rate, counted as the hunt counts it (core.haldane)."""
    need = unconditional_trials_needed if unconditional else shipped_trials_needed
    total = mean = 0.0
    left = 1.0
    n = r
    log_q, log_1q = math.log(q), math.log1p(-q)
    while left > TAIL:
        # P(N = n): the r-th reproduction at trial n.
        p_n = math.exp(
            math.lgamma(n) - math.lgamma(r) - math.lgamma(n - r + 1) + r * log_q + (n - r) * log_1q
        )
        m = need(haldane(Reference(r, n)), alpha)
        total += p_n * math.exp(m * log_1q)
        mean += p_n * m
        left -= p_n
        n += 1
    return total, mean


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[0.05, 0.1, 0.25, 0.5, 0.86])
    ap.add_argument("--reproductions", type=int, nargs="+", default=[1, 3, 5, 10])
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.1, 0.008])
    ap.add_argument(
        "--unconditional",
        action="store_true",
        help="also the rejected unconditional test (not shipped), beside the shipped one",
    )
    a = ap.parse_args()
    head = "| alpha | rate | reference reproductions | shipped: size / alpha | clean trials |"
    rule = "|---:|---:|---:|---:|---:|"
    if a.unconditional:
        head += " unconditional: size / alpha | clean trials |"
        rule += "---:|---:|"
    print(head)
    print(rule)
    for alpha in a.alphas:
        for q in a.rates:
            for r in a.reproductions:
                s, m = size(q, r, alpha)
                row = f"| {alpha:g} | {q:g} | {r} | {s / alpha:.2f} | {m:.1f} |"
                if a.unconditional:
                    su, mu = size(q, r, alpha, unconditional=True)
                    row += f" {su / alpha:.2f} | {mu:.1f} |"
                print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
