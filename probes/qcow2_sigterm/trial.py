"""One trial: fresh qcow2, boot, writes in flight, SIGTERM, then judge.

The qemu under test runs in its own session (process group) like every child
of :func:`bisect_driver.plugin.proc.run_group`; we cannot use run_group itself
because the SIGTERM must be sent *while* qemu runs, at a moment chosen from
what the guest prints, so this module has its own small equivalent that
registers the group in ``LIVE_GROUPS`` (killed on SIGTERM/SIGINT of the driver)
and in the live directory (reaped by the next command after a ``kill -9`` of
the driver: qemu runs in a session of its own and would otherwise run on
forever, its guest idling after the writes), starts qemu with a parent-death
signal (:func:`bisect_driver.plugin.proc.die_with_parent`: the kernel kills it
when the driver dies, kill -9 included) and always kills the whole group
before returning.

The judgement itself lives in :mod:`.judge` (no I/O); :func:`classify_run`
is its run-only part, kept here under its old name.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_fixed

from bisect_driver.plugin import (
    Outcome,
    TrialContext,
    TrialResult,
    die_with_parent,
    kill_group,
    register_group,
    run_group,
    unregister_group,
)
from bisect_driver.plugin.proc import LIVE_GROUPS

from .guest import GuestKit, boot_args
from .judge import GuestRun, abort_message, judge_run
from .verify import HarnessError

__all__ = [
    "GuestRun",
    "SerialWatcher",
    "Workload",
    "classify_run",
    "keep_evidence",
    "make_image",
    "qemu_command",
    "result_from",
    "run_guest",
]


@dataclass(frozen=True)
class Workload:
    """What the guest does and when the host strikes.  All of it feeds the probe key."""

    threads: int = 16
    """Writer threads in the guest, i.e. requests in flight."""
    chunk_kib: int = 64
    """Bytes per pwrite(): 16 fresh clusters per write, so every write allocates."""
    chunks: int = 4096
    """Chunk slots on the disk (disk size = chunks * chunk = 256 MiB)."""
    stride: int = 257
    """Writer visits slot (i * stride) % chunks: consecutive writes land 16 MiB apart, each
    in another L2 table and refcount block, so qcow2's small metadata caches keep evicting
    (flushing) entries while other requests hold references: the bug's window."""
    cluster_kib: int = 4
    """qcow2 cluster size: 4 KiB makes one L2 table cover only 2 MiB (see ``stride``)."""
    kill_min: int = 1
    kill_max: int = 64
    """SIGTERM after a uniformly drawn number of reported chunks in [kill_min, kill_max]..."""
    jitter_ms: float = 20.0
    """...plus a uniform delay in [0, jitter_ms] ms, so the kill is not tied to a completion."""
    memory_mib: int = 128
    interface: str = "virtio"
    append: str = ""
    """Extra guest kernel command-line arguments (e.g. for a custom kernel)."""

    @property
    def chunk_size(self) -> int:
        return self.chunk_kib * 1024

    @property
    def disk_size(self) -> int:
        return self.chunks * self.chunk_size


_LINE = re.compile(r"BQ-(\w[\w-]*)(?: (.*))?")


class SerialWatcher:
    """Reads qemu's stdout (serial console + stderr), logs it, tracks the BQ- protocol.

    It also keeps qemu's first abort/assertion message: the failure's
    signature, so that trials can later be grouped by how qemu failed.
    """

    def __init__(self, stream: IO[bytes], log_path: Path, start: float) -> None:
        self.stream = stream
        self.log = open(log_path, "w", buffering=1)  # noqa: SIM115 - closed in run()
        self.start = start
        self.cond = threading.Condition()
        self.init_seen = False
        self.go_time: float | None = None
        self.reported: set[int] = set()
        self.errors: list[str] = []
        self.alldone = False
        self.abort_message: str | None = None
        self.eof = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        try:
            for raw in iter(self.stream.readline, b""):
                now = time.monotonic()
                line = raw.decode(errors="replace").rstrip("\r\n")
                self.log.write(f"[{now - self.start:8.3f}] {line}\n")
                if self.abort_message is None:
                    # every line: qemu's message may be glued to a console line
                    found = abort_message(line)
                    if found:
                        with self.cond:
                            self.abort_message = found
                m = _LINE.search(line)
                if not m:
                    continue
                with self.cond:
                    kind, arg = m.group(1), m.group(2) or ""
                    if kind == "INIT":
                        self.init_seen = True
                    elif kind == "GO":
                        self.go_time = now
                    elif kind == "D":
                        with contextlib.suppress(ValueError, IndexError):
                            self.reported.add(int(arg.split()[0]))
                    elif kind in ("E", "OPENFAIL", "NODISK", "USAGE"):
                        self.errors.append(f"{kind} {arg}".strip())
                    elif kind == "ALLDONE":
                        self.alldone = True
                    self.cond.notify_all()
        finally:
            with self.cond:
                self.eof = True
                self.cond.notify_all()
            self.log.close()

    def wait_for(self, predicate: Callable[[], object], deadline: float) -> bool:
        """Wait until ``predicate()`` holds (under the lock) or the deadline/EOF passes."""
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    return bool(predicate())
                self.cond.wait(min(left, 0.5))
            return True


def qemu_command(
    artifact_dir: Path,
    kit: GuestKit,
    image: Path,
    work: Workload,
    trial: int,
    accel: str,
) -> list[str]:
    """The qemu command line; only options that QEMU 1.0 and today's QEMU both accept.

    ``-nodefaults`` drops the NIC, VGA and floppy (less firmware to load, a
    faster boot); ``-no-reboot`` with ``panic=1`` makes a guest that panics end
    qemu at once instead of looping until the timeout.
    """
    append = " ".join(
        [
            "console=ttyS0",
            "panic=1",
            "quiet",
            "loglevel=3",
            "tsc=reliable",
            "no_timer_check",
            # Measured (docs/probe.md): the crypto self-tests are 0.4 s of kernel init under
            # TCG, ACPI 0.15 s; without ACPI the cloud kernel wants legacy interrupts.
            "cryptomgr.notests",
            "acpi=off",
            "pci=nomsi",
            f"bq.if={work.interface}",
            f"bq.trial={trial}",
            f"bq.threads={work.threads}",
            f"bq.chunk={work.chunk_size}",
            f"bq.chunks={work.chunks}",
            f"bq.stride={work.stride}",
            *work.append.split(),
        ]
    )
    cmd = [
        str((artifact_dir / "bin" / "qemu-system-x86_64").absolute()),
        "-L",
        str((artifact_dir / "pc-bios").absolute()),
        *boot_args(kit, work.memory_mib, append),
        "-drive",
        f"file={image.resolve()},if={work.interface},cache=none,format=qcow2",
    ]
    if accel == "kvm":
        cmd.append("-enable-kvm")
    return cmd


_compat_cache: dict[str, bool] = {}


def _supports_compat(qemu_img: Path) -> bool:
    """Does this qemu-img know ``-o compat``?  (1.1 does, 1.0 does not; cached.)"""
    key = str(qemu_img.resolve())
    if key not in _compat_cache:
        res = run_group([str(qemu_img), "create", "-f", "qcow2", "-o", "?"], timeout=30)
        _compat_cache[key] = "compat" in res.output
    return _compat_cache[key]


@retry(
    retry=retry_if_exception_type(HarnessError),
    stop=stop_after_attempt(3),
    wait=wait_fixed(0.5),
    reraise=True,
)
def make_image(artifact_dir: Path, image: Path, work: Workload) -> None:
    """A fresh qcow2 made by the build's own qemu-img (what that era's users had).

    ``compat=0.10`` where the tool knows the option: a newer default (qcow2 v3)
    would not open in older qemu and would change the code paths under test.
    """
    qemu_img = artifact_dir / "bin" / "qemu-img"
    image.unlink(missing_ok=True)
    opts = f"cluster_size={work.cluster_kib * 1024}"
    try:
        if _supports_compat(qemu_img):
            opts = "compat=0.10," + opts
        res = run_group(
            [str(qemu_img), "create", "-f", "qcow2", "-o", opts, str(image), str(work.disk_size)],
            timeout=60,
        )
    except OSError as exc:
        raise HarnessError(f"cannot run {qemu_img}: {exc}") from exc
    if not res.ok or not image.is_file():
        raise HarnessError(f"qemu-img create failed: {' '.join(res.output.split())[:200]}")


def run_guest(
    cmd: list[str], work: Workload, ctx: TrialContext, log_path: Path, rng: random.Random
) -> GuestRun:
    """Boot, wait for the writes, SIGTERM at the drawn moment, wait for exit.

    Whatever happens, the whole process group is SIGKILLed before returning,
    so nothing the trial started can outlive it.
    """
    run = GuestRun()
    kill_after = rng.randint(work.kill_min, work.kill_max)
    jitter = rng.uniform(0.0, work.jitter_ms) / 1000.0
    start = run.start = time.monotonic()
    deadline = start + ctx.timeout
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=ctx.work_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # qemu dies with the driver (kill -9 included); this thread waits for it below
            preexec_fn=die_with_parent(),
        )
    except OSError as exc:
        run.start_failed = str(exc)
        return run
    LIVE_GROUPS.add(proc.pid)
    # On disk too: a kill -9 of the driver skips every finally below; qemu dies with
    # it (die_with_parent), but what a wrapper in front of qemu started would outlive
    # it in this session of its own: the next command reaps that.
    registered = register_group(proc.pid)
    watcher = SerialWatcher(proc.stdout, log_path, start)  # type: ignore[arg-type]
    try:
        # 1. the writes start, and the drawn number of chunks is reported
        reached = watcher.wait_for(
            lambda: watcher.go_time is not None and len(watcher.reported) >= kill_after,
            deadline,
        )
        if not reached and watcher.go_time is None and proc.poll() is None:
            run.boot_timeout = True
        if reached and proc.poll() is None:
            if jitter:
                time.sleep(jitter)
            with watcher.cond:
                run.reported_before_kill = len(watcher.reported)
                run.alldone_before_kill = watcher.alldone
            run.kill_time = time.monotonic()
            # Only qemu itself (the group leader), as a user's `kill` would:
            # a wrapper in front of qemu decides what its child gets.
            os.kill(proc.pid, signal.SIGTERM)
        # 2. qemu exits by itself (after SIGTERM, a crash, or a guest panic)
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            run.exit_time = time.monotonic()
        except subprocess.TimeoutExpired:
            if not run.boot_timeout:
                run.hung = run.kill_time is not None
                run.boot_timeout = run.kill_time is None
    finally:
        kill_group(proc.pid)
        proc.wait()
        LIVE_GROUPS.discard(proc.pid)
        unregister_group(registered)
        watcher.thread.join(timeout=10)
        proc.stdout.close()  # type: ignore[union-attr]
    rc = proc.returncode
    if not (run.hung or run.boot_timeout):
        if rc < 0:
            run.signal = -rc
        else:
            run.returncode = rc
    with watcher.cond:
        run.init_seen = watcher.init_seen
        run.go_time = watcher.go_time
        run.reported = set(watcher.reported)
        run.errors = list(watcher.errors)
        run.abort_message = watcher.abort_message
    run.duration = time.monotonic() - start
    return run


def classify_run(run: GuestRun) -> tuple[Outcome, str] | None:
    """The (outcome, detail) decided by the qemu run alone, or None when the image must decide.

    A thin wrapper of :func:`.judge.judge_run`, so the rules exist only there.
    """
    decided = judge_run(run)
    return None if decided is None else (decided.outcome, decided.detail)


def keep_evidence(
    ctx: TrialContext, log_path: Path, image: Path | None, max_images: int = 0
) -> str | None:
    """Copy the serial log into the evidence dir; move the image there too, if given,
    while fewer than ``max_images`` images of this commit are kept.

    Why a cap: a reproducing image is ~3-4 MB and v1.0 reproduces in most trials;
    a few per commit are enough to study the damage.
    """
    ctx.evidence_dir.mkdir(parents=True, exist_ok=True)
    stem = f"qcow2-sigterm-{ctx.commit[:12]}-{ctx.index}"
    dest = ctx.evidence_dir / f"{stem}.log"
    if log_path.is_file():
        shutil.copyfile(log_path, dest)
    if image is not None and image.is_file():
        kept = len(list(ctx.evidence_dir.glob(f"qcow2-sigterm-{ctx.commit[:12]}-*.qcow2")))
        if kept < max_images:
            shutil.move(str(image), ctx.evidence_dir / f"{stem}.qcow2")
    return str(dest) if dest.is_file() else None


def result_from(
    outcome: Outcome, detail: str, run: GuestRun | None, signature: str | None = None
) -> TrialResult:
    """A TrialResult with the timings a person tuning the probe wants to see.

    ``signature`` (what failed, see :class:`.judge.Judgement`) goes to
    ``TrialResult.signature`` when there is one.
    """
    extra: dict[str, Any] = {}
    status = sig = None
    duration = 0.0
    if run is not None:
        status, sig, duration = run.returncode, run.signal, run.duration
        extra = {
            "reported": len(run.reported),
            "reported_before_kill": run.reported_before_kill,
            "boot_s": round(run.go_time - run.start, 3) if run.go_time else None,
        }
        if run.kill_time and run.go_time:
            extra["kill_after_go_s"] = round(run.kill_time - run.go_time, 3)
        if run.exit_time and run.kill_time:
            extra["exit_after_kill_s"] = round(run.exit_time - run.kill_time, 3)
        extra = {k: v for k, v in extra.items() if v is not None}
    return TrialResult(
        outcome,
        duration=duration,
        exit_status=status,
        signal=sig,
        detail=detail,
        signature=signature or None,
        extra=extra,
    )
