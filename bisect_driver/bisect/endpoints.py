"""Test both ends first: which one carries the bug decides the hunt's direction.

Bug at the old end only = a fix hunt (git terms broken/fixed); at the new end
only = a regression hunt (good/bad).  The reproducing end also becomes the
*reference* for every later "clean" verdict, so it gets extra calibration
trials while they pay for themselves (see verdict.calibration_pays).

The ends anchor everything after them and are never re-tested, so the clean end is
CLEAN only after enough trials that a failure half as frequent as the bug would have
shown there with probability 1 - delta/2 (stats.anchor_trials, stats.decide_anchor): a
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
from dataclasses import dataclass
from pathlib import Path

from bisect_driver.bisect.direction import Direction
from bisect_driver.plugin.errors import EndpointError
from bisect_driver.probe.evidence import BugSignature, Evidence
from bisect_driver.verdict.core import (
    BACKGROUND_EVENT,
    Apart,
    EndsAction,
    Reason,
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
    background: tuple[float, float] = (0.0, 0.0)

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
    policy = tester.policy
    done_old = tester.journal.verdict(tester.run_id, old)
    done_new = tester.journal.verdict(tester.run_id, new)
    if done_old and done_new and {done_old.verdict, done_new.verdict} == {"bug", "clean"}:
        direction = Direction.FIX if done_old.verdict == Verdict.BUG else Direction.REGRESSION
        return Endpoints(
            direction,
            old,
            new,
            ev_of(tester, old),
            ev_of(tester, new),
            (tester.policy.background_lo, tester.policy.fp),
        )
    artifacts: dict[str, Path] = {}
    for name, sha in (("old", old), ("new", new)):
        built = tester.build(sha)
        if not built.ok or built.artifact_dir is None:
            raise EndpointError(
                f"the {name} end {sha[:12]} does not build"
                f" ({built.record.status}: {built.record.detail}); see {built.record.log_path}"
            )
        artifacts[sha] = built.artifact_dir
    if before_trials is not None:
        before_trials()
    sha_of = {"old": old, "new": new}

    def ev(sha: str) -> Evidence:
        return tester.runner.evidence(sha)

    def batch(side: str, what: str) -> None:
        sha = sha_of[side]
        tester.progress(sha, ev(sha), what)
        tester.run_batch(sha, artifacts[sha])

    def both_again(what: str) -> None:
        """A batch at each end, unless one of them ran out of attempts (trials that never
        count, e.g. all inconclusive): then they cannot be told apart."""
        for side in ("old", "new"):
            e = ev(sha_of[side])
            if e.counted >= policy.max_trials or e.trials >= policy.max_attempts:
                raise EndpointError(
                    f"both ends fail and the {side} end {sha_of[side][:12]} reached"
                    f" --max-trials ({e.reproduced}/{e.counted} of {e.trials} trials) before"
                    " they could be told apart: name the bug you hunt (the command probe's"
                    " --signature REGEX) or raise --max-trials"
                )
        for side in ("old", "new"):
            batch(side, what)

    anchor_alpha = min(policy.alpha, policy.anchor_alpha or policy.alpha)
    while True:
        bug = define_bug(tester, old, new, anchor_alpha, policy.max_trials)
        if isinstance(bug, Pending):
            both_again("testing")
            continue
        tester.runner.bug = bug
        eo, en = ev(old), ev(new)
        background = (0.0, 0.0)
        if eo.reproduced and en.reproduced:
            # The same failure at both ends: is one end's rate significantly higher?
            pair = (eo.reproduced, eo.counted), (en.reproduced, en.counted)
            apart = tell_apart(*pair, anchor_alpha, policy.max_trials)
            if apart is Apart.ALIKE:
                raise EndpointError(
                    f"both ends reproduce the bug alike (old {old[:12]}: {eo.reproduced}/"
                    f"{eo.counted}, new {new[:12]}: {en.reproduced}/{en.counted}"
                    f"{'; ' + _names(bug) if isinstance(bug, BugSignature) else ''}):"
                    " nothing to bisect; if one of them is another failure, name the bug you"
                    " hunt (the command probe's --signature REGEX)"
                )
            if apart is Apart.PENDING:
                both_again("telling the ends apart")
                continue
            background = background_of(pair[1] if apart is Apart.OLD else pair[0])
        nxt = ends_next(
            (eo.reproduced, eo.counted, eo.trials),
            (en.reproduced, en.counted, en.trials),
            policy,
            clean_tests_left=clean_tests_left,
            background=background,
        )
        if nxt.action is EndsAction.FAIL:
            raise EndpointError(nxt.message)
        if nxt.action is EndsAction.TEST:
            for side in nxt.test:
                batch(side, "calibrating" if side == nxt.bug_side else "testing")
            continue
        bug_sha, clean_sha = (old, new) if nxt.bug_side == "old" else (new, old)
        if background != (0.0, 0.0):
            tester.journal.event(
                tester.run_id, BACKGROUND_EVENT, f"{background[0]!r} {background[1]!r}"
            )
        tester.record(ev(bug_sha), Verdict.BUG, nxt.bug_error, Reason.ENDPOINT)
        tester.record(ev(clean_sha), Verdict.CLEAN, nxt.clean_error, Reason.ENDPOINT)
        direction = Direction.FIX if nxt.bug_side == "old" else Direction.REGRESSION
        return Endpoints(direction, old, new, eo, en, background)
