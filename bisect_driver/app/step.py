"""The run script `git bisect run` calls: judge HEAD, answer 0 / 1 / 125 / 255.

It rebuilds the run from the journal (so it needs nothing but the cache dir
and run id), judges the checked-out commit, and lets the hunt's
:class:`~bisect_driver.bisect.direction.Direction` map the verdict onto git's
exit codes.

It keeps the run's shared status (store.runstatus) current: steps done and
left, the ETA, and each verdict, for the driver's live view and heartbeat
and for `bisect-qemu status`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from bisect_driver.bisect.direction import Direction, StepCode
from bisect_driver.bisect.gitbisect import record_step_error
from bisect_driver.context import RunContext, context_for_run
from bisect_driver.hunt.stage import judge_visited
from bisect_driver.plugin.errors import BisectError
from bisect_driver.plugin.proc import PR_SET_PDEATHSIG, kill_live_groups, set_on_self
from bisect_driver.probe.evidence import Evidence
from bisect_driver.progress import fmt_duration
from bisect_driver.store.runstatus import VerdictLine
from bisect_driver.verdict.stats import Verdict, bisect_steps


def _abort(signum: int, _frame: FrameType | None) -> None:
    kill_live_groups()
    sys.exit(StepCode.ABORT)


def remaining(checkout_path: Path, terms: tuple[str, str]) -> int:
    """Commits git bisect still has to choose among (for the progress line)."""
    try:
        out = subprocess.run(
            [
                "git",
                "rev-list",
                "--count",
                f"refs/bisect/{terms[1]}",
                "--not",
                f"--glob=refs/bisect/{terms[0]}-*",
            ],
            cwd=checkout_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return int(out.strip())
    except (subprocess.CalledProcessError, ValueError):
        return 0


def step_eta(events: list[tuple[float, str, str]], steps_left: int) -> float | None:
    """Time left: steps left times the mean time between the steps done so far."""
    times = [t for t, _kind, _msg in events]
    if len(times) < 2 or not steps_left:
        return None
    return steps_left * (times[-1] - times[0]) / (len(times) - 1)


def _die_with_git() -> None:
    """SIGTERM (-> :func:`_abort`) when `git bisect run` dies: git itself dies with the
    driver (gitbisect), so a driver killed with -9 leaves no step recording trials."""
    parent = os.getppid()
    set_on_self(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def step_main(cache_dir: Path, run_id: str) -> int:
    signal.signal(signal.SIGTERM, _abort)
    signal.signal(signal.SIGINT, _abort)
    _die_with_git()
    ctx: RunContext | None = None
    try:
        ctx = context_for_run(cache_dir, run_id)
        run = ctx.journal.run_row(run_id)
        try:
            direction = Direction(run["direction"] if run else "")
        except ValueError:
            print(f"bisect-qemu step: run {run_id} has no direction yet", file=sys.stderr)
            return StepCode.ABORT
        ctx.progress.log_path = ctx.run_dir / "driver.log"
        ctx.probe.prepare(ctx.cache_dir)  # cached: e.g. the guest kit is built once per run
        commit = ctx.the_checkout().head()
        left = remaining(ctx.the_checkout().path, direction.terms)
        steps_left = bisect_steps(left) if left else 0
        started = time.monotonic()
        steps = ctx.journal.events(run_id, "step")
        eta_s = step_eta(steps, steps_left)
        eta = fmt_duration(eta_s)
        shared = ctx.status_file
        shared.update(
            commit=commit,
            steps_done=len(steps),
            steps_left=steps_left,
            commits_left=left,
            eta_at=time.time() + eta_s if eta_s is not None else None,
        )
        ctx.progress.line(
            f"step {commit[:12]}: judging; ~{left} commits / ~{steps_left} steps left, ETA {eta}"
        )

        def progress(sha: str, ev: Evidence, status: str) -> None:
            if status == Verdict.UNDECIDED and (ev.trials == 0 or ev.trials % 10):
                return  # a line every 10 trials is plenty for an overnight log
            ctx.progress.line(
                f"step {sha[:12]}: {ev.reproduced}/{ev.counted} reproduced"
                f" ({ev.inconclusive} inconclusive, {ev.errors} errors),"
                f" ~{left} commits / ~{steps_left} steps left, ETA {eta}"
            )

        tester = ctx.tester(progress)
        rec, code = judge_visited(tester, direction, commit, steps_left)
        ctx.journal.event(run_id, "step", f"{commit} {rec.verdict} {rec.reproduced}/{rec.trials}")
        took = time.monotonic() - started
        shared.add_verdict(
            VerdictLine(time.time(), commit, rec.verdict, rec.reproduced, rec.trials, rec.reason),
            commit=commit,
            doing="decided",
            doing_since=time.time(),
            what=f"{rec.verdict} {rec.reproduced}/{rec.trials}",
            steps_done=len(steps) + 1,
            steps_left=max(0, steps_left - 1),
        )
        ctx.progress.line(
            f"step {commit[:12]}: verdict {rec.verdict} ({rec.reproduced}/{rec.trials},"
            f" {rec.reason}) in {fmt_duration(took)}; ~{steps_left} steps left"
        )
        return code
    except BisectError as exc:
        print(f"bisect-qemu step: {exc}", file=sys.stderr)
        if ctx is not None:
            with contextlib.suppress(OSError):
                record_step_error(ctx.run_dir, exc)
        return StepCode.ABORT
    except Exception as exc:  # noqa: BLE001 - git must abort, not mark the commit
        import traceback

        traceback.print_exc()
        print(f"bisect-qemu step: internal error {exc!r}", file=sys.stderr)
        return StepCode.ABORT
