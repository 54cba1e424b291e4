"""The hunt's decisions, in one pure module: evidence in, decisions out.

Every choice that decides what a run claims is made here, and only here: how the ends
are told apart and which one carries the bug, which commit is the reference, what a
visited commit's verdict is (or whether it needs more trials, or its reference does),
the trial cap, the strict test's floor, when the rate next to the change is known, how
the error budget is spent over correction rounds, and the answer's confidence and exit
status.  No I/O, no git, no clock: the driver, the `git bisect run` step and the
calibration simulator (bench/simulate.py) all call these functions, so the calibration
measures exactly what a real hunt decides (git_bayesect's model: a pure core that its
calibration runs as shipped).  The shells around it (verdict.judge, bisect.endpoints,
bisect.confirm) only fetch evidence, run the trials asked for and record verdicts.

The statistical tests themselves (Fisher's exact test, the floor test, Clopper-Pearson
bounds) are in verdict.stats; docs/statistics.md documents both.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from bisect_driver.plugin.errors import EXIT_AMBIGUOUS, EXIT_FOUND, EXIT_UNCONFIRMED
from bisect_driver.verdict.stats import (
    ANCHOR_ALPHA,
    FLOOR_FACTOR,
    FLOOR_LEVEL,
    Decision,
    Reference,
    Verdict,
    bug_p_value,
    calibration_pays,
    clean_p_value,
    clean_trials_needed,
    decide,
    decide_anchor,
    decide_strict,
    default_floor,
    lower_bound,
    strict_trials_needed,
    upper_bound,
)

FIRST_ROUND_SHARE = 0.8
"""Share of ``delta`` the first confirmation round's strict test spends; later rounds split
the rest, halving (``(1 - share) * delta / 2^t``), so any number of rounds spends at most
``delta``.  Most hunts end in the first round: spending 0.8 delta there instead of 0.5 cuts
its strict test by ln(1/0.008) / ln(1/0.005) = 0.91 (issue 18); a correction round costs
more instead, and corrections are what the steps' soft verdicts make rare."""

# -- the error budget -------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorBudget:
    """``delta = 1 - confidence``: the chance the run may be wrong, spent in one place.

    The strict tests of all confirmation rounds together spend at most ``delta`` (round 0
    spends FIRST_ROUND_SHARE of it, round ``t >= 1`` ``(1 - share) delta / 2^t``: a union
    bound however many corrections happen); telling the ends apart and the checks of the
    answer are held to the first round's share (the clean end's anchor is not: ends_next)."""

    delta: float

    @classmethod
    def of(cls, confidence: float) -> ErrorBudget:
        return cls(1.0 - confidence)

    @property
    def confidence(self) -> float:
        return 1.0 - self.delta

    def round(self, index: int) -> float:
        """The strict test's error target in confirmation round ``index`` (0-based)."""
        if index == 0:
            return self.delta * FIRST_ROUND_SHARE
        return self.delta * (1.0 - FIRST_ROUND_SHARE) / 2.0**index

    @property
    def anchor(self) -> float:
        """Error target of telling the ends apart and of the checks of the answer."""
        return self.round(0)


# -- the policy a tester decides under ----------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """How one tester decides; typed config in, as syzkaller's pkg/bisect takes it."""

    alpha: float
    """Per-verdict error target."""
    fp: float = 0.0
    """Rate at which a commit *without* the bug still shows its failure (background): a
    BUG verdict needs reproductions this rate cannot explain."""
    max_trials: int = 200
    """Counted trials after which an undecided commit is skipped."""
    floor: float | None = None
    """None: a bisect step's soft test against the reference.  A rate: the confirmation's
    strict test, CLEAN only if a bug at this rate would have shown."""
    strict_alpha: float | None = None
    """The confirmation's error target when its floor comes from the reference (calibrating
    the reference then also shortens the strict test); None when --min-rate fixes it."""
    anchor_alpha: float | None = None
    """Error target of telling the ends apart and of defining the bug from them, which
    anchor the whole hunt (None: alpha); the clean end's anchor trials use ``alpha``."""
    background_lo: float = 0.0
    """Lower bound of the background rate measured at the clean end: a commit that
    carries the bug reproduces at least at background + floor (the strict test's H0)."""
    background: tuple[int, int] = (0, 0)
    """(failures, counted trials) of the bug's own failure at the clean end: the background
    ``fp`` and ``background_lo`` are bounds of, at this policy's level (:func:`at_level`)."""
    fp_given: float = 0.0
    """The user's --false-positive-rate, the least ``fp`` is."""
    steady: bool = False
    """--steady-rate: every commit that carries the bug reproduces at the reproducing end's
    rate (no drift).  The strict test is then Fisher's exact test against that end's trials
    (:func:`verdict_of`), not the floor test at a sixth of its rate."""

    @property
    def anchor_level(self) -> float:
        """Level of the checks that do not follow the steps' ``alpha`` (stats.ANCHOR_ALPHA,
        unless ``alpha`` is stricter): the clean end's anchor, a soft BUG verdict over a
        background and, a tenth of it, the backport checks.  Not ``anchor_alpha``, which
        tells the ends apart at the budget's first-round share."""
        return min(self.alpha, ANCHOR_ALPHA)

    @property
    def max_attempts(self) -> int:
        """All trials, counted or not: stops a commit whose trials never conclude."""
        return self.max_trials * 2


def run_policy(
    confidence: float,
    *,
    alpha: float,
    max_trials: int,
    fp: float = 0.0,
    min_rate: float | None = None,
    background: tuple[int, int] = (0, 0),
    steady: bool = False,
) -> Policy:
    """The policy a run's steps decide under, from its settings (the driver, the step
    processes and the simulator all build it here): soft steps and the clean end's anchor at
    ``alpha``, telling the ends apart and the reference's calibration at the budget's
    first-round share."""
    budget = ErrorBudget.of(confidence)
    return with_background(
        Policy(
            alpha=alpha,
            fp=fp,
            fp_given=fp,
            max_trials=max_trials,
            strict_alpha=None if min_rate else budget.anchor,
            anchor_alpha=budget.anchor,
            steady=steady,
        ),
        background,
    )


def with_background(policy: Policy, background: tuple[int, int]) -> Policy:
    """``policy`` once the clean end showed the bug's own failure (``background``:
    failures, counted trials there): its rate's 95 % upper bound is the false-positive
    rate a BUG verdict must beat, its lower bound raises the floor a strict CLEAN must
    exclude.  More trials at the clean end narrow both (:func:`at_level` for the strict
    tests' own level)."""
    if not background[0]:
        return policy
    lo, hi = background_bounds(background)
    return replace(policy, background=background, fp=max(policy.fp_given, hi), background_lo=lo)


def at_level(policy: Policy) -> Policy:
    """``policy`` with its background bounds at its own error target (level 1 - alpha)
    instead of 95 %: a strict test at error 0.005 that took a 95 % bound of the background
    for the truth would be wrong whenever the bound is (5 %), so it takes the bounds its own
    error allows.  Unchanged without a background."""
    if not policy.background[0]:
        return policy
    lo, hi = background_bounds(policy.background, 1.0 - policy.alpha)
    return replace(policy, fp=max(policy.fp_given, hi), background_lo=lo)


def background_bounds(
    background: tuple[int, int], level: float = FLOOR_LEVEL
) -> tuple[float, float]:
    """(lower, upper) one-sided bounds of the background rate at ``level``; (0, 0) when the
    clean end never failed."""
    k, n = background
    if not k or not n:
        return 0.0, 0.0
    return lower_bound(k, n, level), upper_bound(k, n, level)


class Reason(StrEnum):
    """Why a verdict was recorded: the journal's ``reason`` starts with one of these (a
    correction and a build failure go on to say more), and the decisions read them back."""

    ENDPOINT = "endpoint"  # one of the run's two ends, anchored (bisect.endpoints)
    DECIDED = "decided"  # the sequential test decided
    UNDECIDED = "undecided after"  # the trial cap was reached: a skip
    BUILD = "build "  # the commit did not build: a skip ("build failed: ...")
    CORRECTED = "corrected by confirmation"  # the strict test overturned the step's verdict
    UNRUNNABLE = "trials cannot run: "  # a trial killed every worker given it (a skip)

    @classmethod
    def of(cls, reason: str) -> Reason | None:
        """The kind of a recorded reason (None for one this version does not write)."""
        return next((r for r in cls if reason.startswith(r.value)), None)

    def detail(self, reason: str) -> str:
        """What follows the prefix (e.g. the build failure)."""
        return reason[len(self.value) :]


MAX_CAP_FACTOR = 10
"""A step never runs more than this many times --max-trials."""


# -- judging one visited commit -----------------------------------------------------------


class Next(StrEnum):
    """What a tester does next at one commit."""

    DECIDED = "decided"  # record ``verdict``
    TRIALS = "trials"  # run a batch at the commit
    CALIBRATE = "calibrate"  # run a batch at the reference first


@dataclass(frozen=True)
class Step:
    action: Next
    verdict: Verdict = Verdict.UNDECIDED
    error: float = 1.0
    reason: str = ""


def trial_cap(policy: Policy, ref: Reference) -> int:
    """Counted trials after which an undecided commit is a skip.

    --max-trials, or for a soft step, twice what its test needs against the current
    reference when that is more: after a correction lowered the reference (drift), steps
    near the change may spend more trials rather than turn into skips."""
    cap = policy.max_trials
    if policy.floor is None and ref.reproduced:
        need = clean_trials_needed(ref, policy.alpha, limit=MAX_CAP_FACTOR * cap)
        cap = max(cap, 2 * need)
    return cap


def verdict_of(ev_k: int, ev_n: int, ref: Reference, policy: Policy) -> Decision:
    """The test a commit is judged by: strict against the floor (plus the background) in a
    confirmation, soft against the reference in a bisect step.  Under --steady-rate the
    strict test is the steps' exact test against the reference at the strict error target:
    with no drift the clean neighbour, were it carrying the bug, would reproduce at the
    reference's own rate, and Fisher's test holds whatever that rate is.  With a background
    the exact test cannot tell the bug from it: the floor test then, at the steady floor
    (the pooled rate's 95 % lower bound, which counts the background already)."""
    if policy.floor is not None and policy.steady and not policy.background[0]:
        return decide(ev_k, ev_n, ref, policy.alpha, policy.fp)
    if policy.floor is not None:
        # A steady floor is the pooled rate's bound, background included already.
        extra = 0.0 if policy.steady else policy.background_lo
        return decide_strict(ev_k, ev_n, policy.floor + extra, policy.alpha, policy.fp)
    # A soft BUG verdict over a background keeps the anchor's level: a wrong CLEAN is what
    # the strict test repairs (SOFT_ALPHA says why it may be cheap), a wrong BUG is not.
    return decide(ev_k, ev_n, ref, policy.alpha, policy.fp, policy.anchor_level)


def fresh_trials(step_reproduced: int, step_counted: int) -> tuple[int, int]:
    """The trials a strict test leaves out at a commit a bisect step judged CLEAN: those of
    the step (its recorded counts).

    The bisect *chose* that commit for the strict test because its trials looked clean:
    of the few bug-carrying commits a hunt visits, the one whose first trials happened to
    show nothing becomes the answer's clean neighbour.  A strict test that went on counting
    those trials would inherit the selection: at the rate it tests for, its error is the
    chance that *any* visited bug-carrying commit stays clean that long, about as many
    times alpha as the hunt visits such commits.  Measured: with --steady-rate (the test at
    the reference's own rate) 3 of 100 constant-rate hunts claimed a wrong commit at 0.99,
    each at a commit whose soft trials and strict trials were one clean run of 28.  On fresh
    trials the strict test's error is its own, whichever commit the bisect chose; it costs
    the step's trials once more at that one commit (about a twelfth of the strict test by
    default, half of it under --steady-rate)."""
    return step_reproduced, step_counted


def judge_next(
    reproduced: int,
    counted: int,
    trials: int,
    ref: Reference,
    policy: Policy,
    *,
    clean_tests_left: float,
    can_calibrate: bool,
) -> Step:
    """One decision at a visited commit: its verdict, a skip at the cap, or more trials
    (at the commit, or first at the reference while more reference trials pay)."""
    decision = verdict_of(reproduced, counted, ref, policy)
    if decision.verdict != Verdict.UNDECIDED:
        return Step(Next.DECIDED, decision.verdict, decision.error, Reason.DECIDED)
    cap = trial_cap(policy, ref)
    if counted >= cap or trials >= 2 * cap:
        reason = f"{Reason.UNDECIDED} {counted} counted of {trials} trials"
        return Step(Next.DECIDED, Verdict.SKIP, decision.error, reason)
    if (
        (policy.floor is None or policy.steady)
        and reproduced == 0
        and can_calibrate
        and ref.trials < policy.max_trials * 2
        and calibration_pays(
            ref,
            policy.alpha,
            clean_tests_left,
            strict_alpha=policy.strict_alpha,
            steady=policy.steady,
        )
    ):
        return Step(Next.CALIBRATE, error=decision.error)
    return Step(Next.TRIALS, error=decision.error)


@dataclass(frozen=True)
class Judged:
    """A recorded verdict, as the decisions read it."""

    commit: str
    verdict: str
    reason: str


def reference_commit(verdicts: Sequence[Judged]) -> str | None:
    """The commit the steps' soft CLEAN verdicts are measured against: the reproducing end
    (its BUG verdict), whose trials start the pool (judge.CommitTester.reference).

    Until issue 18's fifth round a commit the confirmation corrected became the reference
    when its rate was lower than the end's ("the rate drifts toward the change"), so later
    steps asked for as many clean trials as that rate needs.  Measured, it cost more than it
    saved, at every rate and under drift too (docs/statistics.md, "Corrections"): its rate
    counted the clean trials that made the bisect choose it (the step's clean run before
    its one reproduction: about a quarter of the true rate at 10 %), and Fisher's test
    against one reproduction asks a clean step for nine times that commit's trials.  The
    pool counts the corrected commit's trials anyway, so drift still lowers the steps'
    reference, by its weight; the answer never rested on it (the strict test judges the
    clean neighbour against the floor)."""
    return next(
        (v.commit for v in verdicts if v.verdict == Verdict.BUG and v.reason == Reason.ENDPOINT),
        None,
    )


BACKGROUND_EVENT = "background"
"""Journal event "K/N": the bug's own failure at the clean end, K of N counted trials, when
the run decided with it as a background (bisect.endpoints and the confirmation write it,
the latest counts; the run's testers read it into Policy.background)."""


def background_message(background: tuple[int, int]) -> str:
    """The BACKGROUND_EVENT's message for these counts (read back by parse_background)."""
    return f"{background[0]}/{background[1]}"


def parse_background(message: str) -> tuple[int, int]:
    """Counts from :func:`background_message`; (0, 0) from a journal of a version that
    stored only bounds (its run decides on without the background, as it began)."""
    if "/" not in message:
        return 0, 0
    k, n = message.split("/", 1)
    return int(k), int(n)


# -- the ends -----------------------------------------------------------------------------


class Apart(StrEnum):
    """Which end's failure is the more frequent, as far as the trials tell."""

    OLD = "old"
    NEW = "new"
    PENDING = "pending"  # not yet told apart: test both ends more
    ALIKE = "alike"  # shown alike, or --max-trials reached without telling them apart


def tell_apart(old: tuple[int, int], new: tuple[int, int], alpha: float, cap: int) -> Apart:
    """Both ends fail: is one end's failure significantly more frequent than the other's?

    One-sided exact conditional (Fisher) test each way at ``alpha``: the rarer end is then
    the clean side of the hunt (its failures another failure, or a background the bug adds
    to).  Shown alike when the rarer end's rate is provably within the hunt's drift
    allowance of the frequent end's (its 95 % lower bound at least the frequent end's 95 %
    upper bound / FLOOR_FACTOR): then it carries something at a rate the hunt would call
    the bug, and no bisect can separate them.  Both bounds, so that a few trials each
    (1/2 against 1/2) prove nothing either way and are tested further.  Otherwise both
    ends are tested further, up to ``cap`` counted trials each."""
    (ko, no), (kn, nn) = old, new
    if clean_p_value(kn, nn, Reference(ko, no)) <= alpha:
        return Apart.OLD
    if clean_p_value(ko, no, Reference(kn, nn)) <= alpha:
        return Apart.NEW
    for hi, lo in ((old, new), (new, old)):  # both ways when the rates are equal
        rarer = lo[0] * max(1, hi[1]) <= hi[0] * max(1, lo[1])
        if rarer and lo[1] and lower_bound(*lo) >= upper_bound(*hi) / FLOOR_FACTOR:
            return Apart.ALIKE
    if min(no, nn) >= cap:
        return Apart.ALIKE
    return Apart.PENDING


def background_note(background: tuple[int, int], found_late: bool) -> str | None:
    """The report's sentence on the background the hunt decided with (None without one)."""
    if not background[0]:
        return None
    lo, hi = background_bounds(background)
    note = (
        f"the clean end also fails with the bug's own failure, {background[0]}/{background[1]}"
        f" ({lo:.3g}-{hi:.3g}, 95 %): every BUG verdict beat that rate and the strict test's"
        " floor was raised by its lower bound (both at the strict test's own level there)"
    )
    if found_late:
        note += (
            "; the ends' first trials did not show it: a correction pointed at it, the clean"
            " end was tested again, and the hunt bisected again with it"
        )
    return note


def background_of(clean_end: tuple[int, int]) -> tuple[int, int]:
    """The background seen at the clean end, as counts (failures, counted trials); (0, 0)
    when it never failed.

    Its upper bound becomes the hunt's false-positive rate (a BUG verdict needs
    reproductions it cannot explain), its lower bound is added to the strict test's floor
    (:func:`with_background`)."""
    k, n = clean_end
    return (k, n) if k and n else (0, 0)


class EndsAction(StrEnum):
    TEST = "test"  # run a batch at each end in ``test`` (the bug end first when calibrating)
    DECIDED = "decided"
    FAIL = "fail"  # nothing to bisect: ``message`` says why


@dataclass(frozen=True)
class EndsNext:
    action: EndsAction
    test: tuple[str, ...] = ()
    """Which ends ("old", "new") to run a batch at."""
    bug_side: str = ""
    """The end that carries the bug ("old": a fix hunt, "new": a regression hunt)."""
    clean_error: float = 1.0
    bug_error: float = 1.0
    message: str = ""


def ends_next(
    old: tuple[int, int, int],
    new: tuple[int, int, int],
    policy: Policy,
    *,
    clean_tests_left: float,
    background: tuple[float, float] = (0.0, 0.0),
) -> EndsNext:
    """One decision about the ends, from (reproduced, counted, trials) at each.

    The end that reproduces carries the bug; the other is CLEAN only as an anchor
    (stats.decide_anchor).  The anchor is kept although the strict test judges the clean end
    anyway if the answer lands next to it: without it the clean end is CLEAN after a few
    trials, and a failure of its own that shows later (a fix hunt's old bug at one end, a
    regression's crash at the other) never shows, and the run hunts whichever end failed
    first (tests/test_anchors.py).  Its trials are those that show a failure half as
    frequent as the bug with ``1 - ANCHOR_ALPHA`` (0.9, stats.ANCHOR_ALPHA: the steps' level,
    but not tied to it), not the first round's
    ``1 - 0.8 delta``: no claim rests on them (the strict test judges the answer's clean
    neighbour on its own trials, the clean end included; a background the clean end hid
    is what the background look and the calibration's rare-flake kind are for), and at
    ``0.8 delta`` they were a seventh of a low-rate hunt (issue 18, simulated 8 % fix hunts
    over 120 commits: 135 of 935 trials at the clean end, 83 at the steps' level).
    ``background`` (lower, upper) is the failure rate the ends were shown to differ by
    (:func:`tell_apart`): the clean end may fail at that rate."""
    fp = max(policy.fp, background[1])
    (ko, no, to), (kn, nn, tn) = old, new
    anchor = policy.anchor_level

    def shows_bug(k: int, n: int) -> bool:
        return bug_p_value(k, n, fp) <= anchor

    def exhausted(n: int, t: int) -> bool:
        return n >= policy.max_trials or t >= policy.max_attempts

    bug_old, bug_new = shows_bug(ko, no), shows_bug(kn, nn)
    if bug_old and bug_new:
        return EndsNext(
            EndsAction.FAIL,
            message=f"both ends reproduce the bug (old {ko}/{no}, new {kn}/{nn}):"
            " nothing to bisect",
        )
    if bug_old or bug_new:
        side = "old" if bug_old else "new"
        (bk, bn, _bt), (ck, cn, ct) = (old, new) if bug_old else (new, old)
        ref = Reference(bk, bn)
        d = decide_anchor(ck, cn, ref, anchor, anchor, fp, policy.max_trials)
        if d.verdict == Verdict.BUG:
            return EndsNext(
                EndsAction.FAIL, message="both ends reproduce the bug: nothing to bisect"
            )
        if d.verdict == Verdict.CLEAN:
            return EndsNext(
                EndsAction.DECIDED,
                bug_side=side,
                clean_error=d.error,
                bug_error=bug_p_value(bk, bn, fp),
            )
        if exhausted(cn, ct):
            return EndsNext(
                EndsAction.FAIL,
                message=f"could not show that the {'new' if bug_old else 'old'} end is free of"
                f" the bug within --max-trials {policy.max_trials} ({ck}/{cn} reproduced vs"
                f" {bk}/{bn})",
            )
        clean_side = "new" if bug_old else "old"
        pays = calibration_pays(
            ref,
            policy.alpha,
            clean_tests_left,
            strict_alpha=policy.strict_alpha,
            steady=policy.steady,
        )
        bug_t = old[2] if bug_old else new[2]
        if pays and not exhausted(bn, bug_t):
            return EndsNext(EndsAction.TEST, test=(side, clean_side), bug_side=side)
        return EndsNext(EndsAction.TEST, test=(clean_side,), bug_side=side)
    if exhausted(no, to) and exhausted(nn, tn):
        return EndsNext(
            EndsAction.FAIL,
            message=f"neither end reproduced the bug (old {ko}/{no}, new {kn}/{nn} trials):"
            " both ends behave alike",
        )
    return EndsNext(
        EndsAction.TEST,
        test=tuple(s for s, (_k, n, t) in (("old", old), ("new", new)) if not exhausted(n, t)),
    )


# -- the confirmation ---------------------------------------------------------------------

MAX_CORRECTIONS = 40
"""Correction rounds before a run gives up ("still contradicting", exit 8, no claim).

Any number of rounds spends at most delta (ErrorBudget.round halves each round's share), so
the cap guards the run's length, not its guarantee: a contradiction that no correction can
mend stops earlier (is_correction, walked_to_the_clean_end).  It was 12 until issue 18's
sixth round.  Since the fifth round a corrected commit no longer lowers the steps'
reference on its own, so in a long stretch where the rate has drifted toward the change
every step that looked clean there is corrected in turn, one round each: a CI run over 30
commits at a sixth of the end's rate (1/38 measured under load) ran out at 12 with the
right commit named, and in the simulation a regression with 300 of 2713 commits at a
sixth ran out in 14 of 40 hunts (10.5 corrections on average; docs/statistics.md, "Long
drifted stretches").  Judging the other steps again against the drifted rate instead was
measured and rejected (same section): at a tenth of the end's rate it re-tested clean
commits to their caps (290 000 trials in one hunt)."""
NEAR_REPRODUCTIONS = 3
"""Reproductions at the bug-carrying neighbour before its rate is reported."""
NEAR_MAX_REPRODUCTIONS = 10
"""Enough to pin the neighbour's rate within a factor of about 2.5 (95 %): past it the
strict test's floor is lowered to the measured lower bound instead."""


def haldane(pool: Reference) -> Reference:
    """The pool of bug verdicts' trials counted one reproduction and one trial short.

    Trials that stop at a reproduction overstate the rate: a step stops at its first, the
    bug-side neighbour at its third, the reproducing end once it has three (inverse
    sampling: s reproductions in N trials estimate the rate at s/N, about s/(s-1) times too
    high).  A test that compares a commit with the rate itself (the steps' soft test,
    --steady-rate's strict test) takes (s-1)/(N-1), Haldane's unbiased estimate for inverse
    sampling.  (One less per commit instead would count a step's single reproduction as
    none at all: measured, that nearly doubled a low-rate hunt's strict test.)  The default
    floor does not: what it costs goes with 1/rate, which s/N estimates without bias
    (stats.default_floor)."""
    k, n = pool.reproduced, pool.trials
    return Reference(k - 1, n - 1) if k > 1 else pool


STEADY_SOURCE = "--steady-rate"
"""How a steady-rate run's floor source starts (the report words its assumption so)."""


@dataclass(frozen=True)
class Floor:
    """The floor rate the answer's confidence assumes (:func:`floor_of`)."""

    rate: float
    source: str
    """Where it came from, in words (the report quotes it)."""
    low: float
    """The least the assumed rate may be, as far as the trials that estimated it know: the
    rate next to the change is *below* the floor only when its 95 % upper bound is below
    this (:func:`floor_after_near`).  A sixth of the pool's 95 % lower bound for the
    default floor, ``rate`` itself when the user gave it (--min-rate)."""


def floor_of(pool: Reference, min_rate: float | None, steady: bool = False) -> Floor:
    """The floor rate the answer's confidence assumes, and where it came from, from the
    ``pool`` of bug verdicts' trials as they stood (judge.CommitTester.pooled_counts).

    Under --steady-rate there is no floor to assume: the strict test compares with the
    reference itself (:func:`verdict_of`); the number is its 95 % lower bound (of
    :func:`haldane`'s count), for the report and for the check that the rate next to the
    change does not drift away."""
    if steady:
        ref = haldane(pool)
        rate = lower_bound(ref.reproduced, ref.trials)
        return Floor(
            rate,
            f"{STEADY_SOURCE}: every bug-carrying commit reproduces at the same rate"
            f" ({ref.reproduced}/{ref.trials} over those judged to carry it; this"
            " is its 95% lower bound), so the strict test is Fisher's exact test against"
            " those trials",
            rate,
        )
    if min_rate is not None:
        return Floor(min_rate, "--min-rate", min_rate)
    return Floor(
        default_floor(pool),
        f"a sixth of the bug's rate over the commits judged to carry it"
        f" ({pool.reproduced}/{pool.trials} / {FLOOR_FACTOR:g})",
        lower_bound(pool.reproduced, pool.trials) / FLOOR_FACTOR,
    )


STEADY_DRIFT_ALPHA = 0.01
"""Under --steady-rate the bug-side neighbour, measured to NEAR_REPRODUCTIONS, is drift
when it reproduces less often than the reference at this level: a false alarm costs a
claim (exit 8), a missed drift can cost a wrong one."""


def drifts_from(near: tuple[int, int], reference: Reference, alpha: float) -> str | None:
    """Under --steady-rate: does the bug-side neighbour reproduce significantly less often
    than ``reference``, the other commits judged to carry the bug (Fisher's test at
    ``alpha``)?  Then the rate drifts, the strict test's assumption fails, and the run says
    so instead of claiming (None when nothing speaks against it)."""
    k, n = near
    if not n or clean_p_value(k, n, reference) > alpha:
        return None
    return (
        f"the bug-carrying commits next to the change reproduce {k}/{n}, significantly less"
        f" often than the other commits judged to carry it"
        f" ({reference.reproduced}/{reference.trials}): the rate drifts, which --steady-rate"
        " rules out; run without it"
    )


def near_settled(reproduced: int, counted: int, floor: float, low: float | None = None) -> bool:
    """Is the bug-carrying neighbour's rate known well enough against the floor?

    At least NEAR_REPRODUCTIONS reproductions, and its 95 % lower bound at or above the
    floor (the assumption holds), or its upper bound below the floor's own ``low`` (it does
    not: :class:`Floor`; ``floor`` when None), or NEAR_MAX_REPRODUCTIONS seen (the floor is
    then lowered to the lower bound)."""
    if reproduced < NEAR_REPRODUCTIONS:
        return False
    return (
        reproduced >= NEAR_MAX_REPRODUCTIONS
        or lower_bound(reproduced, counted) >= floor
        or upper_bound(reproduced, counted) < (floor if low is None else low)
    )


@dataclass(frozen=True)
class FloorCheck:
    """What the rate next to the change says about the strict test's floor."""

    floor: float
    """The floor the strict test must hold (the assumed one, or lowered to the measured
    rate's lower bound)."""
    inconclusive: str | None = None


def floor_after_near(near: tuple[int, int], floor: float, low: float | None = None) -> FloorCheck:
    """The strict test's floor once the bug-carrying neighbour is measured: inconclusive
    when its rate is clearly below the floor (or unmeasured), lowered to its lower bound
    when it may be below, the assumed floor otherwise.

    Clearly below means below ``low``, the least the floor may be by the trials that
    estimated it (:class:`Floor`; ``floor`` itself when None, as for --min-rate).  The
    default floor is a sixth of an estimate: at a drift of exactly a sixth the neighbour
    reproduces at the floor's true value, and half of the time below the estimate, so a
    run that compared its upper bound with the estimate called every fifth such hunt
    inconclusive (issue 18's third round); compared with the floor's own lower bound it
    goes on at the neighbour's lower bound instead, which is the drift it measured.
    Only a measured neighbour (NEAR_REPRODUCTIONS) earns that: one that reached its trial
    cap with fewer has a lower bound near 0 (1 of 400: 0.00013), and a strict test at it
    took 54 000 trials in a simulated hunt that the rule before called inconclusive at
    1 146; against the floor itself, as before, it is inconclusive."""
    k, n = near
    below = low if low is not None and k >= NEAR_REPRODUCTIONS else floor
    if not n or upper_bound(k, n) < below:
        return FloorCheck(
            floor,
            f"the bug-carrying commits next to the change reproduce {k}/{n}"
            f" (at most {upper_bound(k, n):.3g}), below the floor {floor:.3g} the"
            " confidence assumes; set --min-rate lower (more trials) to decide",
        )
    return FloorCheck(min(floor, lower_bound(k, n)))


def strict_cap(
    policy_max_trials: int, floor: float, alpha: float, jobs: int, background: bool = False
) -> int:
    """The strict tester's trial cap: what the strict test needs with no reproduction, at
    least 2x --max-trials.  With a background failure rate the clean neighbour shows some
    failures too and the test needs several times more: four times, at most MAX_CAP_FACTOR
    times --max-trials."""
    cap = max(policy_max_trials * 2, strict_trials_needed(floor, alpha) + jobs)
    if background:
        cap = max(cap, min(4 * cap, MAX_CAP_FACTOR * policy_max_trials))
    return cap


BACKGROUND_LOOK = 3.0
"""Background failures the clean end is expected to show, were a reproduction at a commit
the bisect had cleared a background: the look misses one with probability e**-3 (5 %)."""


def background_look(
    reproduced: int, counted: int, clean_end: tuple[int, int], fp: float, cap: int
) -> int:
    """Trials the clean end still needs before a correction toward it is believed.

    A bisect with no known background (``fp == 0``) takes one reproduction as proof of
    the bug.  When the strict test then finds the bug's failure at a commit the bisect had
    cleared (``reproduced`` of ``counted`` there, the trials after the step that cleared
    it: :func:`fresh_trials`), that is a misjudged soft verdict, or a background the clean
    end's few trials did not show: every commit fails now and then, and each correction
    walks the answer further from the change.  Before the correction stands, the clean end
    is tested until, were the rate seen there a background, it would have shown it about
    BACKGROUND_LOOK times (``counted / reproduced`` trials each), up to ``cap``.  0 when
    nothing more is needed: a background is already known, the clean end has failed
    (:func:`tell_apart` takes over), or it has had its trials.

    Why the trials after the step (issue 18's fifth round): the step's clean run is what
    made the bisect choose the commit, and counting it put the rate at about a quarter of
    the true one at 10 %, so the look asked for about four times the trials (1.6-2.3 % of
    all the trials of simulated constant-rate hunts at 10 %, docs/statistics.md)."""
    k0, n0 = clean_end
    if fp > 0 or not reproduced or k0:
        return 0
    want = min(cap, math.ceil(BACKGROUND_LOOK * counted / reproduced))
    return max(0, want - n0)


def background_to_measure(neighbour_counted: int, clean_end_counted: int, cap: int) -> int:
    """Trials the clean end still needs when a strict test is undecided on a background.

    With a background the strict CLEAN verdict must show the clean neighbour below
    background + floor, and it counts the background at its 95 % lower bound from the
    clean end's trials: from the few trials that told the ends apart that bound is near 0,
    and a background near the floor can never be shown below it.  So the clean end is
    measured as well as the neighbour (as many counted trials, up to ``cap``): the bound
    rises toward the background and the neighbour's own trials can decide."""
    return max(0, min(cap, neighbour_counted) - clean_end_counted)


def walked_to_the_clean_end(corrections: int, clean_side: Sequence[str], clean_end: str) -> str:
    """Why an answer is not claimed when corrections moved it onto the clean end ("" when
    nothing is against it).

    Corrections only ever move the answer toward the clean end.  When they moved it so far
    that the clean end itself is the answer's clean side (a fix hunt's answer is the new end;
    a regression's answer has the old end as its parent), its strict test rests on the end's
    own trials, and a background those trials happened to miss explains every correction as
    well as a late change does: seen end to end, a run claimed the new end at 0.99 that way,
    its revert check fooled by the same background.  So such an answer is named, not
    claimed (exit 8)."""
    if not corrections or not clean_end or clean_end not in clean_side:
        return ""
    return (
        f"{corrections} correction(s) moved the answer onto the clean end {clean_end[:12]}:"
        " a failure its trials missed (a background) would explain them as well as a change"
        " there; not claimed"
    )


class Retest(StrEnum):
    """How a strict retest of the answer's neighbours came out."""

    AGREES = "agrees"
    CONTRADICTS = "contradicts"  # a verdict flipped: correct it and replay
    UNDECIDED = "undecided"  # a neighbour could not be decided
    NOT_A_FLIP = "not a flip"  # contradicts, but not a misjudged soft verdict


def retest_outcome(expected_and_got: Sequence[tuple[str, str]]) -> tuple[Retest, int | None]:
    """From (expected, strict verdict) per retested commit: agree, the index of the first
    contradiction, or undecided."""
    first_bad = None
    undecided = False
    for i, (want, got) in enumerate(expected_and_got):
        if got == want:
            continue
        if got in (Verdict.SKIP, Verdict.UNDECIDED):
            undecided = True
        elif first_bad is None:
            first_bad = i
    if first_bad is not None:
        return Retest.CONTRADICTS, first_bad
    return (Retest.UNDECIDED if undecided else Retest.AGREES), None


def is_correction(step: Judged | None, strict_verdict: str | None) -> bool:
    """A contradiction is a misjudged soft verdict (corrected, then replayed) only when a
    bisect step had judged the commit the other way.  An end never is: the ends anchor the
    hunt (their clean verdict took the anchor's trials), so a strict test that contradicts
    one says the bug came and went, or the ends were misjudged: no replay can mend that."""
    return (
        step is not None
        and strict_verdict is not None
        and step.reason != Reason.ENDPOINT
        and step.verdict != strict_verdict
    )


def signature_ambiguity(
    bug_side: Mapping[str, int],
    clean_side: Collection[str],
    core: Collection[str],
    beside_the_bug: Collection[str],
) -> str | None:
    """Does the answer depend on which failures are the bug?  A sentence naming the
    failures when it does (the run then claims nothing and asks for ``--signature``).

    Faces of a bug are known from evidence (probe.evidence.find_faces), and evidence can
    be read two ways: a failure seen beside the bug's own (``beside_the_bug``: at commits
    with a reproduction of a ``core`` signature) may be a face of the bug, or another
    failure in a stretch that overlaps the bug's.  The two readings give the same answer
    unless (a) the bug-side neighbour's counted reproductions (``bug_side``: signature ->
    count) show no core signature, only faces, or (b) the clean-side neighbour shows, as
    "another failure" (``clean_side``), one that was seen beside the bug.  Then no number
    of trials decides; the user's --signature does."""
    core_seen = sum(n for sig, n in bug_side.items() if sig in core)
    faces_only = sorted(sig for sig in bug_side if sig not in core)
    if bug_side and not core_seen:
        return (
            f"the answer rests on {'; '.join(faces_only)} being the bug: it was seen beside"
            f" the bug's own failure ({'; '.join(sorted(c for c in core if c))}), but the commit"
            " next to"
            " the change shows only it, and another failure overlapping the bug's stretch"
            " looks the same; name the bug you hunt (the command probe's --signature"
            " REGEX, matching every failure that is the bug)"
        )
    both = sorted(set(clean_side) & set(beside_the_bug))
    if both:
        return (
            f"{'; '.join(both)} shows next to the change on its clean side and also beside"
            f" the bug's own failure ({'; '.join(sorted(c for c in core if c))}): if it is another"
            " face of"
            " the bug the change is elsewhere; name the bug you hunt (the command probe's"
            " --signature REGEX, matching every failure that is the bug)"
        )
    return None


# -- the answer ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What a run claims: its confidence (None = no claim) and exit status."""

    confidence: float | None
    exit_status: int


def answer(
    candidates: int, confirmed: bool, unconfirmed: Sequence[str], budget: float | None
) -> Answer:
    """The claim a run may make, and its exit status.

    Exit: 0 for one candidate with nothing against it, 8 for one candidate that is not
    confirmed (``unconfirmed`` says why), 1 for a candidate set (skipped commits border
    the answer).  Confidence 1 - delta (``budget``) when the strict confirmation passed
    (``confirmed``) and nothing is against it: calibrated, not post hoc, since the strict
    tests of all rounds together are wrong with probability <= delta, whatever round
    ended it.  For a set the claim is "the change lies in this set", made only when the
    set's clean side passed the same strict test.  No budget (--no-confirm): no claim."""
    single = EXIT_UNCONFIRMED if unconfirmed else EXIT_FOUND
    status = single if candidates == 1 else EXIT_AMBIGUOUS
    claim = budget is not None and confirmed and not unconfirmed and candidates >= 1
    return Answer(1.0 - budget if claim and budget is not None else None, status)
