"""The main job: validate input, test the ends, bisect, report.

build -> probe -> verdict happen per commit inside :mod:`tester`; this
module strings the run together and owns everything a user sees at the end:
the candidate, the exit status and the report.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

from .bisector import GitBisect, step_command
from .confirm import CONFIRM_FACTOR
from .context import RunContext, jsonable_args, make_context, make_run_id
from .endpoints import FIX, check_endpoints
from .errors import EXIT_AMBIGUOUS, EXIT_FOUND, Interrupted, UserError
from .evidence import Evidence
from .gitops import check_clean, is_ancestor, range_size, resolve
from .lock import CacheLock
from .proc import LIVE_DIR_ENV, kill_live_groups, reap_stale_groups
from .report import write_report
from .verdict import Verdict, expected_verdicts, per_verdict_alpha


def prepare_run(args) -> RunContext:
    """Resolve and validate everything before any work starts."""
    ctx = make_context(args)
    repo = ctx.user_repo
    check_clean(repo)
    good = resolve(repo, args.good)
    bad = resolve(repo, args.bad)
    if good == bad:
        raise UserError(f"--good {args.good} and --bad {args.bad} are the same commit")
    if not is_ancestor(repo, good, bad):
        raise UserError(
            f"--good {args.good} ({good[:12]}) is not an ancestor of --bad {args.bad} ({bad[:12]})"
        )
    size = range_size(repo, good, bad, args.first_parent)
    verdicts = expected_verdicts(size)
    settings = {
        "repo": str(Path(repo.working_dir or repo.git_dir).resolve()),
        "good": good,
        "bad": bad,
        "good_ref": args.good,
        "bad_ref": args.bad,
        "range_size": size,
        "expected_verdicts": verdicts,
        "alpha": per_verdict_alpha(args.confidence, verdicts),
        "recipe_key": ctx.recipe.key(),
        "probe_key": ctx.probe.key(),
        "args": jsonable_args(args),
    }
    settings["command_line"] = "bisect-qemu " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    ctx.run_id = make_run_id(settings)
    ctx.settings = settings
    return ctx


def confirm_answer(ctx, tester, ends, bisect, step, outcome):
    """Retest candidate and parents strictly; correct a misleading verdict and replay."""
    from .confirm import MAX_CORRECTIONS, confirm_run_id, corrected_log, retest
    from .history import parents_in_range
    from .journal import VerdictRecord

    run_id, journal, p = ctx.run_id, ctx.journal, ctx.progress.line
    strict = tester.with_alpha(confirm_run_id(run_id), tester.policy.alpha / CONFIRM_FACTOR)
    rounds: list = []
    corrected: list[str] = []
    for _attempt in range(MAX_CORRECTIONS + 1):
        cand = outcome.candidates[0]
        parents = parents_in_range(ctx.user_repo, cand, ends.old)
        p(
            f"confirming {cand[:12]} (parents {', '.join(x[:12] for x in parents)})"
            f" at error <= {strict.policy.alpha:.2g}"
        )
        conf, wrong = retest(strict, ends.direction, cand, parents)
        rounds.append(conf.checks)
        conf.rounds, conf.corrected = rounds, corrected
        if wrong is None:
            return conf, outcome
        main = journal.verdict(run_id, wrong)
        fresh = journal.verdict(strict.run_id, wrong)
        if main is None or fresh is None or main.verdict == fresh.verdict:
            conf.contradiction = (
                f"{wrong[:12]} behaves unlike its place in the history (not a misjudged"
                " verdict): the bug may have come and gone more than once"
            )
            p(conf.contradiction)
            return conf, outcome
        p(
            f"confirmation overturns {wrong[:12]}: {main.verdict} -> {fresh.verdict};"
            " replaying the bisect with the corrected verdict"
        )
        journal.record_verdict(
            run_id,
            VerdictRecord(
                wrong,
                fresh.verdict,
                fresh.trials,
                fresh.reproduced,
                fresh.error,
                f"corrected by confirmation (was {main.verdict})",
                time.time(),
            ),
        )
        journal.event(run_id, "corrected", f"{wrong} {main.verdict} -> {fresh.verdict}")
        bug_is_old = ends.direction == FIX
        is_old = (fresh.verdict == Verdict.BUG) == bug_is_old
        bisect.replay(corrected_log(outcome.log, wrong, ends.terms, is_old))
        outcome = bisect.run(step, ends.terms)
        corrected.append(wrong)
        if len(outcome.candidates) != 1:
            return conf, outcome
    conf.contradiction = f"still contradicting after {MAX_CORRECTIONS} corrections"
    return conf, outcome


def fingerprint_check(ctx: RunContext, cand: str) -> list:
    """A candidate whose binary equals its parent's cannot have changed the behaviour."""
    from .confirm import Check

    key = ctx.recipe.key()
    mine = ctx.journal.build(cand, key)
    parents = ctx.user_repo.commit(cand).parents
    if not mine or not mine.fingerprint or not parents:
        return [
            Check(
                "candidate's binary differs from its parent's", "not run", "no fingerprint recorded"
            )
        ]
    theirs = ctx.journal.build(parents[0].hexsha, key)
    if not theirs or not theirs.fingerprint:
        return [
            Check("candidate's binary differs from its parent's", "not run", "parent not built")
        ]
    same = mine.fingerprint == theirs.fingerprint
    return [
        Check(
            "candidate's binary differs from its parent's",
            "FAIL" if same else "PASS",
            "identical binaries: a no-op answer is almost certainly wrong"
            if same
            else f"{mine.fingerprint[:12]} vs {theirs.fingerprint[:12]}",
        )
    ]


def backports(ctx: RunContext, tester, ends, cand: str, args) -> list:
    from .backport import backport_checks
    from .confirm import Check, confirm_run_id

    if ends.direction != FIX:
        return [Check("backport", "not run", "regression hunt: revert the candidate instead")]
    strict = tester.with_alpha(confirm_run_id(ctx.run_id), tester.policy.alpha / CONFIRM_FACTOR)
    out = []
    for ref in args.backport_onto or [ctx.settings["good_ref"]]:
        try:
            sha = resolve(ctx.user_repo, ref)
        except UserError as exc:
            out.append(Check(f"backport onto {ref}", "not run", str(exc)))
            continue
        out += backport_checks(ctx.checkout, strict, cand, sha, ref, args.verify_backport)
    ctx.checkout.restore()
    return out


def progress_fn(ctx: RunContext):
    def show(sha: str, ev: Evidence, status: str) -> None:
        ctx.progress.line(
            f"{status} {sha[:12]}: {ev.reproduced}/{ev.counted} reproduced,"
            f" {ev.inconclusive} inconclusive, {ev.errors} errors"
        )

    return show


def _interrupt(signum, _frame):
    """Ctrl-C / SIGTERM: kill running trials and builds first, so that worker
    threads return at once, then unwind (the journal already has every
    finished trial)."""
    kill_live_groups()
    raise Interrupted(f"stopped by signal {signum}")


def recover(ctx: RunContext) -> None:
    """Clean up after a run that died (power cut, kill -9), under the lock.

    Kill its orphaned trial/build process groups, drop its scratch dirs, and
    remove a git index.lock in our own checkout (we hold the cache lock, so
    no git of ours is running there).
    """
    live = ctx.cache_dir / "live"
    reaped = reap_stale_groups(live)
    if reaped:
        ctx.progress.line(f"killed {len(reaped)} process group(s) left by an interrupted run")
    os.environ[LIVE_DIR_ENV] = str(live)
    shutil.rmtree(ctx.cache_dir / "scratch", ignore_errors=True)
    if ctx.checkout is not None:
        stale = Path(ctx.checkout.repo.git_dir) / "index.lock"
        stale.unlink(missing_ok=True)


def run(args) -> int:
    started = time.monotonic()
    ctx = prepare_run(args)
    lock = CacheLock(ctx.cache_dir)
    lock.acquire(f"run {ctx.run_id}")
    handlers = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        recover(ctx)
        return _run_locked(ctx, args, started)
    finally:
        kill_live_groups()
        for s, h in handlers.items():
            signal.signal(s, h)
        lock.release()


def _run_locked(ctx: RunContext, args, started: float) -> int:
    journal, settings = ctx.journal, ctx.settings
    run_id = ctx.run_id
    journal.ensure_run(run_id, settings)
    ctx.settings = journal.run_settings(run_id)  # the first start's settings win
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    ctx.progress.log_path = ctx.run_dir / "driver.log"
    resume_cmd = settings["command_line"]
    p = ctx.progress.line
    p(
        f"run {run_id}: {args.good}..{args.bad}, {settings['range_size']} commits,"
        f" recipe {ctx.recipe.name}, probe {ctx.probe.name}, cache {ctx.cache_dir}"
    )
    journal.set_run(run_id, status="running")
    try:
        ctx.probe.prepare(ctx.cache_dir)
        tester = ctx.tester(progress_fn(ctx))
        clean_tests_left = settings["expected_verdicts"] / 2
        ends = check_endpoints(tester, settings["good"], settings["bad"], clean_tests_left)
        journal.set_run(run_id, direction=ends.direction)
        old_term, new_term = ends.terms
        p(
            f"{ends.direction} hunt: old end {old_term}"
            f" ({ends.old_evidence.reproduced}/{ends.old_evidence.counted}),"
            f" new end {new_term} ({ends.new_evidence.reproduced}/{ends.new_evidence.counted})"
        )
        bisect = GitBisect(ctx.checkout, ctx.run_dir / "bisect-run.log")
        step = step_command(ctx.cache_dir, run_id)
        try:
            bisect.start(settings["good"], settings["bad"], ends.terms, args.first_parent)
            outcome = bisect.run(step, ends.terms)
            confirmation = None
            if not args.no_confirm and len(outcome.candidates) == 1:
                confirmation, outcome = confirm_answer(ctx, tester, ends, bisect, step, outcome)
        finally:
            ctx.checkout.bisect_reset()
        (ctx.run_dir / "bisect.log").write_text(outcome.log)
        checks = list(confirmation.checks) if confirmation else []
        if len(outcome.candidates) == 1:
            checks += fingerprint_check(ctx, outcome.candidates[0])
            checks += backports(ctx, tester, ends, outcome.candidates[0], args)
        result = {
            "candidates": outcome.candidates,
            "terms": list(ends.terms),
            "bisect_log": outcome.log,
            "wall_seconds": time.monotonic() - started,
            "checks": [vars(c) for c in checks],
            "confirmed": bool(confirmation)
            and not confirmation.contradiction
            and all(c.status == "PASS" for c in confirmation.checks),
            "corrected": confirmation.corrected if confirmation else [],
            "confirmation_rounds": [[vars(c) for c in r] for r in confirmation.rounds]
            if confirmation
            else [],
            "confirm_errors": confirmation.errors if confirmation else {},
            "contradiction": confirmation.contradiction if confirmation else None,
        }
        journal.set_run(run_id, status="done", result=result)
    except Interrupted:
        journal.set_run(run_id, status="interrupted")
        p(f"interrupted; every finished trial is saved. Resume with: {resume_cmd}")
        raise
    except BaseException:
        journal.set_run(run_id, status="failed")
        raise
    report_dir = Path(args.report_dir) if args.report_dir else ctx.run_dir
    files = write_report(ctx, report_dir)
    cands = outcome.candidates
    if len(cands) == 1:
        p(f"candidate: {cands[0]} (report: {files.md_path})")
        print(cands[0])
        return EXIT_FOUND
    p(f"{len(cands)} candidates (skipped commits border the answer); report: {files.md_path}")
    for c in cands:
        print(c)
    return EXIT_AMBIGUOUS
