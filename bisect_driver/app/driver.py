"""The main job, end to end: ends -> `git bisect run` -> confirmation -> checks -> report.

build -> probe -> verdict happen per commit inside verdict.judge (called by
the step script git runs); this module strings one run together and turns
its :class:`~bisect_driver.report.result.RunResult` into the exit status.
Validation lives in app.validate, signals and recovery in app.unattended,
the confirmation loop in bisect.confirm, the checks in bisect.checks.
"""

from __future__ import annotations

import dataclasses
import os
import time

from bisect_driver.app.live import watch
from bisect_driver.app.overlap import InBackground
from bisect_driver.app.unattended import unattended
from bisect_driver.app.validate import prepare_run
from bisect_driver.backport.stage import Backports, backport_stage
from bisect_driver.bisect.checks import fingerprint_check
from bisect_driver.bisect.confirm import Confirmation, confirm_answer, strict_tester
from bisect_driver.bisect.direction import Direction
from bisect_driver.bisect.endpoints import check_endpoints
from bisect_driver.bisect.gitbisect import GitBisect, step_command
from bisect_driver.bisect.revert import revert_check
from bisect_driver.context import RunContext
from bisect_driver.plugin.errors import Interrupted
from bisect_driver.plugin.options import options_to_argv
from bisect_driver.probe.evidence import Evidence
from bisect_driver.report.result import RunResult
from bisect_driver.report.write import write_report
from bisect_driver.settings import RunPlan, Settings
from bisect_driver.store.repo import SHA_RE
from bisect_driver.store.runstatus import PREPARING, RunStatus, VerdictLine
from bisect_driver.verdict.judge import ProgressFn
from bisect_driver.verdict.stats import (
    FLOOR_FACTOR,
    Reference,
    Verdict,
    bisect_steps,
    default_floor,
    spent_alpha,
)


def progress_fn(ctx: RunContext) -> ProgressFn:
    def show(sha: str, ev: Evidence, status: str) -> None:
        ctx.progress.line(
            f"{status} {sha[:12]}: {ev.reproduced}/{ev.counted} reproduced,"
            f" {ev.inconclusive} inconclusive, {ev.errors} errors"
        )
        if status in (Verdict.BUG, Verdict.CLEAN):  # the driver's own: strict tests, checks
            line = VerdictLine(time.time(), sha, status, ev.reproduced, ev.counted)
            ctx.status_file.add_verdict(
                line, commit=sha, doing="decided", doing_since=time.time(), what=status
            )

    return show


def _short(ref: str) -> str:
    """A ref for a title: a full SHA shortened, a name as it was given."""
    return ref[:12] if SHA_RE.fullmatch(ref) else ref


def probe_words(s: Settings) -> list[str]:
    """What ``bisect-qemu probe`` needs besides the commit to build and probe as this run
    does: its plug-ins, their settings, the cache and the trial settings (VERIFY.md)."""
    words = ["--recipe", s.recipe, *options_to_argv(s.recipe_options)]
    words += ["--probe", s.probe, *options_to_argv(s.probe_options)]
    words += ["--cache-dir", str(s.cache_dir), f"--jobs={s.jobs}", f"--hang-as={s.hang_as}"]
    if s.trial_timeout is not None:
        words.append(f"--trial-timeout={s.trial_timeout}")
    return words


def floor_of(settings: Settings, reference: Reference) -> tuple[float, str]:
    """The floor rate the answer's confidence assumes, and where it came from."""
    if settings.min_rate is not None:
        return settings.min_rate, "--min-rate"
    return default_floor(reference), (
        f"the reproducing end's 95% lower bound"
        f" ({reference.reproduced}/{reference.trials}) / {FLOOR_FACTOR:g}"
    )


def run(settings: Settings, command_line: str | None = None) -> int:
    started = time.monotonic()
    ctx = prepare_run(settings, command_line)
    assert ctx.plan is not None
    with (
        unattended(ctx.cache_dir, f"run {ctx.plan.run_id}", ctx.checkout, ctx.progress.line),
        watch(ctx.progress, ctx.status_file) as live,
    ):
        return _run_locked(ctx, started, live)


def _run_locked(ctx: RunContext, started: float, live: bool = False) -> int:
    assert ctx.plan is not None
    journal, run_id = ctx.journal, ctx.plan.run_id
    journal.ensure_run(run_id, ctx.plan.to_json())
    resume_cmd = ctx.plan.command_line
    # The first start's plan stays (how the ends were spelled, its command line), with this
    # start's settings: the run id guarantees that what changes the result is the same,
    # and what does not (--min-free, --jobs, --report-dir...) is the caller's to change
    # on a rerun; the step processes read it from the journal.
    first = RunPlan.from_json(journal.run_settings(run_id))
    ctx.plan = dataclasses.replace(first, settings=ctx.plan.settings)
    journal.set_run_settings(run_id, ctx.plan.to_json())
    plan, s = ctx.plan, ctx.settings
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    ctx.progress.log_path = ctx.run_dir / "driver.log"
    say = ctx.progress.line
    say(
        f"run {run_id}: {plan.good_ref}..{plan.bad_ref}, {plan.range_size} commits,"
        f" recipe {ctx.recipe.name}, probe {ctx.probe.name}, cache {ctx.cache_dir}"
    )
    journal.set_run(run_id, status="running")
    title = f"{_short(plan.good_ref)}..{_short(plan.bad_ref)} ({plan.range_size} commits)"
    status = ctx.status_file
    status.start(
        RunStatus(
            run_id=run_id,
            pid=os.getpid(),
            started=time.time(),
            title=title,
            phase="preparing the probe",
            steps_left=bisect_steps(plan.range_size or 0),
            doing=PREPARING,
            doing_since=time.time(),
            what=f"probe {ctx.probe.name}",
        )
    )
    checkout = ctx.the_checkout()
    try:
        say(f"preparing probe {ctx.probe.name} (beside the ends' builds)")
        preparing = InBackground(lambda: ctx.probe.prepare(ctx.cache_dir))
        status.update(phase="testing the ends")

        def prepared() -> None:
            preparing.wait()
            status.update(doing="prepared", doing_since=time.time())

        tester = ctx.tester(progress_fn(ctx))
        try:
            ends = check_endpoints(
                tester, plan.good, plan.bad, plan.expected_verdicts / 2, before_trials=prepared
            )
        except BaseException:
            preparing.wait(reraise=False)  # never leave it running; the first error wins
            raise
        preparing.wait()  # a resumed run decides the ends from the journal, without trials
        journal.set_run(run_id, direction=str(ends.direction))
        bug_end = ends.old if ends.direction is Direction.FIX else ends.new
        for sha, ev in ((ends.old, ends.old_evidence), (ends.new, ends.new_evidence)):
            verdict = Verdict.BUG if sha == bug_end else Verdict.CLEAN
            line = VerdictLine(time.time(), sha, verdict, ev.reproduced, ev.counted, "endpoint")
            status.add_verdict(
                line, commit=sha, doing="decided", doing_since=time.time(), what="endpoint"
            )
        status.update(title=f"{title}, {ends.direction} hunt", phase="bisecting")
        bug = ctx.define_bug(bug_end, tester.runner)
        if bug is not None and bug.signatures:
            say(f"the bug is what {bug_end[:12]} shows: {'; '.join(sorted(bug.signatures))}")
        old_term, new_term = ends.terms
        say(
            f"{ends.direction} hunt: old end {old_term}"
            f" ({ends.old_evidence.reproduced}/{ends.old_evidence.counted}),"
            f" new end {new_term} ({ends.new_evidence.reproduced}/{ends.new_evidence.counted})"
        )
        # With the live view on, the steps' lines come through its console, above the panel.
        echo = ctx.progress.echo if live else None
        bisect = GitBisect(checkout, ctx.run_dir / "bisect-run.log", echo=echo)
        step = step_command(ctx.cache_dir, run_id)
        confirmation: Confirmation | None = None
        try:
            bisect.start(plan.good, plan.bad, ends.terms, s.first_parent)
            outcome = bisect.run(step, ends.terms)
            status.update(steps_left=0, commits_left=None, eta_at=None)
            reference = tester.reference()  # after the steps' calibration: final
            floor, floor_source = floor_of(s, reference)
            far = (reference.reproduced, reference.trials)
            if not s.no_confirm and len(outcome.candidates) == 1:
                status.update(phase="confirming the answer", eta_at=None)
                say(f"floor rate {floor:.3g} ({floor_source})")
                confirmation, outcome = confirm_answer(
                    run_id,
                    tester,
                    ctx.repo(),
                    ends.direction,
                    ends.old,
                    bisect,
                    step,
                    outcome,
                    say,
                    floor,
                    1.0 - s.confidence,
                    first_parent=s.first_parent,
                )
        finally:
            checkout.bisect_reset()
        (ctx.run_dir / "bisect.log").write_text(outcome.log)
        checks = []
        backports = Backports()
        if len(outcome.candidates) == 1:
            cand = outcome.candidates[0]
            status.update(phase=f"checking {cand[:12]}", eta_at=None)
            checks.append(fingerprint_check(journal, ctx.repo(), ctx.recipe.key(), cand))
            strict = strict_tester(tester, run_id, spent_alpha(1.0 - s.confidence, 0), floor)
            if not s.no_confirm:
                say(f"revert check: {cand[:12]} reverted on the new end {plan.bad[:12]}")
                checks.append(revert_check(checkout, strict, ends.direction, cand, plan.bad))
            refs = list(s.backport_onto) or [plan.good_ref]
            if ends.direction is Direction.FIX:
                status.update(phase=f"backport onto {', '.join(refs)}")
                say(f"backport of {cand[:12]} onto {', '.join(refs)}")
            backports = backport_stage(
                checkout,
                ctx.repo(),
                strict,
                ends.direction is Direction.FIX,
                cand,
                refs,
                list(s.backport_patch),
                s.verify_backport,
                s.report_dir or ctx.run_dir,
                plan.command_line,
                probe_words(s),
            )
            checks += backports.checks
        result = RunResult.of(
            outcome.candidates,
            ends.terms,
            outcome.log,
            time.monotonic() - started,
            confirmation,
            checks,
            far=far,
            floor_source=floor_source,
            backports=backports.results,
        )
        journal.set_run(run_id, status="done", result=result.to_json())
    except Interrupted:
        journal.set_run(run_id, status="interrupted")
        status.update(state="interrupted", eta_at=None)
        say(f"interrupted; every finished trial is saved. Resume with: {resume_cmd}")
        raise
    except BaseException:
        journal.set_run(run_id, status="failed")
        status.update(state="failed", eta_at=None)
        raise
    status.update(phase="writing the report", eta_at=None)
    files = write_report(ctx, s.report_dir or ctx.run_dir)
    status.update(state="done", phase=f"done: {', '.join(c[:12] for c in result.candidates)}")
    cands = result.candidates
    if result.found:
        if result.unconfirmed:
            say(f"candidate {cands[0]} NOT confirmed: {'; '.join(result.unconfirmed)}")
        else:
            say(f"candidate: {cands[0]} (report: {files.md_path})")
        print(cands[0])
    else:
        say(f"{len(cands)} candidates (skipped commits border the answer); report: {files.md_path}")
        for c in cands:
            print(c)
    return result.exit_status()
