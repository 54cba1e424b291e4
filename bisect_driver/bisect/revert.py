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

A revert that conflicts is tried harder before it is given up, because a
check that is "not run" whenever anything conflicts gates almost nothing: a
ChangeLog-like file that every commit touches is enough to make every revert
of a real project conflict.  In order (:func:`revert_check` has the rules):
the revert with the conflicted files left as they are, when none of them is
read by the build; then the same on the nearest commit before the new end
where it applies.  The detail says which was probed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

import git

from bisect_driver.bisect.checks import Check, CheckStatus
from bisect_driver.bisect.direction import Direction
from bisect_driver.store.repo import (
    TOOL_IDENTITY,
    Checkout,
    first_parent_descendants,
    git_error_line,
)
from bisect_driver.verdict.core import Reason
from bisect_driver.verdict.judge import CommitTester
from bisect_driver.verdict.stats import Verdict

NOT_BUILT: tuple[str, ...] = (
    "ChangeLog*",
    "NEWS*",
    "NOTES*",
    "AUTHORS*",
    "MAINTAINERS*",
    "README*",
    "*.md",
    "*.txt",
    "*.rst",
    "docs/*",
    "doc/*",
    "!CMakeLists.txt",
)
"""Files a build does not read, so a partial revert may leave them as the tree has them.

Patterns as in ``.gitignore``, simplified: one without ``/`` is matched against the
file's name in any directory, one with ``/`` against the whole path from the top (``*``
crosses directories); ``!`` makes a pattern an exception; the last pattern that matches
decides.  Conservative on purpose: documentation that no build step reads (a project
whose build renders its docs, or reads a ``*.txt`` list, must pass its own list)."""

MAX_TRIES = 12
"""How many commits between the candidate and the new end a revert that conflicts is
tried on (by bisection): 2**12 commits, more than QEMU's v1.0..v1.1.0.  Each try is a
checkout, a revert and a reset in the tool's clone."""


def not_built(path: str, patterns: Sequence[str] = NOT_BUILT) -> bool:
    """Whether ``path`` (relative to the top of the tree) is a file the build does not read,
    by ``patterns`` (see :data:`NOT_BUILT`)."""
    name = PurePosixPath(path).name
    verdict = False
    for pat in patterns:
        negated = pat.startswith("!")
        pat = pat[1:] if negated else pat
        if fnmatchcase(path if "/" in pat else name, pat):
            verdict = not negated
    return verdict


def revert_check_name(candidate: str, new_end: str, base: str | None = None, back: int = 0) -> str:
    """The check's name: where the revert was made (``base``, ``back`` first-parent commits
    before the new end, when not on the new end itself)."""
    if base is None or base == new_end:
        return f"revert of {candidate[:12]} on the new end {new_end[:12]}"
    return (
        f"revert of {candidate[:12]} on {base[:12]},"
        f" {_commits(back)} before the new end {new_end[:12]}"
    )


def revert_check(
    checkout: Checkout,
    tester: CommitTester,
    direction: Direction,
    candidate: str,
    new_end: str,
    *,
    keep_patterns: Sequence[str] = NOT_BUILT,
    max_tries: int = MAX_TRIES,
) -> Check:
    """Build ``new_end`` with ``candidate`` reverted, judge it, and say whether that fits.

    ``tester`` should be the strict confirmation tester
    (:func:`~bisect_driver.bisect.confirm.strict_tester`): the verdict is then
    recorded under the confirmation's run id (the report lists it with the
    other extra commits) and held to the confirmation's error target.

    What is reverted, in order (the detail names it):

    1. ``git revert`` on the new end: "revert applies cleanly".
    2. When it conflicts only in files the build does not read (``keep_patterns``,
       default :data:`NOT_BUILT`: ChangeLog, NEWS, docs...), those files are left at the
       new end's version and the rest is reverted: "partial revert: kept the new end's
       ChangeLog (not built)".  Only if what is reverted still includes a file the build
       reads: a revert of documentation alone would "pass" or "fail" on nothing.
    3. Otherwise the same (1, then 2) on the commits of the new end's first-parent line
       that descend from the candidate, searched by bisection for the newest one where
       it applies (at most ``max_tries`` tries; if applying is not monotonic along the
       line, a commit where it applies, not necessarily the newest): "reverted on X (N
       commits before the new end), where it applies", and the check's name says X.
       The nearer the new end, the more it says about today's tree; any descendant
       still says more than the strict retest of the candidate's parent.

    PASS: fix hunt and the bug comes back, or regression hunt and it goes
    away.  FAIL: the opposite.  NOT_RUN: the revert applies nowhere
    (conflicts; the reason is the new end's), is empty on the new end (a
    later commit undid the change), does not build, or the trials do not
    decide.  Every detail that probed something ends with the revert
    commit's id (in the tool's checkout), so the report says what was
    probed; the commit is made with a fixed identity, date and message, so a
    resumed run finds its build and verdict again.  The checkout is left
    clean whatever happens: no bisect, revert or conflict state, no changed
    tracked file.

    The check gates (``Check.gates``): it tests the answer itself, not a
    backporter's tree, so its FAIL means the answer is not confirmed.
    """
    checkout.bisect_reset()
    try:
        made = _find_revert(checkout, candidate, new_end, keep_patterns, max_tries)
    except RevertDoesNotApply as exc:
        name = revert_check_name(candidate, new_end)
        return Check(name, CheckStatus.NOT_RUN, f"does not apply: {exc}", gates=True)
    finally:
        _clean(checkout)
    try:
        return judge_revert(tester, direction, candidate, new_end, made)
    finally:
        _clean(checkout)


def judge_revert(
    tester: CommitTester, direction: Direction, candidate: str, new_end: str, made: Revert
) -> Check:
    """The check's verdict on a revert already made (:func:`revert_check`'s second half):
    judge ``made.sha`` and say whether that fits the hunt's direction.

    Apart from making the revert, this is the check: bench/simulate.py gives it a
    simulated revert commit, so the calibration counts what the check gates."""
    name = revert_check_name(candidate, new_end, made.base, made.back)
    rec = tester.judge(made.sha)
    tag = f"{made.how()}; revert commit {made.sha[:12]}"
    counts = f"{rec.reproduced}/{rec.trials}"
    if rec.verdict == Verdict.SKIP and Reason.of(rec.reason) is Reason.BUILD:
        why = Reason.BUILD.detail(rec.reason)
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
    """The revert cannot be made; the message says why (e.g. "conflicts in a.c, b.c").

    ``conflicts``: it stopped on conflicts, so another tree (a partial revert, an
    earlier commit) may still take it; an empty revert or another git error ends the
    search at once."""

    def __init__(self, why: str, conflicts: bool = False) -> None:
        super().__init__(why)
        self.conflicts = conflicts


@dataclass(frozen=True)
class Revert:
    """A revert commit made in the tool's clone, and how."""

    sha: str
    base: str
    """The commit it was made on: the new end, or a commit before it."""
    back: int = 0
    """First-parent commits between ``base`` and the new end (0: on the new end)."""
    kept: tuple[str, ...] = ()
    """Conflicted files left at ``base``'s version (a partial revert)."""

    def how(self) -> str:
        """Which variant was probed, for the check's detail."""
        if self.back:
            where = f"reverted on {self.base[:12]} ({_commits(self.back)} before the new end),"
            out = f"{where} where it applies"
            whose = f"{self.base[:12]}'s"
        else:
            out, whose = "", "the new end's"
        if self.kept:
            part = f"partial revert: kept {whose} {_names(self.kept)} (not built)"
            return f"{out}; {part}" if out else part
        return out or "revert applies cleanly"


def _find_revert(
    checkout: Checkout,
    candidate: str,
    new_end: str,
    keep_patterns: Sequence[str],
    max_tries: int,
) -> Revert:
    """The revert to probe: on the new end, else on the newest commit before it where it
    applies (bisection over the first-parent line from the candidate, assuming that once a
    later commit makes it conflict it stays conflicting).  Raises
    :class:`RevertDoesNotApply` with the new end's reason when there is none."""
    try:
        return _make_revert(checkout, candidate, new_end, keep_patterns)
    except RevertDoesNotApply as exc:
        if not exc.conflicts:
            raise
        first = exc
    finally:
        _clean(checkout)
    line = first_parent_descendants(checkout.repo, candidate, new_end)
    line = line[:-1] if line and line[-1] == new_end else line
    lo, hi, tries = -1, len(line), 0  # line[lo] applies (lo = -1: none found), line[hi] not
    best: Revert | None = None
    while hi - lo > 1 and tries < max_tries:
        mid = (lo + hi) // 2
        tries += 1
        try:
            made = _make_revert(checkout, candidate, line[mid], keep_patterns)
        except RevertDoesNotApply:
            hi = mid
        else:
            lo, best = mid, made
        finally:
            _clean(checkout)
    if best is None:
        if tries:
            between = _commits(len(line))
            raise RevertDoesNotApply(
                f"{first}; nor on {tries} tried of the {between} between the candidate"
                " and the new end"
            ) from None
        raise first
    return Revert(best.sha, best.base, len(line) - lo, best.kept)


def _make_revert(
    checkout: Checkout, candidate: str, base: str, keep_patterns: Sequence[str]
) -> Revert:
    """Commit ``base`` minus ``candidate`` in the checkout: the whole revert, or the
    partial one (conflicted files the build does not read left at ``base``'s version).

    ``git revert`` itself makes a clean revert's commit (its standard message names the
    reverted commit); a merge candidate is reverted against its first parent, the line
    it was merged into, which is what "take the merge back out" means.  A partial
    revert is committed with git's message plus a line naming the files kept.
    Raises :class:`RevertDoesNotApply` when neither can be made.
    """
    repo = checkout.repo
    checkout.checkout(base)
    try:
        with repo.git.custom_environment(**TOOL_IDENTITY):
            repo.git.revert("--no-edit", *checkout.mainline_args(candidate), candidate)
        return Revert(checkout.head(), base)
    except git.GitCommandError as exc:
        conflicts = checkout.conflicted_files()
        if not conflicts:
            if not repo.git.diff("--cached", "--name-only", "HEAD"):
                why = "the revert is empty (the new end no longer has the change)"
            else:
                why = git_error_line(exc)
            raise RevertDoesNotApply(why) from None
    why = "conflicts in " + ", ".join(conflicts)
    if not all(not_built(f, keep_patterns) for f in conflicts):
        raise RevertDoesNotApply(why, conflicts=True)
    try:
        for f in conflicts:
            if str(repo.git.ls_tree("--name-only", "HEAD", "--", f)):
                repo.git.checkout("HEAD", "--", f)
            else:
                repo.git.rm("-q", "-f", "--", f)
        reverted = str(repo.git.diff("--cached", "--name-only", "HEAD")).splitlines()
    except git.GitCommandError:
        raise RevertDoesNotApply(why, conflicts=True) from None
    if all(not_built(f, keep_patterns) for f in reverted):
        raise RevertDoesNotApply(
            f"{why} (the rest reverts no file the build reads)", conflicts=True
        )
    kept = tuple(conflicts)
    msg_file = Path(repo.git_dir) / "MERGE_MSG"
    text = msg_file.read_text() if msg_file.exists() else f"Revert {candidate}\n"
    lines = [x for x in text.splitlines() if not x.startswith("#")]
    message = "\n".join(lines).strip() + (
        f"\n\nPartial revert by bisect-qemu: {', '.join(kept)} kept as in {base} (not built).\n"
    )
    try:
        with repo.git.custom_environment(**TOOL_IDENTITY):
            repo.git.commit("-q", "--no-verify", "-m", message)
    except git.GitCommandError as exc:
        raise RevertDoesNotApply(f"{why}; partial revert: {git_error_line(exc)}") from None
    return Revert(checkout.head(), base, 0, kept)


def _commits(n: int) -> str:
    return f"{n} commit" if n == 1 else f"{n} commits"


def _names(paths: Sequence[str], shown: int = 4) -> str:
    """'ChangeLog, NEWS' or 'a, b, c, d and 3 more'."""
    head = ", ".join(paths[:shown])
    return head if len(paths) <= shown else f"{head} and {len(paths) - shown} more"


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
