"""The run's shared status file: what the run is doing right now, readable from any process.

Why a file: the commits are judged by a subprocess (`git bisect run` calls
``bisect-qemu step``), so the driver's live view, its heartbeat lines and
``bisect-qemu status`` in another shell cannot see the builder's or the trial
runner's state in memory.  Each of them updates ``cache/runs/<run>/status.json``
instead, and the viewers read it.  The journal keeps the record; this file
only says "now" (the current commit, what is running since when, the last few
verdicts), so it is small, rewritten whole, and never needed to resume.

Writes are atomic (a temporary file, then ``os.replace``): a reader never sees
half a file.  Updates are read-modify-write under an ``flock`` on a side file,
so the driver and a step process (or a thread) never lose each other's fields.
A missing or unreadable file reads as None: the status is a convenience,
never a reason for a run to fail, so every write error is swallowed too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

STATUS_NAME = "status.json"

# What ``doing`` can say; the heartbeat speaks during the first three.
BUILDING = "building"
TRIALS = "trials"
PREPARING = "preparing"
BUSY = (BUILDING, TRIALS, PREPARING)

VERDICTS_KEPT = 8
"""The live view and `status` show the last few verdicts; the journal has them all."""


@dataclass(frozen=True)
class VerdictLine:
    """One verdict as the viewers show it."""

    at: float
    commit: str
    verdict: str
    reproduced: int
    trials: int
    reason: str = ""


@dataclass(frozen=True)
class RunStatus:
    """A snapshot of one run (or of one `build`/`probe` command: run_id "adhoc")."""

    run_id: str = "adhoc"
    pid: int = 0
    """The process that started the run (the driver), to tell a live run from a dead one."""
    state: str = "running"
    """running / done / failed / interrupted."""
    started: float = 0.0
    """When this start of the run began (a resumed run starts again)."""
    updated: float = 0.0
    title: str = ""
    """The range, for a person: "v1.0..v1.1.0 (2713 commits), fix hunt"."""
    phase: str = ""
    """Where in the pipeline: testing the ends, bisecting, confirming, ..."""
    steps_done: int = 0
    steps_left: int | None = None
    """Bisect steps still expected (log2 of the commits git still chooses among)."""
    commits_left: int | None = None
    eta_at: float | None = None
    """Wall-clock time the bisect is expected to end (None: not known yet)."""
    commit: str | None = None
    """The commit being (or last) built or probed."""
    doing: str = ""
    """building / trials / preparing / a finished state ("built", "decided"...)."""
    doing_since: float | None = None
    what: str = ""
    """A few words on the current activity (the probe being prepared, a build failure...)."""
    build_log: str | None = None
    """The running build's log: viewers read its last make target from it."""
    trials_done: int = 0
    reproduced: int = 0
    other: int = 0
    """Reproductions of another failure (recorded, never counted as the bug)."""
    batch: int = 0
    """Trials running right now (0 between batches)."""
    batch_since: float | None = None
    workers: tuple[str, ...] = ()
    """On a cluster (--scheduler): one line per worker, what it runs now or "idle"."""
    verdicts: tuple[VerdictLine, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdicts"] = [asdict(v) for v in self.verdicts]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunStatus:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["verdicts"] = tuple(VerdictLine(**v) for v in values.get("verdicts") or ())
        values["workers"] = tuple(values.get("workers") or ())
        return cls(**values)

    @property
    def busy(self) -> bool:
        return self.doing in BUSY


class StatusFile:
    """``status.json`` of one run directory: read it, or change some of its fields."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def of_run(cls, run_dir: Path) -> StatusFile:
        return cls(run_dir / STATUS_NAME)

    def read(self) -> RunStatus | None:
        """The current status, or None when there is none (yet) or it cannot be read."""
        try:
            return RunStatus.from_json(json.loads(self.path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def start(self, status: RunStatus) -> None:
        """A fresh status for a (re)started run: nothing of a previous start remains."""
        with self._locked():
            self._write(replace(status, updated=time.time()))

    def update(self, **changes: Any) -> None:
        """Change some fields (``RunStatus`` field names), keep the others."""
        with self._locked():
            current = self.read() or RunStatus(pid=os.getpid(), started=time.time())
            self._write(replace(current, updated=time.time(), **changes))

    def add_verdict(self, line: VerdictLine, **changes: Any) -> None:
        """Append a verdict (the last :data:`VERDICTS_KEPT` are kept) and change fields."""
        with self._locked():
            current = self.read() or RunStatus(pid=os.getpid(), started=time.time())
            kept = (*current.verdicts, line)[-VERDICTS_KEPT:]
            self._write(replace(current, updated=time.time(), verdicts=kept, **changes))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path.with_name(self.path.name + ".lock"), "a")  # noqa: SIM115
        except OSError:
            yield
            return
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def _write(self, status: RunStatus) -> None:
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=".status-", dir=self.path.parent)
            with os.fdopen(fd, "w") as fh:
                json.dump(status.to_json(), fh)
            os.replace(tmp, self.path)
        except OSError:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
