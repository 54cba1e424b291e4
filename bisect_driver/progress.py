"""Progress for a person: event lines, and a heartbeat so that a log never goes quiet.

Every event (a build starts or ends, a verdict, an error) is one timestamped
line on stderr and in the run's ``driver.log``, so ``bisect-qemu ... 2>
night.log`` stays readable (stdout is the answer, for scripts).  Between
events a QEMU build or a batch of trials can take minutes, so in a log the
:class:`Heartbeat` adds a line at least every ``$BISECT_QEMU_HEARTBEAT``
seconds (default 60) while something runs: "still building 1c8a881daaca:
2m10s, last target block/qcow2.o", "trials on 1c8a881daaca: 6 done, 2
reproduced, 0 other failures".  On a terminal the live view (app.live) shows
the same thing in place instead, and the event lines print above it.

Both read the run's shared status file (store.runstatus), because the work
happens in the `git bisect run` step subprocesses as well as in the driver.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.text import Text

from bisect_driver.build.logtail import last_target
from bisect_driver.store.runstatus import BUILDING, PREPARING, TRIALS, RunStatus

HEARTBEAT_ENV = "BISECT_QEMU_HEARTBEAT"
"""Seconds between heartbeat lines in a log (tests set 1)."""
HEARTBEAT_DEFAULT = 60.0


def heartbeat_interval() -> float:
    """``$BISECT_QEMU_HEARTBEAT`` seconds (at least 0.2), else 60; a bad value is ignored:
    progress output is never a reason to stop a run."""
    try:
        return max(0.2, float(os.environ.get(HEARTBEAT_ENV, HEARTBEAT_DEFAULT)))
    except ValueError:
        return HEARTBEAT_DEFAULT


class Progress:
    """The printer: event lines, on a terminal through rich (above a live view, if one
    runs on :attr:`console`), else plain lines."""

    def __init__(self, log_path: Path | None = None) -> None:
        self.console = Console(stderr=True, highlight=False)
        self.fancy = self.console.is_terminal
        self.log_path = log_path

    def line(self, message: str, style: str | None = None) -> None:
        stamp = time.strftime("%H:%M:%S")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a") as fh:
                fh.write(f"{time.strftime('%Y-%m-%d')} {stamp} {message}\n")
        if self.fancy:
            self.console.print(Text.assemble((stamp, "dim"), " ", message), style=style)
        else:
            print(f"{stamp} {message}", file=sys.stderr, flush=True)

    def echo(self, text: str) -> None:
        """A line another process already stamped and logged (a step's, piped here so
        that it prints above the live view instead of through it)."""
        if self.fancy:
            self.console.print(Text(text))
        else:
            print(text, file=sys.stderr, flush=True)


def activity_line(st: RunStatus, now: float | None = None, still: str = "still ") -> str:
    """What the run is doing (or last did), in one line for a person (``still``: the
    heartbeat's word; a view that redraws in place passes "")."""
    now = time.time() if now is None else now
    if st.state != "running":
        now = st.updated  # an ended run's last activity ended with it
    sha = (st.commit or "?")[:12]
    took = fmt_duration(now - st.doing_since) if st.doing_since else "?"
    if st.doing == BUILDING:
        target = last_target(st.build_log)
        return f"{still}building {sha}: {took}" + (f", last target {target}" if target else "")
    if st.doing == TRIALS:
        text = (
            f"trials on {sha}: {st.trials_done} done, {st.reproduced} reproduced,"
            f" {st.other} other failures"
        )
        if st.batch and st.batch_since:
            text += f" ({st.batch} running for {fmt_duration(now - st.batch_since)})"
        return text
    if st.doing == PREPARING:
        return f"{still}preparing {st.what or 'the probe'}: {took}"
    if st.doing:
        what = f" ({st.what})" if st.what else ""
        on = f" {sha}" if st.commit else ""
        return f"{st.doing}{on}{what}, {took} ago"
    return st.phase or "starting"


class Heartbeat:
    """In a log: a line every ``interval`` seconds while a build, a commit's trials or the
    probe's preparation runs, read from the run's status (whichever process does the work).

    One activity is one (commit, what, since) triple: a commit's batches of trials are
    one activity, so a slow commit keeps its heartbeat across batches.
    """

    def __init__(
        self,
        say: Callable[[str], None],
        read: Callable[[], RunStatus | None],
        interval: float | None = None,
    ) -> None:
        self.say = say
        self.read = read
        self.interval = heartbeat_interval() if interval is None else interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        key: tuple[str | None, str, float | None] | None = None
        last = 0.0
        tick = min(1.0, self.interval / 4)
        while not self._stop.wait(tick):
            st = self.read()
            if st is None or not st.busy:
                key = None
                continue
            now = time.time()
            current = (st.commit, st.doing, st.doing_since)
            if current != key:
                key, last = current, st.doing_since or now
            if now - last >= self.interval:
                last = now
                with contextlib.suppress(Exception):  # a heartbeat must never stop a run
                    self.say(activity_line(st, now))


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(max(0, seconds))
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 5400:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
