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

from bisect_driver.app.cluster_session import cluster_session
from bisect_driver.app.live import watch
from bisect_driver.app.overlap import InBackground
from bisect_driver.app.unattended import unattended
from bisect_driver.app.validate import prepare_run
from bisect_driver.backport.stage import Backports, backport_stage
from bisect_driver.bisect.checks import fingerprint_check
from bisect_driver.bisect.confirm import GitHistory
from bisect_driver.bisect.direction import Direction
from bisect_driver.bisect.endpoints import Endpoints
from bisect_driver.bisect.gitbisect import GitBisect, step_command
from bisect_driver.bisect.revert import revert_check
from bisect_driver.context import RunContext
from bisect_driver.hunt.stage import HuntConfig, checks_tester, hunt
from bisect_driver.plugin.errors import Interrupted
from bisect_driver.plugin.options import options_to_argv
from bisect_driver.probe.evidence import Evidence
from bisect_driver.report.result import RunResult
from bisect_driver.report.write import write_report
from bisect_driver.settings import RunPlan, Settings
from bisect_driver.store.repo import SHA_RE
from bisect_driver.store.runstatus import PREPARING, RunStatus, VerdictLine
from bisect_driver.verdict.core import Reason
from bisect_driver.verdict.judge import ProgressFn
from bisect_driver.verdict.stats import Verdict, bisect_steps


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
        with cluster_session(ctx):
            result = _hunt_and_check(ctx, started, live, title)
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
    finally:
        checkout.bisect_reset()
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


class RunEvents:
    """The driver's event sink (hunt.events): the log, the live panel and `status`, and the
    run's row in the journal."""

    def __init__(self, ctx: RunContext, title: str) -> None:
        self.ctx, self.title = ctx, title

    def say(self, message: str) -> None:
        self.ctx.progress.line(message)

    def phase(self, phase: str) -> None:
        self.ctx.status_file.update(phase=phase, eta_at=None)

    def ends_decided(self, ends: Endpoints) -> None:
        assert self.ctx.plan is not None
        self.ctx.journal.set_run(self.ctx.plan.run_id, direction=str(ends.direction))
        bug_end = ends.old if ends.direction is Direction.FIX else ends.new
        status = self.ctx.status_file
        for sha, ev in ((ends.old, ends.old_evidence), (ends.new, ends.new_evidence)):
            verdict = Verdict.BUG if sha == bug_end else Verdict.CLEAN
            line = VerdictLine(
                time.time(), sha, verdict, ev.reproduced, ev.counted, Reason.ENDPOINT
            )
            status.add_verdict(
                line, commit=sha, doing="decided", doing_since=time.time(), what="endpoint"
            )
        status.update(title=f"{self.title}, {ends.direction} hunt")


def _hunt_and_check(ctx: RunContext, started: float, live: bool, title: str) -> RunResult:
    """The hunt stage (ends, bisect, confirmation), then the checks of a single answer and
    the backports; the run's result."""
    assert ctx.plan is not None
    plan, s = ctx.plan, ctx.settings
    say = ctx.progress.line
    status = ctx.status_file
    checkout = ctx.the_checkout()
    say(f"preparing probe {ctx.probe.name} (beside the ends' builds)")
    preparing = InBackground(lambda: ctx.probe.prepare(ctx.cache_dir))

    def prepared() -> None:
        preparing.wait()
        status.update(doing="prepared", doing_since=time.time())

    tester = ctx.tester(progress_fn(ctx))
    # With the live view on, the steps' lines come through its console, above the panel.
    echo = ctx.progress.echo if live else None
    config = HuntConfig(
        old=plan.good,
        new=plan.bad,
        range_size=plan.range_size or 0,
        confidence=s.confidence,
        min_rate=s.min_rate,
        steady_rate=s.steady_rate,
        confirm=not s.no_confirm,
        first_parent=s.first_parent,
    )
    try:
        done = hunt(
            config,
            tester,
            GitBisect(checkout, ctx.run_dir / "bisect-run.log", echo=echo),
            GitHistory(ctx.repo()),
            step_command(ctx.cache_dir, plan.run_id),
            RunEvents(ctx, title),
            lambda end: ctx.define_bug(end, tester.runner),
            before_trials=prepared,
        )
    finally:
        preparing.wait(reraise=False)  # never leave it running; the first error wins
    preparing.wait()
    outcome, ends = done.outcome, done.ends
    status.update(steps_left=0, commits_left=None, eta_at=None)
    checkout.bisect_reset()
    (ctx.run_dir / "bisect.log").write_text(outcome.log)
    checks = []
    backports = Backports()
    if len(outcome.candidates) == 1:
        cand = outcome.candidates[0]
        status.update(phase=f"checking {cand[:12]}", eta_at=None)
        checks.append(fingerprint_check(ctx.journal, ctx.repo(), ctx.recipe.key(), cand))
        strict = checks_tester(config, tester, done)
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
    return RunResult.of(
        outcome.candidates,
        ends.terms,
        outcome.log,
        time.monotonic() - started,
        done.confirmation,
        checks,
        far=done.far,
        floor_source=done.floor_source,
        backports=backports.results,
        background=done.ends.background,
        background_found=done.background_found,
    )
