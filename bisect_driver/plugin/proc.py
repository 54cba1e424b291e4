"""Run a child in its own process group, and kill the whole group on timeout.

Why not ``sh``'s ``_timeout``: it signals only the direct child, so a hung qemu
started by a shell script would outlive the trial.  An overnight run must leave
no process behind, so every build and trial goes through :func:`run_group`.

A child also dies with its trial: :func:`die_with_parent` (the ``preexec_fn`` of
run_group and of the qcow2 probe's qemu) makes the kernel SIGKILL it when the
driver is killed with -9, which no ``finally`` survives.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ProcResult:
    """What happened to one child process."""

    returncode: int | None
    """Exit status, or None when the process was killed by a signal or timed out."""
    signal: int | None
    """The signal that ended the process, if any (not set for our own timeout kill)."""
    timed_out: bool
    duration: float
    output: str
    """Combined stdout/stderr (also written to ``log_path`` when given)."""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a whole process group, ignoring a group that is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# Process groups started by run_group that are still running; the driver kills
# them on SIGTERM/SIGINT so that nothing outlives an interrupted run.
LIVE_GROUPS: set[int] = set()

# A kill -9 of the driver cannot clean up, and trials run in sessions of their
# own, so each live group is also registered as a file in this directory (set
# by the driver, inherited by `git bisect run` steps); the next run reaps
# whatever is still there.
LIVE_DIR_ENV = "BISECT_QEMU_LIVE_DIR"


def kill_live_groups() -> None:
    for pgid in list(LIVE_GROUPS):
        kill_group(pgid)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PR_SET_CHILD_SUBREAPER = 36
try:  # looked up here, not in the forked child (which should run as little as possible)
    _prctl: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: the live-dir reaping below still works
    _prctl = None


def set_on_self(option: int, value: int) -> None:
    """``prctl(option, value)`` on the calling process; nothing where there is no prctl.

    For a process that sets its own fate (a `git bisect run` step's parent-death signal,
    the cluster guard's subreaper); a child to be started uses :func:`die_with_parent`."""
    if _prctl is not None:
        _prctl(option, value, 0, 0, 0)


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get ``sig`` (SIGKILL: die) when the caller
    dies.  (The cluster's guard asks for SIGTERM, to kill what is below it first.)

    Call it in the thread that starts the child, and keep that thread waiting for the
    child: PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not only
    the process.  run_group and the qcow2 probe's run_guest both fork in the thread
    that waits for the child (a trial's pool worker) and kill its group before they
    return, so the thread never ends before its child; it ends early only when the
    whole driver dies, which is exactly when the child must go.  The kernel signals
    only the direct child (the group leader: qemu itself in the qcow2 probe, the
    shell in front of a ``--probe-cmd``); the leader's own children are left to the
    live-dir registration, which the next command reaps (:func:`reap_stale_groups`).

    If the caller died between fork and prctl, the child's parent is already another
    process and no signal would ever come: the child then kills itself at once.
    """
    if _prctl is None:
        return None
    prctl, parent = _prctl, os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (tells a reused pid from the original)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _group_runs(pgid: int, recorded: str) -> bool:
    """Whether the session and group ``pgid`` registered with its leader's start time
    ``recorded`` still has a running process (zombies do not count).

    The leader itself may be gone: it dies with the driver (:func:`die_with_parent`),
    the processes it started do not.  Those are still the registered group's own:
    Linux hands out no pid that is still some group's or session's id, so while they
    live no other process can have become a leader ``pgid``.  A live process with
    pid ``pgid`` but another start time means the group is gone and the pid reused."""
    leader = _start_time(pgid)
    if not recorded or (leader is not None and leader != recorded):
        return False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields: state ppid pgrp session ... starttime (index 19)
        if fields[0] not in "ZX" and int(fields[2]) == pgid == int(fields[3]):
            return True
    return False


def register_group(pgid: int) -> Path | None:
    live = os.environ.get(LIVE_DIR_ENV)
    if not live:
        return None
    start = _start_time(pgid)
    path = Path(live) / str(pgid)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(start or "")
    except OSError:
        return None
    return path


def unregister_group(path: Path | None) -> None:
    """Forget a group registered by :func:`register_group` (it ended normally)."""
    if path is not None:
        path.unlink(missing_ok=True)


def reap_stale_groups(live_dir: Path) -> list[int]:
    """Kill process groups registered by a run that died without cleaning up."""
    killed: list[int] = []
    if not live_dir.is_dir():
        return killed
    for entry in live_dir.iterdir():
        try:
            pgid = int(entry.name)
        except ValueError:
            continue
        try:
            recorded = entry.read_text().strip()
        except OSError:  # unregistered meanwhile by a process of the killed run
            continue
        if _group_runs(pgid, recorded):
            kill_group(pgid)
            killed.append(pgid)
        entry.unlink(missing_ok=True)
    return killed


def run_group(
    cmd: list[str] | str,
    *,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    log_path: Path | None = None,
    shell: bool = False,
    stdin_data: str | None = None,
) -> ProcResult:
    """Run ``cmd`` in a new session; on timeout SIGKILL its whole process group.

    Output goes to ``log_path`` (if given) as it is produced, so a build log
    survives a power cut; the combined text is also returned.
    """
    start = time.monotonic()
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(log_path, "w+b")  # noqa: SIM115 - closed below
    else:
        import tempfile

        out = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            shell=shell,
            stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # this thread waits for it below
        )
        LIVE_GROUPS.add(proc.pid)
        registered = register_group(proc.pid)
        timed_out = False
        try:
            if stdin_data is not None:
                proc.communicate(stdin_data.encode(), timeout=timeout)
            else:
                proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_group(proc.pid)
            proc.wait()
        finally:
            # The leader may have exited while children linger in its group.
            kill_group(proc.pid)
            LIVE_GROUPS.discard(proc.pid)
            if registered is not None:
                registered.unlink(missing_ok=True)
        out.seek(0)
        text = out.read().decode(errors="replace")
    finally:
        out.close()
    rc = proc.returncode
    sig = -rc if rc is not None and rc < 0 else None
    return ProcResult(
        returncode=None if (timed_out or sig) else rc,
        signal=None if timed_out else sig,
        timed_out=timed_out,
        duration=time.monotonic() - start,
        output=text,
    )
