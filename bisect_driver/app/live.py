"""The run as a person sees it: a live panel on a terminal, a heartbeat in a log.

The panel (rich ``Live``, redrawn twice a second in the driver process) shows
the bisect steps done of about how many, with a bar and the ETA, the current
commit and what it is doing (building: for how long and the last make target;
trials: how many, reproductions, other failures), and the last verdicts.  It
reads the run's shared status file (store.runstatus), which the builder, the
trial runner and the step subprocesses keep current.  Event lines print above
it (Progress prints on the same console).  `bisect-qemu status` prints the
same panel once, from another shell.

Why a thread that reads a file rather than callbacks: most of the work runs
in `git bisect run`'s step subprocesses, which cannot call into this process.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from bisect_driver.progress import Heartbeat, Progress, activity_line, fmt_duration
from bisect_driver.store.runstatus import RunStatus, StatusFile

VERDICTS_SHOWN = 4
REFRESH_PER_SECOND = 2.0


def steps_total(st: RunStatus) -> int | None:
    """About how many bisect steps the run takes: those done plus those git still needs
    (log2 of the commits left; the driver starts it at log2 of the range)."""
    if st.steps_left is None:
        return None
    return st.steps_done + st.steps_left


def render(
    st: RunStatus | None, now: float | None = None, verdicts: int = VERDICTS_SHOWN
) -> RenderableType:
    """The panel for one status snapshot (None: the run has not written one yet), with
    its last ``verdicts`` verdicts."""
    now = time.time() if now is None else now
    if st is None:
        return Panel(Text("starting..."), title="bisect-qemu", title_align="left")
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    total = steps_total(st)
    done = min(st.steps_done, total) if total else st.steps_done
    bar = ProgressBar(total=float(total or 1), completed=float(done if total else 0), width=24)
    running = st.state == "running"
    end = now if running else st.updated
    eta = fmt_duration(st.eta_at - now) if st.eta_at and running else "-"
    steps = Table.grid(padding=(0, 1))
    steps.add_row(
        Text(f"{done} of ~{total}" if total else f"{done} of ?"),
        bar,
        Text(f"elapsed {fmt_duration(end - st.started)}  ETA {eta}"),
    )
    grid.add_row("steps", steps)
    if st.commits_left is not None:
        grid.add_row("left", Text(f"~{st.commits_left} commits"))
    grid.add_row("phase", Text(st.phase or "-"))
    grid.add_row("now" if st.busy and running else "last", Text(activity_line(st, now, still="")))
    for i, line in enumerate(st.workers if running else ()):
        grid.add_row("workers" if i == 0 else "", Text(line))
    for i, v in enumerate(st.verdicts[-verdicts:] if verdicts else ()):
        grid.add_row(
            "verdicts" if i == 0 else "",
            Text(
                f"{time.strftime('%H:%M:%S', time.localtime(v.at))} {v.commit[:12]}"
                f" {v.verdict} {v.reproduced}/{v.trials} reproduced"
                + (f" ({v.reason})" if v.reason else "")
            ),
        )
    title = f"bisect-qemu {st.run_id[:12]} {st.state}" + (f": {st.title}" if st.title else "")
    return Panel(Group(grid), title=title, title_align="left")


class LiveView:
    """The panel, redrawn in place below the event lines until the run ends."""

    def __init__(self, progress: Progress, status: StatusFile) -> None:
        self.status = status
        self._last: RenderableType = render(None)
        self.live = Live(
            console=progress.console,
            get_renderable=self._renderable,
            refresh_per_second=REFRESH_PER_SECOND,
            redirect_stdout=False,  # stdout is the answer, for scripts
            redirect_stderr=True,
        )

    def _renderable(self) -> RenderableType:
        with contextlib.suppress(Exception):  # a drawing bug must not stop a run
            self._last = render(self.status.read())
        return self._last

    def __enter__(self) -> LiveView:
        self.live.start(refresh=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()


@contextmanager
def watch(progress: Progress, status: StatusFile) -> Iterator[bool]:
    """The live view on a terminal, else the heartbeat; yields True when the live view is
    on (then child processes' stderr must come through :meth:`Progress.echo`)."""
    if progress.fancy:
        with LiveView(progress, status):
            yield True
    else:
        with Heartbeat(progress.line, status.read):
            yield False
