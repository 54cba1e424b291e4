"""Test both ends first: which one carries the bug decides the hunt's direction.

Bug at the old end only = a fix hunt (git terms broken/fixed); at the new end
only = a regression hunt (good/bad).  The reproducing end also starts the
*reference* for every later "clean" verdict (the pool of the commits judged to carry
the bug), so it gets extra calibration trials while they pay for themselves (see
verdict.calibration_pays).

The ends anchor everything after them and are never re-tested, so the clean end is
CLEAN only after enough trials that a failure half as frequent as the bug would have
shown there with probability 1 - ANCHOR_ALPHA (0.9; stats.anchor_trials,
stats.decide_anchor; core.ends_next says why not 1 - 0.8 delta): a
fixed end that in truth fails differently is then caught as an ambiguous bug instead of
silently turning the hunt around.

Both ends failing is not the end of a hunt: the ends are tested further (up to
--max-trials) until one end's failure is significantly more frequent (core.tell_apart) or
they are shown alike.  When the ends show *different* failures, the more frequent one is
the bug; when they show the *same* failure, the rarer end's rate is a background the bug
adds to: it becomes the hunt's false-positive rate (stored as a journal event, so the
step processes and a resumed run decide with it).  Every decision is verdict.core's;
this module only builds, runs the batches asked for and records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from bisect_driver.bisect.direction import Direction
from bisect_driver.plugin.errors import EndpointError
from bisect_driver.probe.evidence import BugSignature, Evidence
from bisect_driver.verdict.core import (
    BACKGROUND_EVENT,
    Apart,
    EndsAction,
    Policy,
    Reason,
    background_bounds,
    background_message,
    background_of,
    ends_next,
    tell_apart,
)
from bisect_driver.verdict.judge import CommitTester
from bisect_driver.verdict.stats import Verdict


@dataclass
class Endpoints:
    direction: Direction
    old: str
    new: str
    old_evidence: Evidence
    new_evidence: Evidence
    background: tuple[int, int] = (0, 0)
    """The bug's own failure at the clean end (failures, counted trials) when the hunt
    decides with it as a background (core.with_background); (0, 0) otherwise."""

    @property
    def terms(self) -> tuple[str, str]:
        return self.direction.terms


def ev_of(tester: CommitTester, sha: str) -> Evidence:
    return tester.runner.evidence(sha)


class Pending:
    """define_bug's answer while both ends fail differently and more trials may tell."""


PENDING = Pending()


def _names(sig: BugSignature) -> str:
    return "; ".join(sorted(sig.signatures)) or "(no signature)"


def define_bug(
    tester: CommitTester, old: str, new: str, alpha: float, cap: int
) -> BugSignature | None | Pending:
    """Which failures are the bug, from what the ends have shown so far.

    The end that reproduces defines the bug; a failure at the other end with another
    signature is then an "other failure" there, not a second reproducing end.  When
    both ends fail and neither's failures match the other's, the more frequent failure
    is the bug if the other end's is significantly rarer (core.tell_apart at ``alpha``: a
    rare flake at the fixed end does not stop a hunt); shown alike, nothing tells which
    one the user hunts: that is an error naming both and asking for ``--signature``.
    Until then: PENDING, test both ends more.  Which end failed *first* never decides:
    that was a coin toss."""
    runner = tester.runner
    runner.bug = None
    sig_old = BugSignature.from_trials(runner.records(old))
    sig_new = BugSignature.from_trials(runner.records(new))
    eo, en = runner.evidence(old), runner.evidence(new)
    fails_old, fails_new = eo.reproduced > 0, en.reproduced > 0
    if fails_old and not fails_new:
        return sig_old
    if fails_new and not fails_old:
        return sig_new
    if not (fails_old and fails_new):
        return None
    runner.bug = sig_old
    new_is_other = runner.evidence(new).reproduced == 0
    runner.bug = sig_new
    old_is_other = runner.evidence(old).reproduced == 0
    runner.bug = None
    if not (new_is_other and old_is_other):
        return None  # the same failure at both ends: told apart by rate in check_endpoints
    apart = tell_apart((eo.reproduced, eo.counted), (en.reproduced, en.counted), alpha, cap)
    if apart is Apart.OLD:
        return sig_old
    if apart is Apart.NEW:
        return sig_new
    if apart is Apart.PENDING:
        return PENDING
    raise EndpointError(
        f"both ends fail, differently, at rates that cannot be told apart: old {old[:12]}"
        f" shows {_names(sig_old)} ({eo.reproduced}/{eo.counted}), new {new[:12]} shows"
        f" {_names(sig_new)} ({en.reproduced}/{en.counted}); name the bug you hunt"
        " (the command probe's --signature REGEX)"
    )


def check_endpoints(
    tester: CommitTester,
    old: str,
    new: str,
    clean_tests_left: float,
    before_trials: Callable[[], None] | None = None,
) -> Endpoints:
    """Build and test both ends; raise EndpointError when they cannot be told apart.

    ``before_trials`` is called once both ends are built and before their first trial
    (the driver waits there for the probe's preparation, which runs beside the builds)."""
    check = EndsCheck(tester, old, new, clean_tests_left)
    return check.recorded() or check.run(before_trials)


class TryAgain(Exception):
    """Both ends got another batch: decide again."""


@dataclass
class EndsCheck:
    """Testing the two ends, in small steps: build them, define the bug, tell the ends
    apart when both fail, then core.ends_next until it decides; record the verdicts."""

    tester: CommitTester
    old: str
    new: str
    clean_tests_left: float
    artifacts: dict[str, Path] = field(default_factory=dict)

    @property
    def policy(self) -> Policy:
        return self.tester.policy

    @property
    def anchor_alpha(self) -> float:
        p = self.policy
        return min(p.alpha, p.anchor_alpha or p.alpha)

    def sha(self, side: str) -> str:
        return self.old if side == "old" else self.new

    def ev(self, sha: str) -> Evidence:
        return self.tester.runner.evidence(sha)

    def recorded(self) -> Endpoints | None:
        """The ends as this run recorded them (a resumed run decides without trials)."""
        t = self.tester
        done_old = t.journal.verdict(t.run_id, self.old)
        done_new = t.journal.verdict(t.run_id, self.new)
        if not (done_old and done_new):
            return None
        if {done_old.verdict, done_new.verdict} != {Verdict.BUG, Verdict.CLEAN}:
            return None
        direction = Direction.FIX if done_old.verdict == Verdict.BUG else Direction.REGRESSION
        background = t.policy.background
        return Endpoints(
            direction, self.old, self.new, self.ev(self.old), self.ev(self.new), background
        )

    def build(self) -> None:
        for side in ("old", "new"):
            sha = self.sha(side)
            built = self.tester.build(sha)
            if not built.ok or built.artifact_dir is None:
                raise EndpointError(
                    f"the {side} end {sha[:12]} does not build"
                    f" ({built.record.status}: {built.record.detail});"
                    f" see {built.record.log_path}"
                )
            self.artifacts[sha] = built.artifact_dir

    def batch(self, side: str, what: str) -> None:
        sha = self.sha(side)
        self.tester.progress(sha, self.ev(sha), what)
        self.tester.run_batch(sha, self.artifacts[sha])

    def both_again(self, what: str) -> NoReturn:
        """A batch at each end, unless one of them ran out of attempts (trials that never
        count, e.g. all inconclusive): then they cannot be told apart."""
        for side in ("old", "new"):
            e = self.ev(self.sha(side))
            if e.counted >= self.policy.max_trials or e.trials >= self.policy.max_attempts:
                raise EndpointError(
                    f"both ends fail and the {side} end {self.sha(side)[:12]} reached"
                    f" --max-trials ({e.reproduced}/{e.counted} of {e.trials} trials) before"
                    " they could be told apart: name the bug you hunt (the command probe's"
                    " --signature REGEX) or raise --max-trials"
                )
        for side in ("old", "new"):
            self.batch(side, what)
        raise TryAgain

    def background(self, bug: BugSignature | None, eo: Evidence, en: Evidence) -> tuple[int, int]:
        """Both ends show the bug's failure: the rarer end's rate is a background once the
        ends' rates differ (core.tell_apart); (0, 0) when only one end fails."""
        if not (eo.reproduced and en.reproduced):
            return 0, 0
        pair = (eo.reproduced, eo.counted), (en.reproduced, en.counted)
        apart = tell_apart(*pair, self.anchor_alpha, self.policy.max_trials)
        if apart is Apart.ALIKE:
            raise EndpointError(
                f"both ends reproduce the bug alike (old {self.old[:12]}: {eo.reproduced}/"
                f"{eo.counted}, new {self.new[:12]}: {en.reproduced}/{en.counted}"
                f"{'; ' + _names(bug) if bug is not None else ''}):"
                " nothing to bisect; if one of them is another failure, name the bug you"
                " hunt (the command probe's --signature REGEX)"
            )
        if apart is Apart.PENDING:
            self.both_again("telling the ends apart")
        return background_of(pair[1] if apart is Apart.OLD else pair[0])

    def step(self) -> Endpoints | None:
        """One decision about the ends (core.ends_next), and the batches it asks for."""
        bug = define_bug(self.tester, self.old, self.new, self.anchor_alpha, self.policy.max_trials)
        if isinstance(bug, Pending):
            self.both_again("testing")
        self.tester.runner.bug = bug
        eo, en = self.ev(self.old), self.ev(self.new)
        background = self.background(bug, eo, en)
        nxt = ends_next(
            (eo.reproduced, eo.counted, eo.trials),
            (en.reproduced, en.counted, en.trials),
            self.policy,
            clean_tests_left=self.clean_tests_left,
            background=background_bounds(background),
        )
        if nxt.action is EndsAction.FAIL:
            raise EndpointError(nxt.message)
        if nxt.action is EndsAction.TEST:
            for side in nxt.test:
                self.batch(side, "calibrating" if side == nxt.bug_side else "testing")
            return None
        return self.record(nxt.bug_side, nxt.bug_error, nxt.clean_error, background, eo, en)

    def record(
        self,
        bug_side: str,
        bug_error: float,
        clean_error: float,
        background: tuple[int, int],
        eo: Evidence,
        en: Evidence,
    ) -> Endpoints:
        t = self.tester
        bug_sha = self.sha(bug_side)
        clean_sha = self.new if bug_side == "old" else self.old
        if background != (0, 0):
            t.journal.event(t.run_id, BACKGROUND_EVENT, background_message(background))
        t.record(self.ev(bug_sha), Verdict.BUG, bug_error, Reason.ENDPOINT)
        t.record(self.ev(clean_sha), Verdict.CLEAN, clean_error, Reason.ENDPOINT)
        direction = Direction.FIX if bug_side == "old" else Direction.REGRESSION
        return Endpoints(direction, self.old, self.new, eo, en, background)

    def run(self, before_trials: Callable[[], None] | None = None) -> Endpoints:
        self.build()
        if before_trials is not None:
            before_trials()
        while True:
            try:
                done = self.step()
            except TryAgain:
                continue
            if done is not None:
                return done
