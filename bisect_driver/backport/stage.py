"""The backport stage of a fix hunt: for each REF, find, verify and deliver a backport.

Its checks never gate the answer (a fix that needs work to reach an old release is still
the fix); they summarise the stage in the report's checks, and the full story is the
report's backport section (model.BackportResult) and ``backport/REF/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import git

from bisect_driver.backport.adapt import adapt
from bisect_driver.backport.deliver import deliver
from bisect_driver.backport.model import BackportResult
from bisect_driver.backport.series import find_series
from bisect_driver.backport.verify import (
    judge_tree,
    summary,
    verify_candidates,
    verify_patch,
    verify_series,
)
from bisect_driver.bisect.checks import Check, CheckStatus
from bisect_driver.plugin.errors import UserError
from bisect_driver.store.repo import Checkout, resolve
from bisect_driver.verdict.judge import CommitTester
from bisect_driver.verdict.stats import Verdict


@dataclass
class Backports:
    results: list[BackportResult] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)


def backport_stage(
    checkout: Checkout,
    user_repo: git.Repo,
    tester: CommitTester,
    fix_hunt: bool,
    candidate: str,
    refs: list[str],
    patches: list[Path],
    verify: bool,
    report_dir: Path,
    command: str,
    probe_options: list[str] | None = None,
) -> Backports:
    """``tester``: the confirmation's strict tester (its CLEAN carries the run's confidence).
    ``probe_options``: the run's options that ``bisect-qemu probe`` takes (for VERIFY.md).
    REFs are named as in the user's repository (``user_repo``; the tool's clone has the
    same objects but not the user's branches)."""
    out = Backports()
    if not fix_hunt:
        out.checks.append(
            Check("backport", CheckStatus.NOT_RUN, "regression hunt: revert the candidate instead")
        )
        return out
    try:
        for ref in refs:
            try:
                sha = resolve(user_repo, ref)
            except UserError as exc:
                out.checks.append(Check(f"backport onto {ref}", CheckStatus.NOT_RUN, str(exc)))
                continue
            result, head = one_ref(checkout, tester, candidate, ref, sha, patches, verify)
            out_dir = deliver(checkout.repo, result, head, report_dir, command, probe_options)
            result.out_dir = str(out_dir)
            out.results.append(result)
            out.checks += checks_of(result, verify)
    finally:
        checkout.restore()
    return out


def one_ref(
    checkout: Checkout,
    tester: CommitTester,
    candidate: str,
    ref: str,
    sha: str,
    patches: list[Path],
    verify: bool,
) -> tuple[BackportResult, str | None]:
    """The result for one REF, and REF + the series in the checkout (to deliver)."""
    series = find_series(checkout, sha, candidate)
    result = BackportResult(
        ref=ref,
        ref_sha=sha,
        candidate=candidate,
        direct=series.direct,
        explanations=series.explanations,
        series=series.commits,
        series_status=series.status,
        series_detail=series.detail,
    )
    if not verify:
        result.verify_detail = "not verified (--no-verify-backport)"
    elif series.head is not None:
        result.trials = verify_series(tester, ref, sha, series.head, series.without_fix)
        result.verified, result.verify_detail = summary(result.trials)
    ref_trial = next((t for t in result.trials if t.commit == sha), None)
    if series.status != "applies":
        # Neither the fix nor a short series applies: the backporter's mechanical steps.
        adaptation = adapt(checkout, ref, sha, candidate, series.symbols)
        result.adapt_status, result.adapt_detail = adaptation.status, adaptation.detail
        result.candidates = adaptation.candidates
        if adaptation.candidates and not verify:
            for c in adaptation.candidates:
                c.detail = "not verified (--no-verify-backport)"
        elif adaptation.candidates:
            ref_trial = ref_trial or judge_tree(tester, ref, sha, Verdict.BUG)
            verify_candidates(tester, ref_trial, ref, adaptation.candidates)
    if patches and ref_trial is None:
        ref_trial = judge_tree(tester, ref, sha, Verdict.BUG)
    for path in patches:
        assert ref_trial is not None
        result.patches.append(verify_patch(checkout, tester, ref_trial, ref, path))
    return result, series.head


def checks_of(result: BackportResult, verify: bool) -> list[Check]:
    ref = result.ref
    own = [e for e in result.explanations if e.commit == result.candidate]
    missing = sorted({s.name for e in own for s in e.symbols})
    lacks = f" (but it uses {', '.join(missing)}, which {ref} lacks)" if missing else ""
    applies = Check(
        f"backport applies onto {ref}", CheckStatus.PASS, f"cherry-pick is clean{lacks}"
    )
    if not result.direct:
        why = "; ".join(
            f"{h.path} {h.header.split('@@')[1].strip()}: context from"
            f" {', '.join(sorted({b.commit[:12] for b in h.blames})) or 'no single commit'}"
            for e in own
            for h in e.hunks
        )
        applies = Check(
            f"backport applies onto {ref}",
            CheckStatus.FAIL,
            (why or "conflicts (see the backport section)") + lacks,
        )
    series = ", ".join(c.commit[:12] for c in result.series)
    fixes = Check(f"backport fixes {ref}", CheckStatus.NOT_RUN, result.verify_detail)
    if result.series_status != "applies":
        fixes.detail = f"no series applies: {result.series_detail}"
    elif verify and result.trials:
        fixes.status = CheckStatus.PASS if result.verified else CheckStatus.FAIL
        fixes.detail = f"series {series}: {result.verify_detail}"
        if not result.verified and any(t.verdict == Verdict.SKIP for t in result.trials):
            fixes.status = CheckStatus.NOT_RUN
    checks = [applies, fixes]
    if result.adapt_status:
        checks.append(adapted_check(result))
    for p in result.patches:
        status = {"PASS": CheckStatus.PASS, "FAIL": CheckStatus.FAIL}.get(
            p.status, CheckStatus.NOT_RUN
        )
        checks.append(Check(f"backport patch {Path(p.path).name} onto {ref}", status, p.detail))
    return checks


def adapted_check(result: BackportResult) -> Check:
    """PASS when a machine-adapted candidate built and probed clean; FAIL when every one
    tried did not; not run when none could be made (why) or none was built."""
    name = f"adapted backport onto {result.ref}"
    passed = [c for c in result.candidates if c.status == "PASS"]
    if passed:
        return Check(name, CheckStatus.PASS, f"{passed[0].name}: {passed[0].detail}")
    if not result.candidates:
        return Check(name, CheckStatus.NOT_RUN, f"cannot be adapted: {result.adapt_detail}")
    tried = [c for c in result.candidates if c.status in ("does not build", "does not fix")]
    why = "; ".join(f"{c.name}: {c.status}" for c in result.candidates)
    return Check(name, CheckStatus.FAIL if tried else CheckStatus.NOT_RUN, why)
