"""The qcow2-sigterm probe: does SIGTERM during qcow2 writes crash qemu or lose data?

The 2012 bug (qemu < 1.1.0): with ``cache=none`` qcow2 keeps its metadata in a
write-back cache; SIGTERM while requests are in flight closes the image under
their feet (``qcow2_cache_destroy: Assertion 'c->entries[i].ref == 0'``,
SIGABRT) and written data or metadata is lost.  A trial recreates that moment
and judges it; see docs/probe.md for the design and the measured rates.
"""

from __future__ import annotations

import math
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from bisect_driver.plugin import (
    HostCheck,
    Outcome,
    Probe,
    TrialContext,
    TrialResult,
    UserError,
    option,
)

from . import accel as accel_mod
from . import gfs
from .guest import GuestKit, build_guest_kit, custom_kit, default_kernel, load_kit
from .judge import GuestRun, judge, judge_run, wants_data
from .trial import (
    Workload,
    keep_evidence,
    make_image,
    qemu_command,
    result_from,
    run_guest,
)
from .verify import (
    TRUSTED_QEMU_IMG,
    CheckResult,
    DataResult,
    HarnessError,
    allocated_extents,
    check_image,
    compare_data,
    compare_raw_file,
    image_to_raw,
    slots_touching,
)

VERIFY_MODES = ("qemu-img", "guestfs")
ACCELS = ("auto", "tcg", "kvm")


@dataclass
class _Pending:
    """A trial whose qemu run is over and whose image data is still to be read.

    It holds only facts; :func:`.judge.judge` turns them into the outcome.
    """

    ctx: TrialContext
    run: GuestRun | None
    """None when qemu never ran (the harness failed first)."""
    image: Path
    log: Path
    error: str | None = None
    """The probe itself raised: an ERROR result, never evidence."""
    harness_errors: list[str] = field(default_factory=list)
    """Our own tools failed (after retries) while gathering the facts."""
    check: CheckResult | None = None
    reported: frozenset[int] = frozenset()
    slots: set[int] | None = None
    """guestfs mode: the chunk slots to read (reported or allocated); the rest is unallocated."""
    map_error: str | None = None
    """guestfs mode: why the trusted ``qemu-img map`` could not map the image (corrupt)."""
    gfs_error: str | None = None
    """Why the batch's guestfs launch failed (its data was then read with qemu-img)."""
    verify_s: float | None = None
    """Seconds spent reading the image's data back (for tuning)."""


_D = Workload()


def _kill_after(text: str) -> str:
    lo, _, hi = text.partition("-")
    try:
        int(lo), int(hi or lo)
    except ValueError:
        raise ValueError("expected MIN-MAX, e.g. 1-64") from None
    return text


@dataclass(frozen=True)
class Qcow2Options:
    verify: str = option(
        "qemu-img",
        "how image data is read back: trusted qemu-img convert per trial, or one libguestfs"
        " launch per batch (default: qemu-img)",
        choices=VERIFY_MODES,
    )
    accel: str = option(
        "auto",
        "guest accelerator; auto boots once with KVM and falls back to TCG (cached)",
        choices=ACCELS,
    )
    guest_kernel: Path | None = option(None, "bzImage for the guest kit")
    guest_modules: Path | None = option(
        None, "modules dir matching --guest-kernel (default: from its header)"
    )
    guest_initramfs: Path | None = option(
        None, "use this initramfs as is (must speak the BQ- protocol)"
    )
    keep_images: int = option(
        3, "qcow2 images of reproducing trials kept per commit as evidence (default 3)"
    )
    guest_append: str = option("", "extra guest kernel command-line arguments")
    writer_threads: int = option(_D.threads, f"guest writer threads (default {_D.threads})")
    chunk_kib: int = option(_D.chunk_kib, f"KiB per write (default {_D.chunk_kib})")
    chunks: int = option(_D.chunks, f"chunks the writer writes (default {_D.chunks})")
    stride: int = option(_D.stride, f"slot stride, coprime with --chunks (default {_D.stride})")
    cluster_kib: int = option(_D.cluster_kib, f"qcow2 cluster size (default {_D.cluster_kib})")
    kill_after: str = option(
        f"{_D.kill_min}-{_D.kill_max}",
        "SIGTERM after MIN-MAX reported chunks (uniform)",
        parse=_kill_after,
    )
    kill_jitter_ms: float = option(_D.jitter_ms, "random extra delay before SIGTERM (ms)")
    guest_memory: int = option(_D.memory_mib, f"guest MiB (default {_D.memory_mib})")
    drive_if: str = option(_D.interface, "guest disk interface", choices=("virtio", "ide"))


class Qcow2SigtermProbe(Probe):
    """Boot a guest writing to a fresh qcow2, SIGTERM qemu mid-write, judge the image."""

    name: ClassVar[str] = "qcow2-sigterm"
    version: ClassVar[int] = 2
    # 2: the cloud kernel first, cryptomgr.notests acpi=off pci=nomsi, partial compare
    Options = Qcow2Options
    options: Qcow2Options

    def __init__(self, options: Qcow2Options | None = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        o = self.options
        if o.verify not in VERIFY_MODES:
            raise UserError(f"--verify must be one of {', '.join(VERIFY_MODES)}")
        if o.accel not in ACCELS:
            raise UserError(f"--accel must be one of {', '.join(ACCELS)}")
        if o.guest_initramfs and not o.guest_kernel:
            raise UserError("--guest-initramfs needs --guest-kernel as well")
        if o.keep_images < 0:
            raise UserError("--keep-images must be >= 0")
        lo, _, hi = o.kill_after.partition("-")
        try:
            kill_min, kill_max = int(lo), int(hi or lo)
        except ValueError:
            raise UserError(f"--kill-after {o.kill_after!r}: expected MIN-MAX, e.g. 1-64") from None
        self.workload = Workload(
            threads=o.writer_threads,
            chunk_kib=o.chunk_kib,
            chunks=o.chunks,
            stride=o.stride,
            cluster_kib=o.cluster_kib,
            kill_min=kill_min,
            kill_max=kill_max,
            jitter_ms=o.kill_jitter_ms,
            memory_mib=o.guest_memory,
            interface=o.drive_if,
            append=o.guest_append,
        )
        validate_workload(self.workload)
        self.verify = o.verify
        self.keep_images = o.keep_images
        self.accel = o.accel
        self.guest_kernel = Path(o.guest_kernel) if o.guest_kernel else None
        self.guest_modules = Path(o.guest_modules) if o.guest_modules else None
        self.guest_initramfs = Path(o.guest_initramfs) if o.guest_initramfs else None
        self.kit: GuestKit | None = None
        self.resolved_accel: str | None = None

    def build_guest_kit(self, cache_dir: Path, force: bool = False) -> Path | None:
        """`bisect-qemu guest build`: the Debian-kernel + busybox guest kit (cached)."""
        if self.guest_initramfs:
            return None  # the user's own initramfs: nothing to build
        return build_guest_kit(
            cache_dir, kernel=self.guest_kernel, modules_dir=self.guest_modules, force=force
        )

    def settings(self) -> dict[str, Any]:
        return {
            "workload": asdict(self.workload),
            "verify": self.verify,
            "accel": self.accel,
            "guest_kernel": str(self.guest_kernel) if self.guest_kernel else None,
            "guest_modules": str(self.guest_modules) if self.guest_modules else None,
            "guest_initramfs": str(self.guest_initramfs) if self.guest_initramfs else None,
        }

    # ----------------------------------------------------------------- prepare
    def prepare(self, cache_dir: Path) -> None:
        """Build or reuse the guest kit, then settle the accelerator (cached)."""
        if self.guest_initramfs:
            self.kit = custom_kit(Path(self.guest_kernel), Path(self.guest_initramfs))  # type: ignore[arg-type]
        else:
            kit_dir = build_guest_kit(
                cache_dir, kernel=self.guest_kernel, modules_dir=self.guest_modules
            )
            self.kit = load_kit(kit_dir)
        if self.accel == "auto":
            self.resolved_accel = accel_mod.detect_accel(cache_dir, self.kit)
        else:
            self.resolved_accel = self.accel

    def kit_files(self) -> dict[str, Path]:
        """The guest kit, for trials on Dask workers (bisect_driver.cluster)."""
        if self.kit is None:
            return {}
        return {"vmlinuz": self.kit.kernel, "initramfs.cpio": self.kit.initramfs}

    def use_kit(self, kit_dir: Path | None, cache_dir: Path) -> None:
        """On a worker: boot the kit the driver sent; the accelerator is this host's own
        (detected, never assumed: another host's /dev/kvm may boot where ours cannot)."""
        if kit_dir is None:
            self.prepare(cache_dir)
            return
        self.kit = GuestKit(kit_dir / "vmlinuz", kit_dir / "initramfs.cpio", kit_dir.name[:24])
        if self.accel == "auto":
            self.resolved_accel = accel_mod.detect_accel(cache_dir, self.kit)
        else:
            self.resolved_accel = self.accel

    # ------------------------------------------------------------------ trials
    def run_trial(self, ctx: TrialContext) -> TrialResult:
        pending = self._run_phase(ctx)
        reads: dict[int, gfs.DeviceRead] = {}
        if self.verify == "guestfs":
            reads = self._guestfs_reads([pending])
        return self._finish(pending, reads.get(id(pending)))

    def run_batch(self, contexts: list[TrialContext], jobs: int) -> list[TrialResult]:
        """Run up to ``jobs`` guests at once; with guestfs, read every image in one launch."""
        if self.verify != "guestfs":
            return super().run_batch(contexts, jobs)
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            pendings = list(pool.map(self._safe_phase, contexts))
        t_gfs = time.monotonic()
        reads = self._guestfs_reads(pendings)
        gfs_s = round(time.monotonic() - t_gfs, 2)
        results = []
        for p in pendings:
            try:
                results.append(self._finish(p, reads.get(id(p))))
                results[-1].extra["guestfs_batch_s"] = gfs_s
            except Exception as exc:  # noqa: BLE001 - one trial's probe error, not the batch's
                results.append(TrialResult(Outcome.ERROR, detail=f"probe raised {exc!r}"))
        return results

    def _safe_phase(self, ctx: TrialContext) -> _Pending:
        try:
            return self._run_phase(ctx)
        except Exception as exc:  # noqa: BLE001 - recorded as a probe error
            return _Pending(
                ctx,
                None,
                ctx.work_dir / "disk.qcow2",
                ctx.work_dir / "serial.log",
                error=f"probe raised {type(exc).__name__}: {exc}",
            )

    def _run_phase(self, ctx: TrialContext) -> _Pending:
        """Image, boot, kill, trusted check: everything but reading the data back."""
        if self.kit is None or self.resolved_accel is None:
            raise RuntimeError("prepare(cache_dir) must run before trials")
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        image = ctx.work_dir / "disk.qcow2"
        log = ctx.work_dir / "serial.log"
        pending = _Pending(ctx, None, image, log)
        try:
            make_image(ctx.artifact_dir, image, self.workload)
        except HarnessError as exc:
            pending.harness_errors.append(str(exc))
            return pending
        cmd = qemu_command(
            ctx.artifact_dir,
            self.kit,
            image,
            self.workload,
            ctx.seed & 0xFFFFFFFF,
            self.resolved_accel,
        )
        rng = random.Random(ctx.seed)
        pending.run = run = run_guest(cmd, self.workload, ctx, log, rng)
        pending.reported = frozenset(run.reported)
        decided = judge_run(run)
        if decided is not None and decided.outcome is not Outcome.REPRODUCED:
            return pending  # the run alone decided: the image cannot change that
        try:
            pending.check = check_image(image)
            if self.verify == "guestfs" and wants_data(run, pending.check, ()):
                extents, pending.map_error = allocated_extents(image)
                if extents is not None:
                    w = self.workload
                    pending.slots = set(pending.reported) | slots_touching(
                        extents, w.chunk_size, w.chunks
                    )
        except HarnessError as exc:
            pending.harness_errors.append(str(exc))
        return pending

    def _guestfs_reads(self, pendings: list[_Pending]) -> dict[int, gfs.DeviceRead]:
        """One appliance launch for every pending image that can still be read.

        Images the trusted check could not even open are left out: one
        unopenable image would make the whole launch fail.  If the launch fails
        anyway (after retries), :meth:`_read_data` falls back to qemu-img.
        """
        todo = [p for p in pendings if p.slots is not None and p.error is None]
        if not todo:
            return {}
        size = self.workload.chunk_size
        try:
            reads = gfs.read_images(
                [(p.image, [(slot * size, size) for slot in sorted(p.slots or ())]) for p in todo]
            )
        except HarnessError as exc:
            for p in todo:
                p.gfs_error = str(exc)
            return {}
        return {id(p): r for p, r in zip(todo, reads, strict=True)}

    def _read_data(
        self, p: _Pending, gread: gfs.DeviceRead | None
    ) -> tuple[DataResult | None, str]:
        """Compare the image's bytes; returns (result, why-unreadable)."""
        raw = p.ctx.work_dir / "disk.raw"
        trial = p.ctx.seed & 0xFFFFFFFF
        w = self.workload
        try:
            if self.verify == "guestfs" and p.map_error:
                return None, f"image unmappable: {p.map_error}"
            if self.verify == "guestfs" and gread is not None:
                if gread.error:
                    return None, gread.error
                return compare_data(
                    gread.read_at, trial, w.chunk_size, w.chunks, set(p.reported), p.slots
                ), ""
            else:
                err = image_to_raw(p.image, raw)
                if err:
                    return None, f"image unreadable: {err}"
            # Every other slot is unallocated and reads as zeros; an image qemu-img cannot
            # map is compared in full.
            extents, _ = allocated_extents(p.image)
            slots = (
                None
                if extents is None
                else set(p.reported) | slots_touching(extents, w.chunk_size, w.chunks)
            )
            result = compare_raw_file(raw, trial, w.chunk_size, w.chunks, set(p.reported), slots)
            return result, ""
        finally:
            raw.unlink(missing_ok=True)

    def _finish(self, p: _Pending, gread: gfs.DeviceRead | None) -> TrialResult:
        """Read the data if it can still matter, let :func:`.judge.judge` decide, then
        keep or drop the evidence.  All I/O, no rules: the rules are in judge.py."""
        start = time.monotonic()
        signature: str | None = None
        if p.error is not None:
            outcome, detail = Outcome.ERROR, p.error
        else:
            data: DataResult | None = None
            read_error = ""
            if wants_data(p.run, p.check, p.harness_errors):
                t_read = time.monotonic()
                try:
                    data, read_error = self._read_data(p, gread)
                    p.verify_s = time.monotonic() - t_read
                except HarnessError as exc:
                    p.harness_errors.append(str(exc))
            notes = (
                [f"guestfs failed, data read with qemu-img ({p.gfs_error[:80]})"]
                if p.gfs_error
                else []
            )
            outcome, detail, signature = judge(
                p.run, p.check, data, read_error, p.harness_errors, notes
            )
        keep = outcome is not Outcome.CLEAN
        log_path = (
            keep_evidence(
                p.ctx,
                p.log,
                p.image if outcome is Outcome.REPRODUCED else None,
                self.keep_images,
            )
            if keep
            else None
        )
        p.image.unlink(missing_ok=True)
        result = result_from(outcome, detail, p.run, signature)
        if p.verify_s is not None:
            result.extra["data_verify_s"] = round(p.verify_s, 3)
        result.log_path = log_path
        result.duration += time.monotonic() - start
        return result

    # ------------------------------------------------------------------ doctor
    def host_checks(self) -> list[HostCheck]:
        checks = [
            HostCheck(
                "trusted qemu-img",
                TRUSTED_QEMU_IMG.is_file(),
                f"{TRUSTED_QEMU_IMG} (qemu-utils) checks images independently of the build",
            ),
            HostCheck("busybox-static", Path("/bin/busybox").is_file(), "/bin/busybox"),
        ]
        try:
            kernel = self.guest_kernel or default_kernel()
            checks.append(HostCheck("guest kernel", Path(kernel).is_file(), str(kernel)))
        except UserError as exc:
            checks.append(HostCheck("guest kernel", False, str(exc)))
        import shutil

        checks.append(
            HostCheck("gcc (static writer)", shutil.which("gcc") is not None, "build-essential")
        )
        if self.verify == "guestfs":
            checks.append(
                HostCheck(
                    "python3-guestfs",
                    gfs.guestfs_available(),
                    "import guestfs (Debian python3-guestfs)",
                )
            )
        checks.append(
            HostCheck(
                "/dev/kvm",
                True,
                "present; a test boot at the first trial decides KVM or TCG (cached)"
                if accel_mod.kvm_device_usable()
                else "absent: guests run under TCG",
            )
        )
        return checks


def validate_workload(w: Workload) -> None:
    """Reject option values that would make trials meaningless (UserError, exit 2)."""
    if not 1 <= w.threads <= 256:
        raise UserError("--writer-threads must be 1..256")
    if w.chunk_kib < 4 or w.chunk_kib % 4:
        raise UserError("--chunk-kib must be a positive multiple of 4 (O_DIRECT alignment)")
    if w.cluster_kib not in (4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048):
        raise UserError("--cluster-kib must be a power of two from 4 to 2048")
    if w.chunks < 1 or w.stride < 1:
        raise UserError("--chunks and --stride must be positive")
    if math.gcd(w.stride, w.chunks) != 1:
        raise UserError("--stride must be coprime with --chunks (else the writer repeats slots)")
    if not 1 <= w.kill_min <= w.kill_max:
        raise UserError("--kill-after MIN-MAX needs 1 <= MIN <= MAX")
    if w.kill_max >= w.chunks:
        raise UserError("--kill-after MAX must be below --chunks (writes must still be running)")
    if w.jitter_ms < 0:
        raise UserError("--kill-jitter-ms must be >= 0")
    if w.memory_mib < 64:
        raise UserError("--guest-memory must be at least 64 MiB")
