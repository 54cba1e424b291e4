"""The backporter's question: does the candidate apply to my tree, and does it fix it there?

Runs in the tool's own checkout: cherry-pick the candidate onto REF; with
``--verify-backport`` commit the result (a commit object that exists only in
the tool's clone), build it through the recipe and judge it with the probe.
"""

from __future__ import annotations

import git

from .confirm import Check
from .gitops import Checkout
from .tester import CommitTester
from .verdict import Verdict


def backport_checks(
    checkout: Checkout,
    tester: CommitTester,
    candidate: str,
    onto: str,
    onto_name: str,
    verify: bool,
) -> list[Check]:
    repo = checkout.repo
    checkout.bisect_reset()
    checkout.checkout(onto)
    applies = Check(f"backport applies onto {onto_name}", "not run")
    fixes = Check(f"backport fixes {onto_name}", "not run", "use --verify-backport")
    try:
        repo.git.cherry_pick("--no-commit", "-x", candidate)
        applies.status, applies.detail = "PASS", "cherry-pick is clean"
    except git.GitCommandError as exc:
        conflicts = repo.git.diff("--name-only", "--diff-filter=U").split()
        applies.status = "FAIL"
        applies.detail = "conflicts in " + (", ".join(conflicts) or str(exc).splitlines()[-1])
        repo.git.reset("--hard", "-q")
        return [applies, fixes]
    if not verify:
        repo.git.reset("--hard", "-q")
        return [applies, fixes]
    env = {
        "GIT_AUTHOR_NAME": "bisect-qemu",
        "GIT_AUTHOR_EMAIL": "bisect-qemu@localhost",
        "GIT_COMMITTER_NAME": "bisect-qemu",
        "GIT_COMMITTER_EMAIL": "bisect-qemu@localhost",
        "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
    }
    with repo.git.custom_environment(**env):
        repo.git.commit("-q", "--no-verify", "-m", f"backport {candidate[:12]} onto {onto_name}")
    patched = repo.git.rev_parse("HEAD")
    rec = tester.judge(patched)
    if rec.verdict == Verdict.CLEAN:
        fixes.status = "PASS"
    elif rec.verdict == Verdict.BUG:
        fixes.status = "FAIL"
    else:
        fixes.status = "not run"
    fixes.detail = f"{patched[:12]}: {rec.reproduced}/{rec.trials} reproduced ({rec.reason})"
    return [applies, fixes]
