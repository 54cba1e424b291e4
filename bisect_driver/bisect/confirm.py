"""Confirmation: the one strict test the answer rests on, and repair when the steps misled git.

`git bisect` trusts every verdict.  With fp = 0 (and signatures matched) a
"bug" verdict is proof (a reproduction was seen), so the only verdicts that can
be wrong are "clean" ones - and a wrong one always lands right next to the
answer: in a fix hunt the misjudged commit *becomes* the candidate, in a
regression hunt the candidate's parent.  The bisect's steps are therefore soft
(stats.SOFT_ALPHA against the pool of bug verdicts), and the answer's whole error
budget goes to a strict test of that clean neighbour against the *floor* rate
(stats.decide_strict): CLEAN only if a bug reproducing at the floor rate would
have shown.  When it reproduces instead, its verdict is corrected in the
journal and in the bisect log, the log is replayed with `git bisect replay`,
and `git bisect run` goes on; round 0 spends 0.8 delta of the budget, round
t >= 1 0.2 delta / 2^t (core.ErrorBudget.round), so any number of corrections stays
within it.

The bug-carrying neighbour is topped up to NEAR_REPRODUCTIONS reproductions so
the report can show the rate next to the change, flag drift from the far end,
and call the run inconclusive when that rate is below the floor it assumed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import git

from bisect_driver.bisect.checks import Check, CheckStatus
from bisect_driver.bisect.direction import Direction
from bisect_driver.bisect.gitbisect import BisectOutcome
from bisect_driver.bisect.history import parents_in_range
from bisect_driver.store.journal import VerdictRecord
from bisect_driver.store.repo import is_ancestor
from bisect_driver.verdict.core import (
    MAX_CAP_FACTOR,
    MAX_CORRECTIONS,
    NEAR_REPRODUCTIONS,
    STEADY_DRIFT_ALPHA,
    Apart,
    ErrorBudget,
    Judged,
    Reason,
    background_bounds,
    background_look,
    background_of,
    background_to_measure,
    drifts_from,
    floor_after_near,
    is_correction,
    near_settled,
    signature_ambiguity,
    strict_cap,
    tell_apart,
    walked_to_the_clean_end,
)
from bisect_driver.verdict.judge import CommitTester
from bisect_driver.verdict.stats import Verdict, clean_trials_needed, strict_trials_needed

CONFIRM_FACTOR = 10
"""Error target of the backport checks' verdicts: ten times stricter than the clean end's
anchor (stats.ANCHOR_ALPHA, 0.1; the steps' level too, but a study of the steps' level,
where_trials_go.py --soft-alpha, leaves it alone)."""


class History(Protocol):
    """What the confirmation asks of history (git in a run, a line of commits in the
    calibration simulator)."""

    def parents_in_range(self, sha: str, old: str) -> list[str]: ...

    def is_ancestor(self, a: str, b: str) -> bool: ...


class Bisector(Protocol):
    """What the confirmation asks of the bisect engine (`git bisect` in a run)."""

    def replay(self, log_text: str, terms: tuple[str, str]) -> BisectOutcome | None: ...

    def run(self, cmd: list[str], terms: tuple[str, str]) -> BisectOutcome: ...


@dataclass(frozen=True)
class GitHistory:
    """History as the user's repository tells it."""

    repo: git.Repo

    def parents_in_range(self, sha: str, old: str) -> list[str]:
        return parents_in_range(self.repo, sha, old)

    def is_ancestor(self, a: str, b: str) -> bool:
        return is_ancestor(self.repo, a, b)


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
    background: tuple[int, int] | None = None
    """Set when a correction uncovered a background: the clean end fails too (failures,
    counted trials there); the hunt bisects again with it (hunt.stage)."""

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
    trials as the strict test needs; without, it is the anchor's level ten times stricter
    (used for backports)."""
    if floor is None:
        level = tester.policy.anchor_level / CONFIRM_FACTOR
        return tester.with_alpha(confirm_run_id(run_id), level)
    assert alpha is not None
    p = tester.policy
    cap = strict_cap(p.max_trials, floor + p.background_lo, alpha, tester.runner.jobs, p.fp > 0)
    if p.steady:
        # The exact test against the reference (core.verdict_of) needs what it needs.
        need = clean_trials_needed(tester.reference(), alpha, limit=MAX_CAP_FACTOR * cap)
        cap = max(cap, need + tester.runner.jobs)
    return tester.with_alpha(confirm_run_id(run_id), alpha, floor=floor, max_trials=cap)


def retest(
    tester: CommitTester, direction: Direction, candidates: list[str], parents: list[str]
) -> tuple[Confirmation, str | None]:
    """Judge the answer's neighbours under the strict confirmation tester: the
    candidate(s) on the new side, their parents outside the answer on the old side.

    For a candidate set (skipped commits border the answer) ``candidates`` are the set's
    tested members.  Returns the confirmation and the first commit whose verdict
    contradicts (None when everything agrees)."""
    conf = Confirmation()
    bad = None
    sides = [("old", parents), ("new", candidates)]
    # The bug side first: its reproductions may show a face of the bug not seen before,
    # which then counts on the clean side too (probe.trials.TrialRunner.bug).
    sides.sort(key=lambda side: direction.expected(side[0]) != Verdict.BUG)
    for side, commits in sides:
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


def neighbours(
    tester: CommitTester,
    run_id: str,
    history: History,
    candidates: list[str],
    old_end: str,
    first_parent: bool,
) -> tuple[list[str], list[str]]:
    """The answer's neighbours the strict test judges: (tested candidates, parents).

    One candidate: itself and its parents in range.  A candidate set: the members the
    bisect judged (the others were skipped: nothing can be said of them), and the
    parents of members that lie outside the set: the set's clean side gets the same
    strict test as a single candidate's."""
    inside = set(candidates)
    tested = [c for c in candidates if len(candidates) == 1 or _judged(tester, run_id, c)]
    parents: list[str] = []
    for c in candidates:
        ps = history.parents_in_range(c, old_end)
        if first_parent:
            # Only the first-parent line was bisected: a merge answer's other parents are
            # the side branch, which may well carry the change already.
            ps = ps[:1]
        parents += [p for p in ps if p not in inside and p not in parents]
    return tested, parents


def faces_in_doubt(
    tester: CommitTester, run_id: str, bug_side: list[str], clean_side: list[str]
) -> str | None:
    """core.signature_ambiguity of the answer's neighbours: None when the answer does not
    depend on which failures are the bug (or the probe itself says what the bug is)."""
    runner = tester.runner
    bug = runner.bug
    if bug is None or bug.any_signature:
        return None
    counted: dict[str, int] = {}
    for sha in bug_side:
        for t in runner.records(sha):
            if t.outcome == "reproduced" and t.is_bug is None and bug.matches(t.signature):
                key = t.signature or ""  # unsigned: nothing tells it from the core
                counted[key] = counted.get(key, 0) + 1
            elif t.is_bug is not None:
                return None  # the probe's own verdict (--signature): the user said
    others = {
        t.signature
        for sha in clean_side
        for t in runner.records(sha)
        if t.outcome == "reproduced" and t.signature and not bug.matches(t.signature)
    }
    beside: set[str] = set()
    judged = {v.commit for v in tester.journal.verdicts(run_id)}
    judged |= {v.commit for v in tester.journal.verdicts(confirm_run_id(run_id))}
    for sha in judged:
        records = runner.records(sha)
        sigs = {t.signature for t in records if t.outcome == "reproduced" and t.signature}
        if sigs & bug.signatures:
            beside |= sigs - bug.signatures
    return signature_ambiguity(counted, others, {*bug.signatures, ""}, beside)


def _judged(tester: CommitTester, run_id: str, sha: str) -> bool:
    rec = tester.journal.verdict(run_id, sha)
    return rec is not None and rec.verdict in (Verdict.BUG, Verdict.CLEAN)


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


def near_rate(
    tester: CommitTester,
    commits: list[str],
    floor: float,
    steady: bool = False,
    low: float | None = None,
) -> tuple[int, int]:
    """Measure the bug-carrying neighbour(s) until their rate is known to be above or below
    the floor (core.near_settled), or under --steady-rate until NEAR_REPRODUCTIONS
    (enough to see a drift: core.drifts_from); return (k, n).

    The bisect stopped them at their first reproduction, which says nothing of their
    rate.  The answer's confidence assumes a bug-carrying commit next to the change
    reproduces at least at the floor, so this commit, the one that does carry the bug
    there, is measured, at most up to the strict tester's trial cap."""
    k = n = 0
    for sha in commits:
        built = tester.build(sha)
        ev = tester.runner.evidence(sha)
        while (
            built.ok
            and built.artifact_dir is not None
            and not (
                ev.reproduced >= NEAR_REPRODUCTIONS
                if steady
                else near_settled(ev.reproduced, ev.counted, floor, low)
            )
            and ev.counted < tester.policy.max_trials
            and ev.trials < tester.policy.max_attempts
        ):
            tester.progress(sha, ev, "measuring")
            ev = tester.run_batch(sha, built.artifact_dir)
        k, n = k + ev.reproduced, n + ev.counted
    return k, n


@dataclass
class Confirmer:
    """The confirmation of one run's answer, in small named steps (:meth:`confirm` strings
    them together): a round of strict retests, the measurement of the bug side, the
    correction and replay of a misjudged verdict.  Every decision is verdict.core's."""

    run_id: str
    tester: CommitTester
    history: History
    direction: Direction
    old_end: str
    bisect: Bisector
    step: list[str]
    say: Callable[[str], None]
    floor: float
    budget: ErrorBudget
    floor_low: float | None = None
    """The least the floor may be (core.Floor.low): below it the rate next to the change
    makes the run inconclusive; None: the floor itself."""
    first_parent: bool = False
    new_end: str = ""
    """The new end: with ``old_end``, where to look for a background (core.background_look)."""
    sharpened: bool = False
    """The background was measured again for an undecided strict test (once a run)."""

    def confirm(self, outcome: BisectOutcome) -> tuple[Confirmation, BisectOutcome]:
        """Strictly retest the answer's clean neighbour (one candidate or a candidate set);
        correct a misleading verdict and replay, at most MAX_CORRECTIONS times."""
        rounds: list[list[Check]] = []
        corrected: list[str] = []
        spent = 0.0
        for attempt in range(MAX_CORRECTIONS + 1):
            conf, wrong = self.round(attempt, outcome)
            conf.corrected, conf.spent = corrected, spent
            if conf.near == (0, 0) and conf.inconclusive and not conf.checks:
                conf.rounds = rounds
                return conf, outcome  # nothing of the set could be tested
            rounds.append(conf.checks)
            conf.rounds = rounds
            if wrong is None or conf.inconclusive:
                _c, _p, _bug, clean_side = self.sides(outcome)
                walked = walked_to_the_clean_end(len(corrected), clean_side, self.ends()[1])
                if walked and not conf.contradiction:
                    conf.contradiction = walked
                    self.say(walked)
                return conf, outcome
            behind = self.background_behind(wrong)
            if isinstance(behind, str):
                conf.contradiction = behind
                self.say(behind)
                return conf, outcome
            if behind is not None:
                conf.background = behind
                return conf, outcome
            replayed = self.correct(wrong, outcome)
            if isinstance(replayed, str):
                conf.contradiction = replayed
                self.say(replayed)
                return conf, outcome
            outcome = replayed
            corrected.append(wrong)
            spent += self.budget.round(attempt)
        conf.contradiction = f"still contradicting after {MAX_CORRECTIONS} corrections"
        return conf, outcome

    def sides(self, outcome: BisectOutcome) -> tuple[list[str], list[str], list[str], list[str]]:
        """(tested candidates, parents, bug side, clean side) of the answer."""
        cands, parents = neighbours(
            self.tester,
            self.run_id,
            self.history,
            outcome.candidates,
            self.old_end,
            self.first_parent,
        )
        fix = self.direction is Direction.FIX
        return cands, parents, (parents if fix else cands), (cands if fix else parents)

    def round(self, attempt: int, outcome: BisectOutcome) -> tuple[Confirmation, str | None]:
        """One round: the strict retest; when it agrees, the bug side's rate and the floor
        it leaves (the clean side again at a lowered floor, or when the bug showed a new
        face meanwhile); then what could still make the answer unconfirmed."""
        alpha = self.budget.round(attempt)
        cands, parents, bug_side, clean_side = self.sides(outcome)
        if not cands:
            conf = Confirmation(budget=self.budget.delta, floor=self.floor)
            conf.inconclusive = "no commit of the candidate set could be tested"
            return conf, None
        self._announce(outcome, cands, parents, alpha)
        strict = strict_tester(self.tester, self.run_id, alpha, self.floor)
        bug_before = strict.runner.bug
        conf, wrong = self.retest(alpha, self.floor, cands, parents, clean_side)
        conf.budget, conf.floor = self.budget.delta, self.floor
        if wrong is not None or _undecided(conf):
            return self._settle(conf, wrong, alpha, bug_side, clean_side)
        if self.tester.policy.steady:
            # No drift, by the user's word: the bug side is measured only to check it.
            conf.near = near_rate(strict, bug_side, self.floor, steady=True)
            conf, wrong = self._settle(conf, wrong, alpha, bug_side, clean_side)
            others = self.tester.pooled_reference(without=bug_side)
            drift = drifts_from(conf.near, others, STEADY_DRIFT_ALPHA)
            conf.inconclusive = conf.inconclusive or drift
            return conf, wrong
        near = near_rate(strict, bug_side, self.floor, low=self.floor_low)
        check = floor_after_near(near, self.floor, self.floor_low)
        if check.inconclusive:
            conf.near, conf.inconclusive = near, check.inconclusive
            return conf, None
        grew = strict.runner.bug != bug_before
        if grew:
            self.say("the bug showed another face while it was measured: the clean side again")
        if check.floor < self.floor:
            k, n = near
            self.say(
                f"the rate next to the change is {k}/{n}: the strict test goes on at its"
                f" lower bound {check.floor:.3g}"
                f" (~{strict_trials_needed(check.floor, alpha)} trials)"
            )
        if check.floor < self.floor or grew:
            for sha in clean_side:
                self.tester.journal.delete_verdict(strict.run_id, sha)
            conf, wrong = self.retest(alpha, check.floor, cands, parents, clean_side)
            conf.budget = self.budget.delta
        conf.floor, conf.near = check.floor, near
        return self._settle(conf, wrong, alpha, bug_side, clean_side)

    def retest(
        self, alpha: float, floor: float, cands: list[str], parents: list[str], clean: list[str]
    ) -> tuple[Confirmation, str | None]:
        """:func:`retest` under the strict tester at ``floor``; once more when it was
        undecided on a background that is then measured better (:meth:`sharpen`)."""
        strict = strict_tester(self.tester, self.run_id, alpha, floor)
        conf, wrong = retest(strict, self.direction, cands, parents)
        if wrong is None and _undecided(conf) and self.sharpen(strict, clean):
            strict = strict_tester(self.tester, self.run_id, alpha, floor)
            conf, wrong = retest(strict, self.direction, cands, parents)
        return conf, wrong

    def sharpen(self, strict: CommitTester, clean_side: list[str]) -> bool:
        """A strict test undecided on the clean side while a background is known: measure
        the background at the clean end as well as that neighbour
        (core.background_to_measure), raise the run's bounds and forget the undecided
        verdicts.  Whether anything changed (at most once a run)."""
        t, run = self.tester, strict.run_id
        if t.policy.fp <= 0 or self.sharpened or not self.new_end:
            return False
        undecided = [
            sha
            for sha in clean_side
            if (rec := t.journal.verdict(run, sha)) is not None
            and Reason.of(rec.reason) is Reason.UNDECIDED
        ]
        if not undecided:
            return False
        self.sharpened = True
        _bug_end, clean_end = self.ends()
        counted = max(t.runner.evidence(sha).counted for sha in undecided)
        built = t.build(clean_end)
        cap = strict.policy.max_trials
        end = t.runner.evidence(clean_end)
        more = background_to_measure(counted, end.counted, cap)
        if not more or not built.ok or built.artifact_dir is None:
            return False
        self.say(
            f"the strict test of {', '.join(x[:12] for x in undecided)} is undecided on the"
            f" background: measuring it at the clean end {clean_end[:12]}"
            f" ({end.counted + more} trials)"
        )
        while more and end.trials < strict.policy.max_attempts:
            t.progress(clean_end, end, "measuring the background")
            end = t.run_batch(clean_end, built.artifact_dir)
            more = background_to_measure(counted, end.counted, cap)
        counts = background_of((end.reproduced, end.counted))
        t.adopt_background(counts)
        lo, hi = background_bounds(counts)
        self.say(
            f"background at the clean end: {end.reproduced}/{end.counted}"
            f" ({lo:.3g}-{hi:.3g}, 95 %); the strict test again"
        )
        for sha in undecided:
            t.journal.delete_verdict(run, sha)
        return True

    def _announce(
        self, outcome: BisectOutcome, cands: list[str], parents: list[str], alpha: float
    ) -> None:
        if len(outcome.candidates) == 1:
            what = cands[0][:12]
        else:
            tested = ", ".join(c[:12] for c in cands)
            what = f"the set of {len(outcome.candidates)} (tested {tested})"
        if self.tester.policy.steady:
            ref = self.tester.reference()
            test = (
                f"exact test against the bug-carrying commits ({ref.reproduced}/{ref.trials}),"
                f" error <= {alpha:.2g} (~{clean_trials_needed(ref, alpha)} clean trials)"
            )
        else:
            test = (
                f"strict test at floor rate {self.floor:.3g}, error <= {alpha:.2g}"
                f" (~{strict_trials_needed(self.floor, alpha)} clean trials)"
            )
        self.say(f"confirming {what} (parents {', '.join(x[:12] for x in parents)}): {test}")

    def _settle(
        self,
        conf: Confirmation,
        wrong: str | None,
        alpha: float,
        bug_side: list[str],
        clean_side: list[str],
    ) -> tuple[Confirmation, str | None]:
        """Why a round that found no contradiction still claims nothing: a neighbour the
        strict test could not decide, or an answer that depends on which failures are the
        bug (core.signature_ambiguity)."""
        if wrong is not None:
            return conf, wrong
        undecided = _undecided(conf)
        if undecided:
            first = undecided[0]
            conf.inconclusive = (
                f"{first.name}: {first.detail} (a bug at the floor rate {conf.floor:.3g}"
                f" needs ~{strict_trials_needed(conf.floor, alpha)} clean trials)"
            )
        else:
            conf.inconclusive = faces_in_doubt(self.tester, self.run_id, bug_side, clean_side)
        return conf, None

    def ends(self) -> tuple[str, str]:
        """(bug end, clean end)."""
        fix = self.direction is Direction.FIX
        return (self.old_end, self.new_end) if fix else (self.new_end, self.old_end)

    def background_behind(self, wrong: str) -> tuple[int, int] | str | None:
        """Before a correction toward the clean end is believed, look for a background
        there (core.background_look): None when the correction stands; the background's
        counts (failures, counted trials at the clean end) when it shows the bug's failure
        too at a rate told apart from the bug end's (core.tell_apart); why not, when the
        ends then cannot be told apart."""
        t = self.tester
        fresh = t.journal.verdict(confirm_run_id(self.run_id), wrong)
        if not self.new_end or fresh is None or fresh.verdict != Verdict.BUG or t.policy.fp > 0:
            return None  # with a background known, the strict BUG verdict already beat it
        bug_end, clean_end = self.ends()
        seen = t.runner.evidence(wrong)
        # The rate a background would have: the trials after the step that cleared the
        # commit (core.fresh_trials), not that step's clean run, which the bisect chose.
        # Under --steady-rate every trial counts, a look about four times as long: there it
        # is the only guard against a background the clean end hid (no floor is lowered),
        # and with the shorter look its rare-flake calibration claimed 3 wrong of 62
        # against 1 of 67 (docs/statistics.md, "Corrections: what they cost").
        k0, n0 = (0, 0) if t.policy.steady else t.cleared_by_step(wrong)
        built = t.build(clean_end)
        if not built.ok or built.artifact_dir is None:
            return None
        p = t.policy
        said = False
        while True:
            end = t.runner.evidence(clean_end)
            more = background_look(
                seen.reproduced - k0,
                seen.counted - n0,
                (end.reproduced, end.counted),
                p.fp,
                p.max_trials,
            )
            if end.reproduced:
                break
            if not more or end.trials >= p.max_attempts:
                return None
            if not said:
                said = True
                self.say(
                    f"{wrong[:12]} reproduced {seen.reproduced}/{seen.counted} where the bisect"
                    f" saw none: looking for the same failure at the clean end"
                    f" {clean_end[:12]} ({end.counted + more} trials)"
                )
            t.progress(clean_end, end, "looking for a background")
            t.run_batch(clean_end, built.artifact_dir)
        bug_built = t.build(bug_end)
        alpha = min(p.alpha, p.anchor_alpha or p.alpha)
        while True:
            ev_bug, ev_clean = t.runner.evidence(bug_end), t.runner.evidence(clean_end)
            pair = (ev_bug.reproduced, ev_bug.counted), (ev_clean.reproduced, ev_clean.counted)
            apart = tell_apart(*pair, alpha, p.max_trials)
            if apart is Apart.OLD:  # the bug end fails significantly more often
                counts = background_of(pair[1])
                lo, hi = background_bounds(counts)
                self.say(
                    f"the clean end {clean_end[:12]} fails too ({pair[1][0]}/{pair[1][1]}):"
                    f" a background at {lo:.3g}-{hi:.3g} (95 %) the ends' trials did not"
                    " show; bisecting again with it"
                )
                return counts
            if apart is not Apart.PENDING or not (bug_built.ok and bug_built.artifact_dir):
                return (
                    f"the clean end {clean_end[:12]} fails too ({pair[1][0]}/{pair[1][1]},"
                    f" the bug end {pair[0][0]}/{pair[0][1]}) and the two cannot be told"
                    " apart: nothing to bisect"
                )
            for sha, built_end in ((bug_end, bug_built), (clean_end, built)):
                assert built_end.artifact_dir is not None
                t.progress(sha, t.runner.evidence(sha), "telling the ends apart")
                t.run_batch(sha, built_end.artifact_dir)

    def correct(self, wrong: str, outcome: BisectOutcome) -> BisectOutcome | str:
        """Overturn the step's verdict of ``wrong`` (core.is_correction), drop the marks it
        contradicts, replay the corrected log and let the bisect go on; the new outcome,
        or why this contradiction is not a misjudged verdict."""
        journal, run_id = self.tester.journal, self.run_id
        main = journal.verdict(run_id, wrong)
        fresh = journal.verdict(confirm_run_id(run_id), wrong)
        step_judged = None if main is None else Judged(main.commit, main.verdict, main.reason)
        if main is None or fresh is None or not is_correction(step_judged, fresh.verdict):
            return (
                f"{wrong[:12]} behaves unlike its place in the history (not a misjudged"
                " verdict): the bug may have come and gone more than once"
            )
        self.say(
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
                f"{Reason.CORRECTED} (was {main.verdict})",
                time.time(),
            ),
        )
        journal.event(run_id, "corrected", f"{wrong} {main.verdict} -> {fresh.verdict}")
        is_old = self.direction.is_old(Verdict(fresh.verdict))
        terms = self.direction.terms
        log, dropped = corrected_log(outcome.log, wrong, terms, is_old, self.history.is_ancestor)
        for sha in dropped:
            # Judged again by the step (its trials are kept), against the lowered reference.
            journal.delete_verdict(run_id, sha)
            journal.event(run_id, "invalidated", f"{sha} contradicts the corrected {wrong}")
        if dropped:
            self.say(
                f"the correction contradicts the verdicts of {len(dropped)} other commit(s)"
                f" ({', '.join(x[:12] for x in dropped)}): they are judged again"
            )
        finished = self.bisect.replay(log, terms)
        return finished or self.bisect.run(self.step, terms)
