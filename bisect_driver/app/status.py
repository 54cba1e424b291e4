"""`bisect-qemu status`: what a running or finished run is doing, for a person.

Read-only: it opens the journal (WAL mode lets it read while a run writes)
and the run's shared status file (store.runstatus), and never takes the run
lock.  The status file gives what the journal cannot: what is running right
now (a build and its last make target, a commit's trials), drawn as the same
panel the live view shows on the driver's terminal.
"""

from __future__ import annotations

import os
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from bisect_driver.app.live import render
from bisect_driver.context import RunContext
from bisect_driver.progress import fmt_duration
from bisect_driver.report.result import RunResult
from bisect_driver.verdict.stats import bisect_steps


def print_status(ctx: RunContext) -> None:
    """Ends, progress, ETA, what runs now, candidates and the last verdicts of the run
    ``ctx`` was made for."""
    plan = ctx.plan
    assert plan is not None, "status needs a run (context_for_run)"
    console = Console()
    run = ctx.journal.run_row(plan.run_id) or {}
    verdicts = ctx.journal.verdicts(plan.run_id)
    runner = ctx.runner(use_cluster=False)
    now = ctx.status_file.read()
    if now is not None and now.run_id == plan.run_id:
        console.print(render(now, verdicts=0))  # the table below has the verdicts
        if now.state == "running" and not _alive(now.pid):
            console.print(
                f"the process that ran it ({now.pid}) is gone: `bisect-qemu resume` continues"
            )
    else:  # a run from before the status file existed: what the journal says
        console.print(
            f"run {plan.run_id} [bold]{run.get('status')}[/bold]:"
            f" {plan.good_ref}..{plan.bad_ref}"
            f" ({plan.range_size} commits), {run.get('direction') or 'direction unknown'}"
        )
        last = verdicts[-1].decided if verdicts else None
        console.print(_steps_from_journal(run, len(verdicts), last, plan.range_size))
    stored = run.get("result")
    result = RunResult.from_json(stored) if stored else None
    if result and result.candidates:
        console.print("candidates: " + ", ".join(c[:12] for c in result.candidates))
    table = Table("decided", "commit", "trials", "reproduced", "verdict", "reason")
    for v in verdicts[-10:]:
        ev = runner.evidence(v.commit)
        table.add_row(
            time.strftime("%H:%M:%S", time.localtime(v.decided)),
            v.commit[:12],
            str(ev.trials),
            str(ev.reproduced),
            v.verdict,
            v.reason,
        )
    console.print(table)
    console.print(f"logs: {ctx.run_dir}")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still exists (a run killed with -9 leaves "running")."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _steps_from_journal(
    run: dict[str, Any], n_verdicts: int, last: float | None, range_size: int | None
) -> str:
    """Steps and ETA estimated from the verdicts alone (no status file to read)."""
    started = run.get("created") or time.time()
    running = run.get("status") == "running"
    elapsed = (time.time() if running or last is None else last) - started
    steps_total = bisect_steps(range_size or 0)
    steps_done = max(0, n_verdicts - 2)
    steps_left = max(0, steps_total - steps_done)
    per_step = elapsed / max(1, n_verdicts)
    eta = steps_left * per_step if running else None
    return (
        f"steps done {steps_done}, ~{steps_left} left, elapsed {fmt_duration(elapsed)},"
        f" ETA {fmt_duration(eta) if eta is not None else '-'}"
    )
