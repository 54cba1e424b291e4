"""The backporter's question: does the candidate apply to my tree, and does it fix it there?

Runs in the tool's own checkout: cherry-pick the candidate onto REF; with
``--verify-backport`` commit the result (a commit object that exists only in
the tool's clone), build it through the recipe and judge it with the probe.
"""

from __future__ import annotations

import git

from bisect_driver.bisect.checks import Check, CheckStatus
from bisect_driver.store.repo import TOOL_IDENTITY, Checkout
from bisect_driver.verdict.judge import CommitTester
from bisect_driver.verdict.stats import Verdict


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
    applies = Check(f"backport applies onto {onto_name}", CheckStatus.NOT_RUN)
    fixes = Check(f"backport fixes {onto_name}", CheckStatus.NOT_RUN, "use --verify-backport")
    try:
        repo.git.cherry_pick("--no-commit", "-x", candidate)
        applies.status, applies.detail = CheckStatus.PASS, "cherry-pick is clean"
    except git.GitCommandError as exc:
        conflicts = repo.git.diff("--name-only", "--diff-filter=U").split()
        applies.status = CheckStatus.FAIL
        applies.detail = "conflicts in " + (", ".join(conflicts) or str(exc).splitlines()[-1])
        repo.git.reset("--hard", "-q")
        return [applies, fixes]
    if not verify:
        repo.git.reset("--hard", "-q")
        return [applies, fixes]
    env = TOOL_IDENTITY
    with repo.git.custom_environment(**env):
        repo.git.commit("-q", "--no-verify", "-m", f"backport {candidate[:12]} onto {onto_name}")
    patched = repo.git.rev_parse("HEAD")
    rec = tester.judge(patched)
    if rec.verdict == Verdict.CLEAN:
        fixes.status = CheckStatus.PASS
    elif rec.verdict == Verdict.BUG:
        fixes.status = CheckStatus.FAIL
    else:
        fixes.status = CheckStatus.NOT_RUN
    fixes.detail = f"{patched[:12]}: {rec.reproduced}/{rec.trials} reproduced ({rec.reason})"
    return [applies, fixes]


def backport_checks_for(
    checkout: Checkout,
    repo: git.Repo,
    strict: CommitTester,
    fix_hunt: bool,
    candidate: str,
    refs: list[str],
    verify: bool,
) -> list[Check]:
    """The backport checks onto each of ``refs`` (fix hunts only)."""
    from bisect_driver.plugin.errors import UserError
    from bisect_driver.store.repo import resolve

    if not fix_hunt:
        return [
            Check("backport", CheckStatus.NOT_RUN, "regression hunt: revert the candidate instead")
        ]
    out: list[Check] = []
    for ref in refs:
        try:
            sha = resolve(repo, ref)
        except UserError as exc:
            out.append(Check(f"backport onto {ref}", CheckStatus.NOT_RUN, str(exc)))
            continue
        out += backport_checks(checkout, strict, candidate, sha, ref, verify)
    checkout.restore()
    return out
