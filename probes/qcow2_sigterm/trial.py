"""One trial: fresh qcow2, boot, writes in flight, SIGTERM, then judge.

The qemu under test runs in its own session (process group) like every child
of :func:`bisect_driver.proc.run_group`; we cannot use run_group itself
because the SIGTERM must be sent *while* qemu runs, at a moment chosen from
what the guest prints, so this module has its own small equivalent that
registers the group in ``LIVE_GROUPS`` and always kills the whole group before
returning.
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
from dataclasses import dataclass, field
from pathlib import Path

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_fixed

from bisect_driver.proc import LIVE_GROUPS, kill_group, run_group

from ..base import Outcome, TrialContext, TrialResult
from .guest import GuestKit, boot_args
from .verify import HarnessError


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


@dataclass
class GuestRun:
    """What happened to qemu and what the guest said."""

    returncode: int | None = None
    signal: int | None = None
    hung: bool = False
    """qemu did not exit after SIGTERM before the deadline (killed by us)."""
    boot_timeout: bool = False
    """The writes never started before the deadline (killed by us)."""
    start_failed: str | None = None
    init_seen: bool = False
    go_time: float | None = None
    kill_time: float | None = None
    exit_time: float | None = None
    reported: set[int] = field(default_factory=set)
    reported_before_kill: int = 0
    errors: list[str] = field(default_factory=list)
    alldone_before_kill: bool = False
    duration: float = 0.0
    start: float = 0.0


_LINE = re.compile(r"BQ-(\w[\w-]*)(?: (.*))?")


class SerialWatcher:
    """Reads qemu's stdout (serial console + stderr), logs it, tracks the BQ- protocol."""

    def __init__(self, stream, log_path: Path, start: float) -> None:  # type: ignore[no-untyped-def]
        self.stream = stream
        self.log = open(log_path, "w", buffering=1)  # noqa: SIM115 - closed in run()
        self.start = start
        self.cond = threading.Condition()
        self.init_seen = False
        self.go_time: float | None = None
        self.reported: set[int] = set()
        self.errors: list[str] = []
        self.alldone = False
        self.eof = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        try:
            for raw in iter(self.stream.readline, b""):
                now = time.monotonic()
                line = raw.decode(errors="replace").rstrip("\r\n")
                self.log.write(f"[{now - self.start:8.3f}] {line}\n")
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

    def wait_for(self, predicate, deadline: float) -> bool:  # type: ignore[no-untyped-def]
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
        )
    except OSError as exc:
        run.start_failed = str(exc)
        return run
    LIVE_GROUPS.add(proc.pid)
    watcher = SerialWatcher(proc.stdout, log_path, start)
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
    run.duration = time.monotonic() - start
    return run


def classify_run(run: GuestRun) -> tuple[Outcome, str] | None:
    """The outcome decided by the qemu run alone, or None when the image must decide."""
    if run.start_failed:
        return Outcome.INCONCLUSIVE, f"harness: cannot start qemu: {run.start_failed}"
    if run.hung:
        return Outcome.HANG, "qemu did not exit after SIGTERM before the timeout (killed)"
    if run.go_time is None or run.kill_time is None:
        if run.boot_timeout:
            why = "guest did not reach the writes before the timeout"
        elif not run.init_seen:
            why = "guest never started init"
        else:
            why = "guest did not reach the writes"
        ended = (
            f"; qemu killed by signal {run.signal}"
            if run.signal
            else (f"; qemu exited {run.returncode}" if run.returncode is not None else "")
        )
        errors = f" ({'; '.join(run.errors[:2])})" if run.errors else ""
        return Outcome.INCONCLUSIVE, why + ended + errors
    if run.errors:
        return Outcome.INCONCLUSIVE, f"guest write error before the kill: {run.errors[0]}"
    if run.signal is not None:
        name = signal.Signals(run.signal).name if run.signal in signal.valid_signals() else ""
        return Outcome.REPRODUCED, f"qemu died by signal {run.signal} {name} after SIGTERM".rstrip()
    if run.alldone_before_kill:
        return Outcome.INCONCLUSIVE, "all writes finished before the kill (nothing in flight)"
    return None


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


def result_from(outcome: Outcome, detail: str, run: GuestRun | None) -> TrialResult:
    """A TrialResult with the timings a person tuning the probe wants to see."""
    extra: dict = {}
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
        outcome, duration=duration, exit_status=status, signal=sig, detail=detail, extra=extra
    )
