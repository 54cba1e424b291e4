"""`bisect-qemu status`: what a running or finished run is doing, for a person.

Read-only: it opens the journal (WAL mode lets it read while a run writes)
and never takes the run lock.
"""

from __future__ import annotations

import math
import time

from rich.console import Console
from rich.table import Table

from bisect_driver.context import RunContext
from bisect_driver.progress import fmt_duration
from bisect_driver.report.result import RunResult


def print_status(ctx: RunContext) -> None:
    """Ends, progress, ETA, candidates and the last verdicts of the run ``ctx`` was made for."""
    plan = ctx.plan
    assert plan is not None, "status needs a run (context_for_run)"
    console = Console()
    run = ctx.journal.run_row(plan.run_id) or {}
    verdicts = ctx.journal.verdicts(plan.run_id)
    runner = ctx.runner()
    started = run.get("created") or time.time()
    elapsed = (verdicts[-1].decided if verdicts else time.time()) - started
    if run.get("status") == "running":
        elapsed = time.time() - started
    steps_total = math.ceil(math.log2(max(2, (plan.range_size or 1) + 1)))
    steps_done = max(0, len(verdicts) - 2)
    steps_left = max(0, steps_total - steps_done)
    per_step = elapsed / max(1, len(verdicts))
    eta = None if run.get("status") != "running" else steps_left * per_step
    console.print(
        f"run {plan.run_id} [bold]{run.get('status')}[/bold]:"
        f" {plan.good_ref}..{plan.bad_ref}"
        f" ({plan.range_size} commits), {run.get('direction') or 'direction unknown'}"
    )
    console.print(
        f"steps done {steps_done}, ~{steps_left} left, elapsed {fmt_duration(elapsed)},"
        f" ETA {fmt_duration(eta) if eta is not None else '-'}"
    )
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
