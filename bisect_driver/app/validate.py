"""Validate the user's input and resolve it into a run plan, before any work starts.

Bad input (unknown refs, good not an ancestor of bad, a dirty or missing
repo) is a one-line UserError here, so nothing is built, locked or written
for a run that could never start.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from bisect_driver.context import RunContext, make_context
from bisect_driver.plugin.errors import UserError
from bisect_driver.settings import RunPlan, Settings, make_run_id
from bisect_driver.store.repo import check_clean, is_ancestor, range_size, resolve
from bisect_driver.verdict.stats import expected_verdicts


def prepare_run(settings: Settings, command_line: str | None = None) -> RunContext:
    """The run's context with its plan: ends resolved, range measured, run id fixed."""
    if not settings.good or not settings.bad:
        raise UserError("--good and --bad are both required")
    ctx = make_context(settings)
    repo = ctx.repo()
    check_clean(repo)
    good = resolve(repo, settings.good)
    bad = resolve(repo, settings.bad)
    if good == bad:
        raise UserError(f"--good {settings.good} and --bad {settings.bad} are the same commit")
    if not is_ancestor(repo, good, bad):
        raise UserError(
            f"--good {settings.good} ({good[:12]}) is not an ancestor of"
            f" --bad {settings.bad} ({bad[:12]})"
        )
    size = range_size(repo, good, bad, settings.first_parent)
    verdicts = expected_verdicts(size)
    recipe_key, probe_key = ctx.recipe.key(), ctx.probe.key()
    if command_line is None:
        command_line = "bisect-qemu " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    ctx.plan = RunPlan(
        run_id=make_run_id(settings, good, bad, recipe_key, probe_key),
        repo=str(Path(repo.working_dir or repo.git_dir).resolve()),
        good=good,
        bad=bad,
        good_ref=settings.good,
        bad_ref=settings.bad,
        range_size=size,
        expected_verdicts=verdicts,
        recipe_key=recipe_key,
        probe_key=probe_key,
        command_line=command_line,
        settings=settings,
    )
    return ctx
