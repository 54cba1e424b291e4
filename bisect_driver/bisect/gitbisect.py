"""Drive `git bisect run` in the tool's checkout, with the tool itself as the run script.

git keeps the bisect bookkeeping (and its log, which goes in the report);
each commit it visits is judged by ``bisect-qemu step``, which answers with
the exit codes git expects: 0 = old term, 1 = new term, 125 = skip, 255 =
abort.  Every verdict is in the journal, so an interrupted bisect is simply
started again: the commits already judged answer at once.

The steps' stderr (their progress lines) goes straight to the user's stderr,
unless an ``echo`` function is given: then it is piped and each line handed
to it, so that a live view on the terminal prints it above itself instead of
being drawn over.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bisect_driver.plugin.errors import BisectError, Interrupted
from bisect_driver.plugin.proc import die_with_parent, kill_group, register_group
from bisect_driver.store.repo import SHA_RE, Checkout


@dataclass
class BisectOutcome:
    candidates: list[str]
    """The first new-term commit, or the set it lies in when skips border it."""
    log: str


def step_command(cache_dir: Path, run_id: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bisect_driver",
        "step",
        "--cache-dir",
        str(cache_dir),
        "--run-id",
        run_id,
    ]


class GitBisect:
    def __init__(
        self, checkout: Checkout, log_path: Path, echo: Callable[[str], None] | None = None
    ) -> None:
        self.checkout = checkout
        self.log_path = log_path
        self.echo = echo
        self._proc: subprocess.Popen[str] | None = None

    def start(self, old: str, new: str, terms: tuple[str, str], first_parent: bool) -> None:
        repo = self.checkout.repo
        self.checkout.bisect_reset()
        repo.git.reset("--hard", "-q")
        args = ["start", f"--term-old={terms[0]}", f"--term-new={terms[1]}"]
        if first_parent:
            args.append("--first-parent")
        repo.git.bisect(*args, new, old)

    def replay(self, log_text: str, terms: tuple[str, str]) -> BisectOutcome | None:
        """Restart from a (corrected) bisect log; the outcome when the log alone decides.

        A replay that already names the first new-term commit leaves HEAD on some commit
        it tested earlier, and a `git bisect run` after it would test and mark that commit
        again and go on bisecting from a finished state: so a finished replay must not be
        followed by `run`."""
        self.checkout.bisect_reset()
        path = self.log_path.with_name("bisect-replay.log")
        path.write_text(log_text)
        output = self.checkout.repo.git.bisect("replay", str(path))
        try:
            return self._outcome(output, terms)
        except BisectError:
            return None  # not finished: `run` goes on

    def run(self, cmd: list[str], terms: tuple[str, str]) -> BisectOutcome:
        """`git bisect run CMD`; Ctrl-C / SIGTERM stop it and raise Interrupted."""
        env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        step_error_file(self.log_path.parent).unlink(missing_ok=True)
        interrupted = []

        def forward(signum: int, _frame: object) -> None:
            interrupted.append(signum)
            if self._proc is not None:
                kill_group(self._proc.pid, signal.SIGTERM)

        old_handlers = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
        registered = None
        pump: threading.Thread | None = None
        try:
            with open(self.log_path, "a") as log:
                self._proc = subprocess.Popen(
                    ["git", "bisect", "run", *cmd],
                    cwd=self.checkout.path,
                    env=env,
                    stdout=subprocess.PIPE,
                    # the steps' progress lines: straight to the user, or through echo
                    stderr=None if self.echo is None else subprocess.PIPE,
                    text=True,
                    start_new_session=True,
                    # git (and through the step's own PDEATHSIG, the step) dies with the
                    # driver: after a kill -9 nothing may go on recording (docs/cluster.md)
                    preexec_fn=die_with_parent(),  # this thread waits for it below
                )
                if self.echo is not None:
                    pump = threading.Thread(
                        target=_pump, args=(self._proc.stderr, self.echo), daemon=True
                    )
                    pump.start()
                # git and its step run in a session of their own: if the driver is
                # killed with -9 they would go on writing trials beside a resumed run,
                # so the next run must be able to find and reap them.
                registered = register_group(self._proc.pid)
                chunks = []
                assert self._proc.stdout is not None
                for line in self._proc.stdout:
                    chunks.append(line)
                    log.write(line)
                    log.flush()
                self._proc.wait()
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
            if self._proc is not None:
                kill_group(self._proc.pid)
                if registered is not None:
                    registered.unlink(missing_ok=True)
            self._proc = None
            if pump is not None:
                pump.join(timeout=5)
        output = "".join(chunks)
        if interrupted:
            raise Interrupted("interrupted")
        return self._outcome(output, terms)

    def _outcome(self, output: str, terms: tuple[str, str]) -> BisectOutcome:
        log = self.checkout.bisect_log()
        new_term = terms[1]
        m = re.search(rf"^([0-9a-f]{{40}}) is the first {re.escape(new_term)} commit", output, re.M)
        if m:
            return BisectOutcome([m.group(1)], log)
        m = re.search(
            rf"The first {re.escape(new_term)} commit could be any of:\n((?:[0-9a-f]{{40}}\n?)+)",
            output,
        )
        if m:
            return BisectOutcome(SHA_RE.findall(m.group(1)), log)
        stopped = step_error(self.log_path.parent)
        if stopped is not None:
            raise stopped  # the step's own error (a lost cluster, a full disk...), not git's
        tail = " | ".join(output.strip().splitlines()[-3:])
        raise BisectError(f"git bisect run did not converge: {tail}")


def step_error_file(run_dir: Path) -> Path:
    return run_dir / "step-error.json"


def record_step_error(run_dir: Path, exc: BisectError) -> None:
    """The step stopped the bisect with ``exc``: the driver ends with it (its message and
    exit status) instead of git's "did not converge"."""
    data = {"exit_status": exc.exit_status, "message": str(exc)}
    step_error_file(run_dir).write_text(json.dumps(data))


def step_error(run_dir: Path) -> BisectError | None:
    try:
        data = json.loads(step_error_file(run_dir).read_text())
    except (OSError, ValueError):
        return None
    err = BisectError(str(data["message"]))
    err.exit_status = int(data["exit_status"])
    return err


def _pump(stream: IO[str] | None, echo: Callable[[str], None]) -> None:
    """Hand each line of a child's stderr to ``echo`` until the child closes it."""
    if stream is None:
        return
    for line in stream:
        with contextlib.suppress(Exception):  # keep draining, or the child blocks
            echo(line.rstrip("\n"))
