"""The generic probe: the user's ``--probe-cmd``, one trial per run.

Exit 0 = bug not seen, 1 = bug reproduced, 125 = this trial could not tell;
anything else (including death by a signal) is a probe error, recorded but
never counted.  The command runs through the shell with the artifact
directory as its working directory and ``BISECT_COMMIT``,
``BISECT_ARTIFACT_DIR``, ``BISECT_TRIAL``, ``BISECT_SEED`` and
``BISECT_WORK_DIR`` in its environment.

A reproduction also says *what* failed (``extra["signature"]``), so that a
crash for another reason is not taken for the bug (docs/statistics.md,
"Signatures: what counts as the bug"): with ``--signature REGEX`` it is the
first output line matching REGEX, and ``extra["bug"]`` says whether one
matched; otherwise (and when none matched) it is the last non-empty output
line with its numbers replaced by ``N``, so that two runs of the same failure
get the same signature although pids and addresses differ.
"""

from __future__ import annotations

import os
import re
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

SIGNATURE_MAX = 200
"""A signature is one short line: it is stored with every reproduction and shown in reports."""

_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")
"""Digit runs and hexadecimal numbers (addresses): what differs between runs of one failure."""


def _regex(text: str) -> str:
    """``--signature``: checked when given, so a typo fails before any build."""
    try:
        re.compile(text)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return text


def default_signature(output: str) -> str | None:
    """The last non-empty line of ``output`` with every number replaced by ``N``.

    Why the last line: a probe script usually ends with its verdict ("crashed:
    SIGSEGV").  Why ``N``: pids, addresses and counters differ from run to run
    of one failure, and would make every reproduction a signature of its own.
    None when there is no output at all (such a reproduction matches any bug).
    """
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if not lines:
        return None
    return _NUMBER.sub("N", lines[-1])[:SIGNATURE_MAX]


def match_signature(output: str, pattern: str) -> str | None:
    """The first line of ``output`` in which ``pattern`` is found (``re.search``), stripped."""
    regex = re.compile(pattern)
    for line in output.splitlines():
        if regex.search(line):
            return line.strip()[:SIGNATURE_MAX]
    return None


def signature_extra(output: str, pattern: str) -> dict[str, Any]:
    """``TrialResult.extra`` of a reproduction: its signature and, with a pattern, the verdict.

    ``bug`` is present only when ``pattern`` is given (the user said what the
    bug looks like); without it the driver compares signatures with the
    reproducing end's instead.
    """
    extra: dict[str, Any] = {}
    matched = match_signature(output, pattern) if pattern else None
    signature = matched if matched is not None else default_signature(output)
    if signature is not None:
        extra["signature"] = signature
    if pattern:
        extra["bug"] = matched is not None
    return extra


@dataclass(frozen=True)
class CommandOptions:
    probe_cmd: str = option(
        "", "command probe: one trial; exit 0 clean, 1 reproduced, 125 cannot tell"
    )
    signature: str = option(
        "",
        "command probe: regular expression naming the bug; a trial that exits 1 without an"
        " output line matching it is another failure, recorded but never counted",
        parse=_regex,
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
        # --signature changes what counts, so it changes the key; left out when
        # not given, so trials recorded before the option existed are reused.
        settings: dict[str, Any] = {"probe_cmd": self.command}
        if self.options.signature:
            settings["signature"] = self.options.signature
        return settings

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
        extra: dict[str, Any] = {}
        if outcome == Outcome.REPRODUCED:
            extra = signature_extra(res.output, self.options.signature)
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
            extra=extra,
        )
