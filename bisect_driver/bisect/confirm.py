"""Confirmation: the one strict test the answer rests on, and repair when the steps misled git.

`git bisect` trusts every verdict.  With fp = 0 (and signatures matched) a
"bug" verdict is proof (a reproduction was seen), so the only verdicts that can
be wrong are "clean" ones - and a wrong one always lands right next to the
answer: in a fix hunt the misjudged commit *becomes* the candidate, in a
regression hunt the candidate's parent.  The bisect's steps are therefore soft
(stats.SOFT_ALPHA against the reproducing end), and the answer's whole error
budget goes to a strict test of that clean neighbour against the *floor* rate
(stats.decide_strict): CLEAN only if a bug reproducing at the floor rate would
have shown.  When it reproduces instead, its verdict is corrected in the
journal and in the bisect log, the log is replayed with `git bisect replay`,
and `git bisect run` goes on; round t spends delta / 2^(t+1) of the budget
(stats.spent_alpha), so any number of corrections stays within it.

The bug-carrying neighbour is topped up to NEAR_REPRODUCTIONS reproductions so
the report can show the rate next to the change, flag drift from the far end,
and call the run inconclusive when that rate is below the floor it assumed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import git

from bisect_driver.bisect.checks import Check, CheckStatus
from bisect_driver.bisect.direction import Direction
from bisect_driver.bisect.gitbisect import BisectOutcome, GitBisect
from bisect_driver.bisect.history import parents_in_range
from bisect_driver.probe.evidence import Evidence
from bisect_driver.store.journal import VerdictRecord
from bisect_driver.store.repo import is_ancestor
from bisect_driver.verdict.judge import CORRECTED, CommitTester
from bisect_driver.verdict.stats import (
    Verdict,
    lower_bound,
    spent_alpha,
    strict_trials_needed,
    upper_bound,
)

CONFIRM_FACTOR = 10
"""Error target of the backport checks' verdicts: ten times the steps' own."""
MAX_CORRECTIONS = 12
NEAR_REPRODUCTIONS = 3
"""Reproductions at the bug-carrying neighbour before its rate is reported."""
NEAR_MAX_REPRODUCTIONS = 10
"""Enough to pin the neighbour's rate within a factor of about 2.5 (95 %): past it the
strict test's floor is lowered to the measured lower bound instead."""


@dataclass
class Confirmation:
    checks: list[Check] = field(default_factory=list)
    corrected: list[str] = field(default_factory=list)
    """Commits whose verdict confirmation overturned."""
    errors: dict[str, float] = field(default_factory=dict)
    """Error bound of each confirmation verdict (commit -> p-value)."""
    contradiction: str | None = None
    """Set when a contradiction could not be repaired (e.g. non-monotonic history)."""
    rounds: list[list[Check]] = field(default_factory=list)
    """The checks of every confirmation round (a FAIL round led to a correction)."""
    floor: float = 0.0
    """The rate a bug-carrying commit is assumed to reach at least."""
    spent: float = 0.0
    """Error budget of the rounds before the last (each may have passed wrongly)."""
    near: tuple[int, int] = (0, 0)
    """(reproduced, counted) at the bug-carrying neighbour(s) of the answer."""
    inconclusive: str | None = None
    """Why the strict test could not decide, or the rate next to the change is below the floor."""
    budget: float = 0.0
    """delta: what the strict tests of all rounds together may spend (the claimed error)."""

    @property
    def confirmed(self) -> bool:
        return (
            not self.contradiction
            and not self.inconclusive
            and all(c.status is CheckStatus.PASS for c in self.checks)
        )

    @property
    def error(self) -> float:
        """Bound on the chance that the answer is wrong (under the floor assumption)."""
        return min(1.0, self.spent + sum(self.errors.values()))


def confirm_run_id(run_id: str) -> str:
    return f"{run_id}:confirm"


def strict_tester(
    tester: CommitTester, run_id: str, alpha: float | None = None, floor: float | None = None
) -> CommitTester:
    """The confirmation's tester: same trials, its own verdicts (run id ``RUN:confirm``).

    With ``floor`` its CLEAN verdicts are strict against that rate and it may run as many
    trials as the strict test needs; without, it is the steps' test ten times stricter
    (used for backports)."""
    if floor is None:
        return tester.with_alpha(confirm_run_id(run_id), tester.policy.alpha / CONFIRM_FACTOR)
    assert alpha is not None
    needed = strict_trials_needed(floor, alpha) + tester.runner.jobs
    cap = max(tester.policy.max_trials * 2, needed)
    return tester.with_alpha(confirm_run_id(run_id), alpha, floor=floor, max_trials=cap)


def retest(
    tester: CommitTester, direction: Direction, candidate: str, parents: list[str]
) -> tuple[Confirmation, str | None]:
    """Judge candidate and parents under the stricter confirmation tester.

    Returns the confirmation and the first commit whose verdict contradicts
    (None when everything agrees).
    """
    conf = Confirmation()
    bad = None
    for side, commits in (("old", parents), ("new", [candidate])):
        want = direction.expected(side)
        for sha in commits:
            rec = tester.judge(sha)
            if want == Verdict.CLEAN or tester.policy.fp > 0:
                conf.errors[sha] = rec.error
            label = (
                f"{'parent' if side == 'old' else 'candidate'} {sha[:12]}"
                f" {'reproduces' if want == Verdict.BUG else 'is clean'}"
            )
            if rec.verdict == want:
                conf.checks.append(
                    Check(
                        label,
                        CheckStatus.PASS,
                        f"{rec.reproduced}/{rec.trials}, error <= {rec.error:.2g}",
                    )
                )
            elif rec.verdict == Verdict.SKIP:
                conf.checks.append(Check(label, CheckStatus.NOT_RUN, rec.reason))
            else:
                conf.checks.append(
                    Check(label, CheckStatus.FAIL, f"{rec.reproduced}/{rec.trials}: {rec.verdict}")
                )
                bad = bad or sha
    return conf, bad


def corrected_log(
    log: str,
    commit: str,
    terms: tuple[str, str],
    new_verdict_is_old: bool,
    is_ancestor: Callable[[str, str], bool],
) -> tuple[str, list[str]]:
    """The bisect log with ``commit``'s mark flipped to the corrected term, and the marks
    the correction contradicts dropped; returns (log, the commits whose marks were dropped).

    The history is assumed monotonic: a commit corrected to the old term makes every
    ancestor old too, so a new-term mark on an ancestor (a soft verdict that was just as
    wrong, typically in a stretch where the rate is low) can no longer stand; and a commit
    corrected to the new term likewise contradicts old-term marks on its descendants.
    Left in, they make `git bisect replay` fail ("was both good and bad")."""
    old_term, new_term = terms
    term = old_term if new_verdict_is_old else new_term
    opposite = new_term if new_verdict_is_old else old_term
    mark = re.compile(
        rf"^git bisect ({re.escape(old_term)}|{re.escape(new_term)}) ([0-9a-f]{{40}})$"
    )
    out: list[str] = []
    dropped: list[str] = []
    for line in log.splitlines():
        m = mark.match(line)
        if m and m.group(2) == commit:
            line = f"git bisect {term} {commit}"
        elif m and m.group(1) == opposite:
            sha = m.group(2)
            implied = is_ancestor(sha, commit) if new_verdict_is_old else is_ancestor(commit, sha)
            if implied:
                if sha not in dropped:
                    dropped.append(sha)
                continue
        out.append(line)
    return "\n".join(out) + "\n", dropped


def _undecided(conf: Confirmation) -> list[Check]:
    return [c for c in conf.checks if c.status is CheckStatus.NOT_RUN]


def near_rate(tester: CommitTester, commits: list[str], floor: float) -> tuple[int, int]:
    """Measure the bug-carrying neighbour(s) until their rate is known to be above or below
    the floor; return (k, n).

    The bisect stopped them at their first reproduction, which says nothing of their
    rate.  The answer's confidence assumes a bug-carrying commit next to the change
    reproduces at least at the floor, so this commit, the one that does carry the bug
    there, is tested until its 95 % lower bound is at least the floor (the assumption
    holds here) or its 95 % upper bound is below it (it does not: inconclusive), at least
    NEAR_REPRODUCTIONS reproductions, and at most the strict tester's trial cap."""
    k = n = 0
    for sha in commits:
        built = tester.build(sha)
        ev = tester.runner.evidence(sha)

        def settled(e: Evidence) -> bool:
            if e.reproduced < NEAR_REPRODUCTIONS:
                return False
            return (
                e.reproduced >= NEAR_MAX_REPRODUCTIONS
                or lower_bound(e.reproduced, e.counted) >= floor
                or upper_bound(e.reproduced, e.counted) < floor
            )

        while (
            built.ok
            and built.artifact_dir is not None
            and not settled(ev)
            and ev.counted < tester.policy.max_trials
            and ev.trials < tester.policy.max_attempts
        ):
            tester.progress(sha, ev, "measuring")
            ev = tester.run_batch(sha, built.artifact_dir)
        k, n = k + ev.reproduced, n + ev.counted
    return k, n


def confirm_answer(
    run_id: str,
    tester: CommitTester,
    repo: git.Repo,
    direction: Direction,
    old_end: str,
    bisect: GitBisect,
    step: list[str],
    outcome: BisectOutcome,
    say: Callable[[str], None],
    floor: float,
    delta: float,
    first_parent: bool = False,
) -> tuple[Confirmation, BisectOutcome]:
    """Strictly retest the answer's clean neighbour; correct a misleading verdict and replay."""
    journal = tester.journal
    rounds: list[list[Check]] = []
    corrected: list[str] = []
    conf = Confirmation(budget=delta)
    spent = 0.0
    for attempt in range(MAX_CORRECTIONS + 1):
        alpha = spent_alpha(delta, attempt)
        strict = strict_tester(tester, run_id, alpha, floor)
        cand = outcome.candidates[0]
        parents = parents_in_range(repo, cand, old_end)
        if first_parent:
            # Only the first-parent line was bisected: a merge answer's other parents are
            # the side branch, which may well carry the change already.
            parents = parents[:1]
        say(
            f"confirming {cand[:12]} (parents {', '.join(x[:12] for x in parents)}):"
            f" strict test at floor rate {floor:.3g}, error <= {alpha:.2g}"
            f" (~{strict_trials_needed(floor, alpha)} clean trials)"
        )
        conf, wrong = retest(strict, direction, cand, parents)
        conf.budget = delta
        tested = floor
        if wrong is None and not _undecided(conf):
            # The floor holds next to the change?  Measure the bug-carrying neighbour; a
            # rate there below the floor (but not clearly) lowers the floor of this test.
            bug_side = parents if direction is Direction.FIX else [cand]
            near = near_rate(strict, bug_side, floor)
            k, n = near
            if not n or upper_bound(k, n) < floor:
                conf.near, conf.floor, conf.spent = near, floor, spent
                conf.rounds, conf.corrected = [*rounds, conf.checks], corrected
                conf.inconclusive = (
                    f"the bug-carrying commits next to the change reproduce {k}/{n}"
                    f" (at most {upper_bound(k, n):.3g}), below the floor {floor:.3g} the"
                    " confidence assumes; set --min-rate lower (more trials) to decide"
                )
                return conf, outcome
            tested = min(floor, lower_bound(k, n))
            if tested < floor:
                say(
                    f"the rate next to the change is {k}/{n}: the strict test goes on at its"
                    f" lower bound {tested:.3g} (~{strict_trials_needed(tested, alpha)} trials)"
                )
                clean_side = [cand] if direction is Direction.FIX else parents
                for sha in clean_side:
                    journal.delete_verdict(strict.run_id, sha)
                strict = strict_tester(tester, run_id, alpha, tested)
                conf, wrong = retest(strict, direction, cand, parents)
                conf.budget = delta
            conf.near = near
        rounds.append(conf.checks)
        conf.rounds, conf.corrected, conf.floor, conf.spent = rounds, corrected, tested, spent
        if wrong is None:
            if _undecided(conf):
                undecided = _undecided(conf)[0]
                conf.inconclusive = (
                    f"{undecided.name}: {undecided.detail} (a bug at the floor rate"
                    f" {tested:.3g} needs ~{strict_trials_needed(tested, alpha)} clean trials)"
                )
            return conf, outcome
        main = journal.verdict(run_id, wrong)
        fresh = journal.verdict(strict.run_id, wrong)
        if main is None or fresh is None or main.verdict == fresh.verdict:
            conf.contradiction = (
                f"{wrong[:12]} behaves unlike its place in the history (not a misjudged"
                " verdict): the bug may have come and gone more than once"
            )
            say(conf.contradiction)
            return conf, outcome
        say(
            f"confirmation overturns {wrong[:12]}: {main.verdict} -> {fresh.verdict};"
            " replaying the bisect with the corrected verdict"
        )
        journal.record_verdict(
            run_id,
            VerdictRecord(
                wrong,
                fresh.verdict,
                fresh.trials,
                fresh.reproduced,
                fresh.error,
                f"{CORRECTED} (was {main.verdict})",
                time.time(),
            ),
        )
        journal.event(run_id, "corrected", f"{wrong} {main.verdict} -> {fresh.verdict}")
        is_old = direction.is_old(Verdict(fresh.verdict))
        log, dropped = corrected_log(
            outcome.log, wrong, direction.terms, is_old, lambda a, b: is_ancestor(repo, a, b)
        )
        for sha in dropped:
            # Judged again by the step (its trials are kept), against the lowered reference.
            journal.delete_verdict(run_id, sha)
            journal.event(run_id, "invalidated", f"{sha} contradicts the corrected {wrong}")
        if dropped:
            say(
                f"the correction contradicts the verdicts of {len(dropped)} other commit(s)"
                f" ({', '.join(x[:12] for x in dropped)}): they are judged again"
            )
        finished = bisect.replay(log, direction.terms)
        outcome = finished or bisect.run(step, direction.terms)
        corrected.append(wrong)
        spent += alpha
        if len(outcome.candidates) != 1:
            return conf, outcome
    conf.contradiction = f"still contradicting after {MAX_CORRECTIONS} corrections"
    return conf, outcome
