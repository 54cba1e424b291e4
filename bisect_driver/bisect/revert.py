"""The revert check (KernelCI's): take the answer back out of the new end and probe that.

Confirmation retests the candidate and its parent, but both are old commits;
the question a maintainer asks next is whether the candidate still *matters*
on today's tree.  So: the new end with the candidate reverted.  In a fix hunt
the bug must come back (the fix is what keeps it away); in a regression hunt
it must go away (the regression is what brings it).  A revert that passes is
independent evidence for the answer, gathered at the other end of the range
from the bisect's own verdicts; one that fails says a later commit also
changed the behaviour (or the answer is wrong).

Runs in the tool's own checkout, like the backport check: the reverted tree
becomes a commit object that exists only in the tool's clone, made with a
fixed identity and date so the same revert always gets the same id - a
resumed run then finds its build and verdict in the journal instead of
building and probing again.
"""

from __future__ import annotations

import contextlib

import git

from bisect_driver.bisect.checks import Check, CheckStatus
from bisect_driver.bisect.direction import Direction
from bisect_driver.store.repo import TOOL_IDENTITY, Checkout, git_error_line
from bisect_driver.verdict.judge import CommitTester
from bisect_driver.verdict.stats import Verdict


def revert_check_name(candidate: str, new_end: str) -> str:
    return f"revert of {candidate[:12]} on the new end {new_end[:12]}"


def revert_check(
    checkout: Checkout,
    tester: CommitTester,
    direction: Direction,
    candidate: str,
    new_end: str,
) -> Check:
    """Build ``new_end`` with ``candidate`` reverted, judge it, and say whether that fits.

    ``tester`` should be the strict confirmation tester
    (:func:`~bisect_driver.bisect.confirm.strict_tester`): the verdict is then
    recorded under the confirmation's run id (the report lists it with the
    other extra commits) and held to the confirmation's error target.

    PASS: fix hunt and the bug comes back, or regression hunt and it goes
    away.  FAIL: the opposite.  NOT_RUN: the revert does not apply
    (conflicts), does not build, or the trials do not decide.  Every detail
    ends with the revert commit's id (in the tool's checkout), so the report
    says what was probed.  The checkout is left clean whatever happens: no
    bisect, revert or conflict state, no changed tracked file.

    The check gates (``Check.gates``): it tests the answer itself, not a
    backporter's tree, so its FAIL means the answer is not confirmed.
    """
    name = revert_check_name(candidate, new_end)
    checkout.bisect_reset()
    try:
        reverted = _make_revert(checkout, candidate, new_end)
    except RevertDoesNotApply as exc:
        return Check(name, CheckStatus.NOT_RUN, f"does not apply: {exc}", gates=True)
    finally:
        _clean(checkout)
    try:
        rec = tester.judge(reverted)
    finally:
        _clean(checkout)
    tag = f"revert commit {reverted[:12]}"
    counts = f"{rec.reproduced}/{rec.trials}"
    if rec.verdict == Verdict.SKIP and rec.reason.startswith("build "):
        why = rec.reason[len("build ") :]
        return Check(name, CheckStatus.NOT_RUN, f"does not build: {why}; {tag}", gates=True)
    if rec.verdict not in (Verdict.BUG, Verdict.CLEAN):
        return Check(name, CheckStatus.NOT_RUN, f"{rec.reason or rec.verdict}; {tag}", gates=True)
    wanted = Verdict.BUG if direction is Direction.FIX else Verdict.CLEAN
    if rec.verdict == Verdict.BUG:
        what = "comes back" if direction is Direction.FIX else "stays"
        detail = f"the bug {what}: {counts} reproduced; {tag}"
    else:
        what = "does not come back" if direction is Direction.FIX else "goes away"
        detail = f"the bug {what}: {counts}, error <= {rec.error:.2g}; {tag}"
    status = CheckStatus.PASS if rec.verdict == wanted else CheckStatus.FAIL
    return Check(name, status, detail, gates=True)


class RevertDoesNotApply(Exception):
    """The revert cannot be made; the message says why (e.g. "conflicts in a.c, b.c")."""


def _make_revert(checkout: Checkout, candidate: str, new_end: str) -> str:
    """Commit ``new_end`` minus ``candidate`` in the checkout and return its sha.

    ``git revert`` itself makes the commit (its standard message names the
    reverted commit); a merge candidate is reverted against its first parent,
    the line it was merged into, which is what "take the merge back out" means.
    Raises :class:`RevertDoesNotApply` when git cannot make it.
    """
    repo = checkout.repo
    checkout.checkout(new_end)
    try:
        with repo.git.custom_environment(**TOOL_IDENTITY):
            repo.git.revert("--no-edit", *checkout.mainline_args(candidate), candidate)
    except git.GitCommandError as exc:
        conflicts = checkout.conflicted_files()
        if conflicts:
            why = "conflicts in " + ", ".join(conflicts)
        elif not repo.git.diff("--cached", "--name-only", "HEAD"):
            why = "the revert is empty (the new end no longer has the change)"
        else:
            why = git_error_line(exc)
        raise RevertDoesNotApply(why) from None
    return checkout.head()


def _clean(checkout: Checkout) -> None:
    """Drop any revert in progress and any change to tracked files.

    ``reset --hard`` alone clears REVERT_HEAD and the conflict state of a
    single-commit revert; ``revert --quit`` also forgets a sequencer, should
    one be there.  Untracked files (the build's outputs) stay: the
    incremental build state is worth keeping.
    """
    repo = checkout.repo
    with contextlib.suppress(git.GitCommandError):
        repo.git.revert("--quit")
    checkout.restore()
