"""The generic probe: the user's ``--probe-cmd``, one trial per run.

Exit 0 = bug not seen, 1 = bug reproduced, 125 = this trial could not tell;
anything else (including death by a signal) is a probe error, recorded but
never counted.  The command runs through the shell with the artifact
directory as its working directory and ``BISECT_COMMIT``,
``BISECT_ARTIFACT_DIR``, ``BISECT_TRIAL``, ``BISECT_SEED`` and
``BISECT_WORK_DIR`` in its environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from bisect_driver.plugin import (
    Outcome,
    Probe,
    TrialContext,
    TrialResult,
    UserError,
    option,
    run_group,
)

EXIT_OUTCOMES = {0: Outcome.CLEAN, 1: Outcome.REPRODUCED, 125: Outcome.INCONCLUSIVE}


@dataclass(frozen=True)
class CommandOptions:
    probe_cmd: str = option(
        "", "command probe: one trial; exit 0 clean, 1 reproduced, 125 cannot tell"
    )


class CommandProbe(Probe):
    name = "command"
    Options = CommandOptions
    options: CommandOptions

    def __init__(self, options: CommandOptions | None = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        if not self.options.probe_cmd:
            raise UserError("--probe command needs --probe-cmd")

    @property
    def command(self) -> str:
        return self.options.probe_cmd

    def settings(self) -> dict[str, Any]:
        return {"probe_cmd": self.command}

    def run_trial(self, ctx: TrialContext) -> TrialResult:
        env = dict(
            os.environ,
            BISECT_COMMIT=ctx.commit,
            BISECT_ARTIFACT_DIR=str(ctx.artifact_dir),
            BISECT_TRIAL=str(ctx.index),
            BISECT_SEED=str(ctx.seed),
            BISECT_WORK_DIR=str(ctx.work_dir),
        )
        log = ctx.work_dir / "probe.log"
        res = run_group(
            self.command,
            shell=True,
            cwd=ctx.artifact_dir,
            env=env,
            timeout=ctx.timeout,
            log_path=log,
        )
        tail = res.output.strip().splitlines()[-1:] if res.output.strip() else []
        detail = tail[0][:200] if tail else ""
        if res.timed_out:
            outcome = Outcome.HANG
            detail = f"timed out after {ctx.timeout}s"
        elif res.signal is not None:
            outcome = Outcome.ERROR
            detail = f"probe command killed by signal {res.signal}"
        else:
            outcome = EXIT_OUTCOMES.get(
                -1 if res.returncode is None else res.returncode, Outcome.ERROR
            )
            if outcome == Outcome.ERROR:
                detail = f"probe exit {res.returncode}: {detail}"
        log_path = None
        if outcome in (Outcome.REPRODUCED, Outcome.ERROR, Outcome.HANG):
            ctx.evidence_dir.mkdir(parents=True, exist_ok=True)
            kept = ctx.evidence_dir / f"trial-{ctx.index}.log"
            kept.write_text(res.output)
            log_path = str(kept)
        return TrialResult(
            outcome,
            duration=res.duration,
            exit_status=res.returncode,
            signal=res.signal,
            detail=detail,
            log_path=log_path,
        )
