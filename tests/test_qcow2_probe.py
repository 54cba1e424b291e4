"""End-to-end tests of the qcow2-sigterm probe against Debian's QEMU.

Debian's QEMU does not have the 2012 bug, so real trials must come out CLEAN;
every other outcome is produced by injecting the fault: a wrapper in place of
``bin/qemu-system-x86_64`` that turns our SIGTERM into a SIGSEGV, ignores it
(hang), or damages the image after qemu exits; a kernel that is no kernel.
Each test can fail: the wrapper faults are only visible if the harness and
the classification really look at the signal, the check and the data.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bisect_driver.plugin import Outcome, TrialContext, TrialResult
from bisect_driver.plugin.proc import LIVE_GROUPS
from probes.qcow2_sigterm import Qcow2SigtermProbe
from probes.qcow2_sigterm.gfs import guestfs_available

REAL_QEMU = Path("/usr/bin/qemu-system-x86_64")
REAL_QEMU_IMG = Path("/usr/bin/qemu-img")
FIRMWARE_DIRS = [Path("/usr/share/qemu"), Path("/usr/share/seabios")]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (REAL_QEMU.is_file() and REAL_QEMU_IMG.is_file()),
        reason="needs Debian's qemu-system-x86 and qemu-utils",
    ),
    pytest.mark.skipif(not list(Path("/boot").glob("vmlinuz-*")), reason="needs a guest kernel"),
]

TIMEOUT = 90.0
"""Per-trial timeout: generous, because a slow CI machine must not turn CLEAN into
INCONCLUSIVE.  Only the hang test waits for it (with its own, shorter value)."""


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def probe(cache_dir: Path) -> Qcow2SigtermProbe:
    """A prepared probe (kit built once per session).  TCG: never assume KVM works."""
    p = Qcow2SigtermProbe(accel="tcg")
    p.prepare(cache_dir)
    return p


def make_artifacts(root: Path, qemu: Path = REAL_QEMU) -> Path:
    """An artifact dir in the recipe's layout, made of Debian's QEMU."""
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "qemu-system-x86_64").symlink_to(qemu)
    (root / "bin" / "qemu-img").symlink_to(REAL_QEMU_IMG)
    (root / "bin" / "qemu-io").symlink_to("/usr/bin/qemu-io")
    bios = root / "pc-bios"
    bios.mkdir()
    for d in FIRMWARE_DIRS:
        if d.is_dir():
            for f in d.iterdir():
                if not (bios / f.name).exists():
                    (bios / f.name).symlink_to(f)
    return root


ASSERT_LINE = (
    "qemu-system-x86_64: block/qcow2-cache.c:73: qcow2_cache_destroy: "
    "Assertion `c->entries[i].ref == 0' failed."
)
"""QEMU 1.0's failure message (glibc assert format), for the "abort" fault."""

WRAPPER = """#!{python}
# Test double for qemu-system-x86_64: runs the real one, injects a fault.
import os, signal, subprocess, sys
MODE = {mode!r}
ASSERT_LINE = {assert_line!r}
args = sys.argv[1:]
child = None
pending = []

def on_term(signum, frame):
    if child is None:  # before qemu even started: deliver once it has
        pending.append(signum)
        return
    if MODE == "segv":
        child.send_signal(signal.SIGSEGV)
    elif MODE == "abort":
        # what QEMU 1.0 prints (to the same pipe as the serial console) and does
        sys.stderr.write(ASSERT_LINE + "\\n")
        sys.stderr.flush()
        child.send_signal(signal.SIGABRT)
    elif MODE != "hang":
        child.send_signal(signal.SIGTERM)

# The handler before qemu starts: a SIGTERM that came between the two (a loaded machine
# can deschedule this script that long) killed the wrapper by default, not qemu by fault.
signal.signal(signal.SIGTERM, on_term)
child = subprocess.Popen([{real!r}] + args)
with open({pidfile!r}, "w") as fh:
    fh.write(str(child.pid))
for signum in pending:
    on_term(signum, None)
rc = child.wait()
drive = next(a for a in args if a.startswith("file="))
image = drive.split("=", 1)[1].split(",")[0]
if MODE == "zero":
    # every byte reads back as zeros, the metadata stays consistent
    with open(image, "rb") as fh:
        size = int.from_bytes(fh.read(32)[24:32], "big")
    subprocess.run(["/usr/bin/qemu-io", "-f", "qcow2", "-c", f"write -z 0 {{size}}", image],
                   check=True, stdout=subprocess.DEVNULL)
elif MODE == "corrupt":
    import struct
    with open(image, "r+b") as fh:
        l1 = struct.unpack(">Q", fh.read(48)[40:48])[0]
        fh.seek(l1)
        entry = struct.unpack(">Q", fh.read(8))[0]
        fh.seek(l1)
        fh.write(struct.pack(">Q", entry | 2))
if rc < 0:
    signal.signal(-rc, signal.SIG_DFL)
    os.kill(os.getpid(), -rc)
sys.exit(rc)
"""


def wrapped_artifacts(root: Path, mode: str) -> tuple[Path, Path]:
    """Artifacts whose qemu is the fault-injecting wrapper; returns (dir, pid file)."""
    art = make_artifacts(root)
    pidfile = root / "qemu.pid"
    script = root / "wrapper.py"
    script.write_text(
        WRAPPER.format(
            python=sys.executable,
            mode=mode,
            real=str(REAL_QEMU),
            pidfile=str(pidfile),
            assert_line=ASSERT_LINE,
        )
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    target = art / "bin" / "qemu-system-x86_64"
    target.unlink()
    target.symlink_to(script)
    return art, pidfile


def context(root: Path, art: Path, index: int = 0, timeout: float = TIMEOUT) -> TrialContext:
    return TrialContext(
        commit="deadbeefcafe",
        artifact_dir=art,
        index=index,
        work_dir=root / f"work{index}",
        evidence_dir=root / "evidence",
        timeout=timeout,
        seed=4242 + index,
    )


def process_gone(pid: int) -> bool:
    """True if ``pid`` is no longer running (gone, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def assert_nothing_left(pidfile: Path | None = None) -> None:
    assert not LIVE_GROUPS
    if pidfile is not None and pidfile.exists():
        assert process_gone(int(pidfile.read_text()))


def test_debian_qemu_trials_are_clean(tmp_path: Path, probe: Qcow2SigtermProbe) -> None:
    art = make_artifacts(tmp_path / "art")
    contexts = [context(tmp_path, art, i) for i in range(2)]
    results = probe.run_batch(contexts, jobs=2)
    for res in results:
        assert res.outcome is Outcome.CLEAN, res.detail
        assert res.extra["reported_before_kill"] >= 1
        assert res.exit_status == 0 and res.signal is None
        assert "\n" not in res.detail
        assert "signature" not in res.extra  # nothing failed
    # a clean trial keeps nothing and deletes its image
    assert not (tmp_path / "evidence").exists()
    assert not (contexts[0].work_dir / "disk.qcow2").exists()
    assert_nothing_left()


def test_qemu_killed_by_sigsegv_is_reproduced(tmp_path: Path, probe: Qcow2SigtermProbe) -> None:
    art, pidfile = wrapped_artifacts(tmp_path / "art", "segv")
    res = probe.run_trial(context(tmp_path, art))
    assert res.outcome is Outcome.REPRODUCED, res.detail
    assert res.signal == 11 and "SIGSEGV" in res.detail
    assert res.signature == "SIGSEGV"
    assert res.log_path and "BQ-GO" in Path(res.log_path).read_text()
    assert_nothing_left(pidfile)


def test_qemu_abort_is_reproduced_with_its_assertion_as_signature(
    tmp_path: Path, probe: Qcow2SigtermProbe
) -> None:
    """The assertion qemu prints before SIGABRT names the failure (TrialResult.signature)."""
    art, pidfile = wrapped_artifacts(tmp_path / "art", "abort")
    res = probe.run_trial(context(tmp_path, art))
    assert res.outcome is Outcome.REPRODUCED, res.detail
    assert res.signal == 6
    expected = "qcow2_cache_destroy: Assertion `c->entries[i].ref == 0' failed"
    assert res.signature == f"SIGABRT: {expected}"
    assert expected in res.detail
    assert_nothing_left(pidfile)


def test_corrupted_image_is_reproduced(tmp_path: Path, probe: Qcow2SigtermProbe) -> None:
    art, pidfile = wrapped_artifacts(tmp_path / "art", "corrupt")
    res = probe.run_trial(context(tmp_path, art))
    assert res.outcome is Outcome.REPRODUCED, res.detail
    assert res.signal is None and res.exit_status == 0
    assert "corruption" in res.detail
    assert res.signature == "image corrupt"
    assert res.log_path and Path(res.log_path).is_file()
    kept = list((tmp_path / "evidence").glob("*.qcow2"))
    assert len(kept) == 1  # the damaged image is evidence
    assert_nothing_left(pidfile)


def test_lost_data_is_reproduced(tmp_path: Path, probe: Qcow2SigtermProbe) -> None:
    """qemu exits normally and the image checks clean, but reported data is gone."""
    art, pidfile = wrapped_artifacts(tmp_path / "art", "zero")
    res = probe.run_trial(context(tmp_path, art))
    assert res.outcome is Outcome.REPRODUCED, res.detail
    assert "lost" in res.detail and "corruption" not in res.detail
    assert res.signature == "data lost"
    assert_nothing_left(pidfile)


def test_guest_that_never_boots_is_inconclusive(tmp_path: Path, cache_dir: Path) -> None:
    bad_kernel = tmp_path / "vmlinuz"
    bad_kernel.write_bytes(os.urandom(64 * 1024))
    initramfs = tmp_path / "initramfs"
    initramfs.write_bytes(b"not an initramfs")
    p = Qcow2SigtermProbe(accel="tcg", guest_kernel=bad_kernel, guest_initramfs=initramfs)
    p.prepare(cache_dir)
    art = make_artifacts(tmp_path / "art")
    res = p.run_trial(context(tmp_path, art))
    assert res.outcome is Outcome.INCONCLUSIVE, res.detail
    assert "guest" in res.detail
    assert res.log_path and Path(res.log_path).is_file()
    assert_nothing_left()


def test_qemu_that_ignores_sigterm_is_a_hang_and_is_killed(
    tmp_path: Path, probe: Qcow2SigtermProbe
) -> None:
    art, pidfile = wrapped_artifacts(tmp_path / "art", "hang")
    res = probe.run_trial(context(tmp_path, art, timeout=45.0))
    assert res.outcome is Outcome.HANG, res.detail
    assert res.signature == "hang after SIGTERM"
    assert pidfile.exists()
    assert_nothing_left(pidfile)  # the real qemu, a grandchild, was killed with the group


def test_missing_qemu_img_is_inconclusive_not_a_crash(
    tmp_path: Path, probe: Qcow2SigtermProbe
) -> None:
    art = make_artifacts(tmp_path / "art")
    (art / "bin" / "qemu-img").unlink()
    res: TrialResult = probe.run_trial(context(tmp_path, art))
    assert res.outcome is Outcome.INCONCLUSIVE and "harness" in res.detail


@pytest.mark.skipif(not guestfs_available(), reason="needs python3-guestfs")
def test_guestfs_batch_verifies_all_images_in_one_launch(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from probes.qcow2_sigterm import gfs

    launches = []
    real_read = gfs.read_images

    def counting(images):  # type: ignore[no-untyped-def]
        launches.append(len(images))
        return real_read(images)

    monkeypatch.setattr(gfs, "read_images", counting)
    p = Qcow2SigtermProbe(accel="tcg", verify="guestfs")
    p.prepare(cache_dir)
    clean = make_artifacts(tmp_path / "clean")
    zero, _ = wrapped_artifacts(tmp_path / "zero", "zero")
    contexts = [
        context(tmp_path, clean, 0),
        context(tmp_path, zero, 1),
        context(tmp_path, clean, 2),
    ]
    results = p.run_batch(contexts, jobs=2)
    assert launches == [3]
    assert [r.outcome for r in results] == [Outcome.CLEAN, Outcome.REPRODUCED, Outcome.CLEAN], [
        r.detail for r in results
    ]
    assert "lost" in results[1].detail
    assert "guestfs failed" not in " ".join(r.detail for r in results)
    assert_nothing_left()


def test_artifact_layout_helper_uses_firmware_dir(tmp_path: Path) -> None:
    art = make_artifacts(tmp_path / "art")
    assert (art / "bin" / "qemu-system-x86_64").resolve() == REAL_QEMU.resolve()
    assert any((art / "pc-bios").iterdir())
    shutil.rmtree(art)


def bisect_qemu() -> list[str]:
    """The installed command (what a user runs); ``python -m`` where it is not installed."""
    script = Path(sys.executable).with_name("bisect-qemu")  # not resolved: the venv's bin
    return [str(script)] if script.is_file() else [sys.executable, "-m", "bisect_driver"]


def test_guest_build_command_builds_the_kit_once(tmp_path: Path) -> None:
    """`bisect-qemu guest build` goes through the probe's build_guest_kit and prints the kit."""
    cache = tmp_path / "cache"
    cmd = [*bisect_qemu(), "guest", "build", "--cache-dir", str(cache)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    kit = Path(first.stdout.strip().splitlines()[-1])
    assert kit.is_dir() and kit.is_relative_to(cache), first.stdout
    files = ("vmlinuz", "initramfs.cpio", "manifest.json")
    assert all((kit / name).is_file() for name in files), sorted(os.listdir(kit))
    stamps = {name: (kit / name).stat().st_mtime_ns for name in files}
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    assert Path(second.stdout.strip().splitlines()[-1]) == kit
    # cached: the same directory, nothing in it rewritten
    assert {name: (kit / name).stat().st_mtime_ns for name in files} == stamps
