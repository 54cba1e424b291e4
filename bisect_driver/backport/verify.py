"""Verification: a backport counts only when it is built and probed, never when it applies.

``patch --fuzz 3`` "applies" the QEMU fix onto 1.0 by putting the hunk into the wrong
function; only a build and the probe tell.  Each tree is judged by the confirmation's
strict tester (bisect.confirm.strict_tester): CLEAN means a bug reproducing at the run's
floor rate would have shown with probability 1 - 0.8 delta, the same standard as the
answer's own confirmation.  The evidence:

- REF reproduces (else there is nothing to fix there, or the probe cannot see it);
- REF + prerequisites without the fix still reproduces, when there are prerequisites
  (the revert direction: the fix, not the series around it, removes the bug);
- REF + series builds and is clean.

Machine-adapted candidates (adapt.py) are judged exactly like a hand-made patch, in the
order made, until one passes: REF must reproduce, REF + candidate must build and be clean.
"""

from __future__ import annotations

from pathlib import Path

from bisect_driver.backport.apply import DoesNotApply, apply_patch_file
from bisect_driver.backport.model import Candidate, PatchResult, Trial
from bisect_driver.store.repo import Checkout
from bisect_driver.verdict.core import Reason
from bisect_driver.verdict.judge import CommitTester
from bisect_driver.verdict.stats import Verdict


def judge_tree(tester: CommitTester, label: str, commit: str, expected: str) -> Trial:
    rec = tester.judge(commit)
    detail = rec.reason
    if rec.verdict == Verdict.SKIP and Reason.of(rec.reason) is Reason.BUILD:
        detail = "does not build: " + Reason.BUILD.detail(rec.reason)
    return Trial(
        label=label,
        commit=commit,
        verdict=str(rec.verdict),
        reproduced=rec.reproduced,
        trials=rec.trials,
        error=rec.error,
        detail=detail,
        expected=expected,
    )


def summary(trials: list[Trial]) -> tuple[bool, str]:
    """Verified?  And one line saying why (not)."""
    bad = [t for t in trials if not t.ok]
    if not bad:
        return True, "; ".join(f"{t.label}: {describe(t)}" for t in trials)
    return False, "; ".join(f"{t.label}: {describe(t)}" for t in bad)


def describe(t: Trial) -> str:
    if t.verdict == Verdict.BUG:
        return f"reproduces ({t.reproduced}/{t.trials})"
    if t.verdict == Verdict.CLEAN:
        return f"clean (0/{t.trials}, error <= {t.error:.2g})"
    return t.detail or str(t.verdict)


def verify_series(
    tester: CommitTester, ref: str, ref_sha: str, head: str, without_fix: str | None
) -> list[Trial]:
    trials = [judge_tree(tester, ref, ref_sha, Verdict.BUG)]
    if without_fix:
        label = f"{ref} + prerequisites, without the fix"
        trials.append(judge_tree(tester, label, without_fix, Verdict.BUG))
    trials.append(judge_tree(tester, f"{ref} + series", head, Verdict.CLEAN))
    return trials


def verify_patch(
    checkout: Checkout, tester: CommitTester, ref_trial: Trial, ref: str, path: Path
) -> PatchResult:
    """``--backport-patch FILE``: apply onto REF, build, probe.  PASS only when REF itself
    reproduces (``ref_trial``) and REF + FILE is clean; the detail gives both."""
    name = str(path)
    if not path.is_file():
        return PatchResult(name, "not run", f"no such file: {path}")
    if not ref_trial.ok:
        return PatchResult(name, "not run", f"{ref} itself: {describe(ref_trial)}")
    try:
        head = apply_patch_file(checkout, ref_trial.commit, path)
    except DoesNotApply as exc:
        return PatchResult(name, "FAIL", f"{exc} onto {ref}")
    trial = judge_tree(tester, f"{ref} + {path.name}", head, Verdict.CLEAN)
    if trial.verdict == Verdict.CLEAN:
        status = "PASS"
    elif trial.verdict == Verdict.BUG:
        status = "FAIL"
    else:
        status = "not run"
    detail = f"{ref} {describe(ref_trial)}; {ref} + {path.name} {describe(trial)}"
    return PatchResult(name, status, detail, trial)


def status_of(trial: Trial) -> str:
    """A candidate's result in the backporter's words."""
    if trial.verdict == Verdict.CLEAN:
        return "PASS"
    if trial.verdict == Verdict.BUG:
        return "does not fix"
    if trial.detail.startswith("does not build"):
        return "does not build"
    return "not run"


def verify_candidates(
    tester: CommitTester, ref_trial: Trial, ref: str, candidates: list[Candidate]
) -> None:
    """Build and probe each candidate until one passes; the rest are "not tried" (each is a
    build and a strict test, and one verified patch is what the backporter needs)."""
    passed: Candidate | None = None
    for c in candidates:
        if passed is not None:
            c.status, c.detail = "not tried", f"{passed.name} passed first"
        elif not ref_trial.ok:
            c.status, c.detail = "not run", f"{ref} itself: {describe(ref_trial)}"
        elif c.commit is None:
            c.status, c.detail = "does not apply", "it could not be committed onto REF"
        else:
            c.trial = judge_tree(tester, f"{ref} + {c.name}", c.commit, Verdict.CLEAN)
            c.status = status_of(c.trial)
            c.detail = f"{ref} {describe(ref_trial)}; {ref} + {c.name} {describe(c.trial)}"
            if c.status == "PASS":
                passed = c
