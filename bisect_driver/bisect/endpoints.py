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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bisect_driver.bisect.direction import Direction
from bisect_driver.plugin.errors import EndpointError
from bisect_driver.probe.evidence import BugSignature, Evidence
from bisect_driver.verdict.judge import CommitTester
from bisect_driver.verdict.stats import (
    Reference,
    Verdict,
    anchor_trials,
    bug_p_value,
    calibration_pays,
    clean_p_value,
    decide_anchor,
)


@dataclass
class Endpoints:
    direction: Direction
    old: str
    new: str
    old_evidence: Evidence
    new_evidence: Evidence

    @property
    def terms(self) -> tuple[str, str]:
        return self.direction.terms


def ev_of(tester: CommitTester, sha: str) -> Evidence:
    return tester.runner.evidence(sha)


class Pending:
    """define_bug's answer while both ends fail differently and more trials may tell."""


PENDING = Pending()


def define_bug(
    tester: CommitTester, old: str, new: str, alpha: float, cap: int
) -> BugSignature | None | Pending:
    """Which failures are the bug, from what the ends have shown so far.

    The end that reproduces defines the bug; a failure at the other end with another
    signature is then an "other failure" there, not a second reproducing end.  When
    both ends fail and neither's failures match the other's, the more frequent failure
    is the bug if the other end's is significantly rarer (exact test at ``alpha``: a rare
    flake at the fixed end does not stop a hunt); if neither is, once both ends have run
    the anchor's trials (stats.anchor_trials), nothing tells which one the user hunts:
    that is an error asking to name it.  Until then: PENDING, test both ends more.
    Which end failed *first* never decides: that was a coin toss."""
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
        return None  # the same failure at both ends: "both ends reproduce" below
    ref_old, ref_new = Reference(eo.reproduced, eo.counted), Reference(en.reproduced, en.counted)
    if clean_p_value(en.reproduced, en.counted, ref_old) <= alpha:
        return sig_old
    if clean_p_value(eo.reproduced, eo.counted, ref_new) <= alpha:
        return sig_new
    need = anchor_trials(ref_old if ref_old.rate >= ref_new.rate else ref_new, alpha, cap)
    if min(eo.counted, en.counted) < need:
        return PENDING
    raise EndpointError(
        f"both ends fail, differently: old {old[:12]} shows"
        f" {'; '.join(sorted(sig_old.signatures))} ({eo.reproduced}/{eo.counted}), new"
        f" {new[:12]} shows {'; '.join(sorted(sig_new.signatures))}"
        f" ({en.reproduced}/{en.counted}); name the bug you hunt"
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
        return Endpoints(direction, old, new, ev_of(tester, old), ev_of(tester, new))
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

    def ev(sha: str) -> Evidence:
        return tester.runner.evidence(sha)

    def shows_bug(e: Evidence) -> bool:
        return bug_p_value(e.reproduced, e.counted, policy.fp) <= policy.alpha

    def exhausted(e: Evidence) -> bool:
        return e.counted >= policy.max_trials or e.trials >= policy.max_attempts

    anchor_alpha = min(policy.alpha, policy.anchor_alpha or policy.alpha)
    while True:
        bug = define_bug(tester, old, new, anchor_alpha, policy.max_trials)
        if isinstance(bug, Pending):
            for sha in (old, new):
                if exhausted(ev(sha)):
                    raise EndpointError(
                        f"both ends fail, differently, and {sha[:12]} reached --max-trials:"
                        " name the bug you hunt (the command probe's --signature REGEX)"
                    )
                tester.progress(sha, ev(sha), "testing")
                tester.run_batch(sha, artifacts[sha])
            continue
        tester.runner.bug = bug
        eo, en = ev(old), ev(new)
        bug_old, bug_new = shows_bug(eo), shows_bug(en)
        if bug_old and bug_new:
            raise EndpointError(
                f"both ends reproduce the bug (old {old[:12]}: {eo.reproduced}/{eo.counted},"
                f" new {new[:12]}: {en.reproduced}/{en.counted}): nothing to bisect"
            )
        if bug_old or bug_new:
            bug_sha, clean_sha = (old, new) if bug_old else (new, old)
            bug_ev, clean_ev = (eo, en) if bug_old else (en, eo)
            ref = Reference(bug_ev.reproduced, bug_ev.counted)
            decision = decide_anchor(
                clean_ev.reproduced,
                clean_ev.counted,
                ref,
                policy.alpha,
                anchor_alpha,
                policy.fp,
                policy.max_trials,
            )
            if decision.verdict == Verdict.BUG:
                raise EndpointError("both ends reproduce the bug: nothing to bisect")
            if decision.verdict == Verdict.CLEAN:
                tester.record(
                    bug_ev,
                    Verdict.BUG,
                    bug_p_value(bug_ev.reproduced, bug_ev.counted, policy.fp),
                    "endpoint",
                )
                tester.record(clean_ev, Verdict.CLEAN, decision.error, "endpoint")
                return Endpoints(
                    Direction.FIX if bug_old else Direction.REGRESSION, old, new, eo, en
                )
            if exhausted(clean_ev):
                raise EndpointError(
                    f"could not show that {clean_sha[:12]} is free of the bug within"
                    f" --max-trials {policy.max_trials} ({clean_ev.reproduced}/{clean_ev.counted}"
                    f" reproduced vs {bug_ev.reproduced}/{bug_ev.counted} at {bug_sha[:12]})"
                )
            # More reference trials while they pay; the clean end always gets a batch.
            pays = calibration_pays(
                ref, policy.alpha, clean_tests_left, strict_alpha=policy.strict_alpha
            )
            if pays and not exhausted(bug_ev):
                tester.progress(bug_sha, bug_ev, "calibrating")
                tester.run_batch(bug_sha, artifacts[bug_sha])
            tester.progress(clean_sha, clean_ev, "testing")
            tester.run_batch(clean_sha, artifacts[clean_sha])
            continue
        if exhausted(eo) and exhausted(en):
            raise EndpointError(
                f"neither end reproduced the bug (old {old[:12]}: {eo.reproduced}/{eo.counted},"
                f" new {new[:12]}: {en.reproduced}/{en.counted} trials): both ends behave alike"
            )
        for sha, e in ((old, eo), (new, en)):
            if not exhausted(e):
                tester.progress(sha, e, "testing")
                tester.run_batch(sha, artifacts[sha])
