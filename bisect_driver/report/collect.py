"""Build a run's :class:`~bisect_driver.report.model.Report` from the journal and git.

Everything comes from the journal (plan, verdicts, trials, builds, the stored
:class:`~bisect_driver.report.result.RunResult`) and the user's repository, so
`bisect-qemu report` can regenerate the report at any time, also for a run
that is still going or was interrupted.
"""

from __future__ import annotations

import os
import platform
import time
from collections import Counter
from collections.abc import Sequence

import git

from bisect_driver.bisect.confirm import confirm_run_id
from bisect_driver.bisect.direction import Direction
from bisect_driver.bisect.history import describe
from bisect_driver.context import RunContext
from bisect_driver.plugin.host import first_line
from bisect_driver.plugin.probe import Outcome
from bisect_driver.probe.evidence import BugSignature, why_bug
from bisect_driver.probe.trials import TrialRunner
from bisect_driver.report.model import (
    CandidateInfo,
    ConfidenceBasis,
    Environment,
    EvidenceRow,
    PluginInfo,
    Report,
    SignatureRow,
    Statistics,
    Toolchain,
)
from bisect_driver.report.result import RunResult
from bisect_driver.report.where import collect_where
from bisect_driver.settings import RunPlan, Settings
from bisect_driver.store.journal import VerdictRecord
from bisect_driver.verdict.core import FIRST_ROUND_SHARE
from bisect_driver.verdict.stats import SOFT_ALPHA, Verdict, clopper_pearson

DECIDED = (Verdict.BUG, Verdict.CLEAN)
"""Verdicts whose error bound counts towards the confidence (skips claim nothing)."""


def collect(ctx: RunContext) -> Report:
    """The report of the run ``ctx`` was made for (ctx.plan must be set)."""
    plan = ctx.plan
    assert plan is not None, "a report needs a run (context_for_run or prepare_run)"
    repo = ctx.repo()
    run = ctx.journal.run_row(plan.run_id) or {}
    stored = run.get("result")
    result = RunResult.from_json(stored) if stored else None
    verdicts = ctx.journal.verdicts(plan.run_id)
    runner = ctx.runner(use_cluster=False)
    bug = runner.bug  # once: with faces it reads every judged commit's trials
    evidence = _evidence(ctx, plan, repo, verdicts, runner, bug)
    confidence, how = confidence_of(verdicts, result)
    candidates = tuple(result.candidates) if result else ()
    cand = None
    if len(candidates) == 1:
        cand = CandidateInfo.of(describe(repo, candidates[0], plan.bad))
    recipe_key = ctx.recipe.key()
    cand_build = ctx.journal.build(candidates[0], recipe_key) if candidates else None
    endpoints = {plan.good, plan.bad}
    direction = run.get("direction")
    return Report(
        run_id=plan.run_id,
        status=run.get("status"),
        candidate=cand,
        candidates=candidates,
        direction=Direction(direction) if direction else None,
        terms=result.terms if result else None,
        confidence=confidence,
        confidence_method=how,
        basis=basis_of(result),
        confirmed=bool(result and result.confirmed and not result.unconfirmed),
        corrected=tuple(result.corrected) if result else (),
        contradiction=result.contradiction if result else None,
        checks=tuple(result.checks) if result else (),
        confirmation_rounds=(tuple(tuple(r) for r in result.confirmation_rounds) if result else ()),
        alpha_per_verdict=SOFT_ALPHA,
        steps=sum(1 for v in verdicts if v.commit not in endpoints),
        trials=sum(e.trials for e in evidence),
        good=plan.good,
        bad=plan.bad,
        good_ref=plan.good_ref,
        bad_ref=plan.bad_ref,
        range_size=plan.range_size,
        evidence=evidence,
        bisect_log=result.bisect_log if result else "",
        command=plan.command_line,
        wall_seconds=result.wall_seconds if result else None,
        environment=Environment(
            recipe=PluginInfo(ctx.recipe.name, recipe_key, ctx.recipe.settings()),
            fixups_applied_to_candidate=tuple(cand_build.fixups) if cand_build else (),
            probe=PluginInfo(ctx.probe.name, ctx.probe.key(), ctx.probe.settings()),
            statistics=statistics_of(ctx.settings),
            toolchain=toolchain(),
        ),
        generated=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        backports=tuple(result.backports) if result else (),
        signatures=signatures_of(runner, [e.commit for e in evidence], bug),
        cluster=collect_where(
            ctx.journal,
            plan.run_id,
            ctx.settings.scheduler,
            [e.commit for e in evidence],
            runner,
            bug,
            recipe_key,
        ),
    )


def signatures_of(
    runner: TrialRunner, commits: Sequence[str], bug: BugSignature | None
) -> tuple[SignatureRow, ...]:
    """Every signature the reproductions of ``commits`` named, per commit (in that order,
    most frequent first), with whether it counted as ``bug`` and why.

    The same rule as the evidence counts (:func:`why_bug`), so a row's ``is_bug``
    agrees with the evidence table: a reproduction counted as the bug there is one
    here.  Hangs appear only when the run counts them as reproductions.
    """
    rows: list[SignatureRow] = []
    for commit in commits:
        groups: Counter[tuple[str | None, bool, str]] = Counter()
        for t in runner.records(commit):
            hang = t.outcome == Outcome.HANG and runner.hang_as == "reproduced"
            if t.outcome != Outcome.REPRODUCED and not hang:
                continue
            counted, why = why_bug(t, bug)
            groups[(t.signature, counted, why)] += 1
        for (signature, counted, why), n in sorted(
            groups.items(), key=lambda item: (-item[1], item[0][0] or "", item[0][2])
        ):
            rows.append(SignatureRow(commit, signature, n, counted, why))
    return tuple(rows)


def _evidence(
    ctx: RunContext,
    plan: RunPlan,
    repo: git.Repo,
    verdicts: list[VerdictRecord],
    runner: TrialRunner,
    bug: BugSignature | None,
) -> tuple[EvidenceRow, ...]:
    """One row per commit judged by the run or its confirmation, in history order."""
    recipe_key = ctx.recipe.key()
    confirm = {v.commit: v for v in ctx.journal.verdicts(confirm_run_id(plan.run_id))}
    order = position_map(repo, plan, ctx.settings.first_parent)
    seen = {v.commit for v in verdicts}
    extra = [v for c, v in confirm.items() if c not in seen]  # e.g. a backport commit
    rows = []
    for v in verdicts + extra:
        ev = runner.evidence(v.commit, bug)
        mine = v.commit in seen
        build = ctx.journal.build(v.commit, recipe_key)
        cv = confirm.get(v.commit)
        rows.append(
            EvidenceRow(
                commit=v.commit,
                subject=commit_subject(repo, v.commit),
                position=order.get(v.commit),
                trials=ev.trials,
                counted=ev.counted,
                reproduced=ev.reproduced,
                inconclusive=ev.inconclusive,
                hangs=ev.hangs,
                errors=ev.errors,
                rate=ev.reproduced / ev.counted if ev.counted else None,
                rate_ci95=clopper_pearson(ev.reproduced, ev.counted),
                verdict=Verdict(v.verdict) if mine else None,
                error_bound=v.error if mine else None,
                reason=v.reason if mine else "",
                confirm_verdict=Verdict(cv.verdict) if cv else None,
                confirm_error_bound=cv.error if cv else None,
                build=build.status if build else None,
                build_detail=build.detail if build else None,
                build_seconds=build.duration if build else None,
                fingerprint=build.fingerprint if build else None,
                other=ev.other,
                other_signatures=ev.other_signatures,
            )
        )
    rows.sort(key=lambda e: (e.position is None, e.position or 0))
    return tuple(rows)


def basis_of(result: RunResult | None) -> ConfidenceBasis | None:
    if result is None:
        return None
    return ConfidenceBasis(
        floor=result.floor,
        floor_source=result.floor_source,
        near=result.near,
        far=result.far,
        drift=result.drift,
        background=result.background,
        error_bound=result.error_bound,
        unconfirmed=tuple(result.unconfirmed),
    )


def confidence_of(verdicts: Sequence[VerdictRecord], result: RunResult | None) -> tuple[float, str]:
    """The answer's confidence and how it was reached, in words for the report."""
    if result is not None and result.unconfirmed:
        return 0.0, "not claimed: " + "; ".join(result.unconfirmed)
    if result is not None and result.confidence is not None and result.floor is not None:
        return result.confidence, (
            "1 - delta, the error budget of the strict tests of the answer's clean neighbour"
            f" (the first round spends {FIRST_ROUND_SHARE:g} delta, correction round t >= 1"
            f" {1 - FIRST_ROUND_SHARE:.1g} delta/2^t, so all rounds together spend at most"
            f" delta; this run's own bound: {result.error_bound:.3g}): a commit that"
            f" carries the bug at a rate of at least {result.floor:.3g} (the floor,"
            f" {result.floor_source}) would have reproduced there. The bisect's own steps"
            " are soft; a wrong one is caught by this test and corrected."
        )
    path = max(0.0, 1.0 - sum(v.error for v in verdicts if v.verdict in DECIDED))
    errors = result.confirm_errors if result else {}
    if result and result.confirmed and errors:
        conf = max(0.0, 1.0 - sum(errors.values()))
        return conf, (
            "confirmed: 1 - (sum of the error bounds of the confirmation verdicts on the"
            f" candidate and its parent(s)) = {conf:.6f}; the candidate behaves like the new"
            " end and its parent like the old end, so (with one change of behaviour in the"
            " range) it is the commit where the behaviour changed. Without confirmation, the"
            f" union bound over all {len(verdicts)} verdicts gives {path:.6f}."
        )
    return path, (
        f"1 - sum of the error bounds of all {len(verdicts)} bug/clean verdicts (union bound)"
    )


def statistics_of(settings: Settings) -> Statistics:
    """The settings the report lists under environment.statistics."""
    return Statistics(
        confidence=settings.confidence,
        false_positive_rate=settings.false_positive_rate,
        max_trials=settings.max_trials,
        jobs=settings.jobs,
        hang_as=settings.hang_as,
        trial_timeout=settings.trial_timeout,
        build_timeout=settings.build_timeout,
    )


def toolchain() -> Toolchain:
    """This host's compiler, git, Python, kernel and CPUs (a failed query says why)."""
    return Toolchain(
        cc=first_line(["cc", "--version"])[1],
        git=first_line(["git", "--version"])[1],
        python=platform.python_version(),
        kernel=platform.release(),
        machine=f"{platform.machine()}, {os.cpu_count() or 1} CPUs",
    )


def commit_subject(repo: git.Repo, sha: str) -> str:
    """The commit's subject line, or "" when git cannot say (decoration, never fatal)."""
    try:
        summary = repo.commit(sha).summary
    except Exception:  # noqa: BLE001 - a subject is decoration, never fatal
        return ""
    return summary if isinstance(summary, str) else summary.decode(errors="replace")


def position_map(repo: git.Repo, plan: RunPlan, first_parent: bool) -> dict[str, int]:
    """Commit -> position in the range (0 = old end), in topological order."""
    args = ["--topo-order", "--reverse"]
    if first_parent:
        args.append("--first-parent")
    shas: list[str] = repo.git.rev_list(*args, f"{plan.good}..{plan.bad}").split()
    order = {plan.good: 0}
    for i, sha in enumerate(shas, start=1):
        order[sha] = i
    return order
