"""Fast tests of the qcow2-sigterm probe's pieces: no guest is booted here.

The slow end-to-end tests (real qemu, injected faults) are in test_qcow2_probe.py.
"""

from __future__ import annotations

import argparse
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from bisect_driver.errors import UserError
from probes.base import Outcome
from probes.qcow2_sigterm import PROBE, Qcow2SigtermProbe, guest
from probes.qcow2_sigterm import accel as accel_mod
from probes.qcow2_sigterm.guest import _cpio_newc, kernel_release, resolve_modules
from probes.qcow2_sigterm.trial import GuestRun, classify_run
from probes.qcow2_sigterm.verify import (
    BLOCK,
    block_bytes,
    check_image,
    chunk_bytes,
    compare_data,
    compare_raw_file,
)

TRUSTED_QEMU_IMG = Path("/usr/bin/qemu-img")
needs_qemu_img = pytest.mark.skipif(not TRUSTED_QEMU_IMG.is_file(), reason="needs qemu-utils")

CHUNK = 8192
CHUNKS = 8
TRIAL = 77


def disk_with(chunks: dict[int, bytes]) -> bytes:
    disk = bytearray(CHUNK * CHUNKS)
    for slot, data in chunks.items():
        disk[slot * CHUNK : slot * CHUNK + len(data)] = data
    return bytes(disk)


def compare(disk: bytes, reported: set[int]):  # type: ignore[no-untyped-def]
    return compare_data(lambda o, n: disk[o : o + n], TRIAL, CHUNK, CHUNKS, reported)


# ------------------------------------------------------------------ data layout
def test_block_identifies_itself() -> None:
    block = block_bytes(TRIAL, 3, 3 * CHUNK + 512)
    assert len(block) == BLOCK
    assert block[:8] == b"BQPROBE1"
    assert struct.unpack("<IIQ", block[8:24]) == (TRIAL, 3, 3 * CHUNK + 512)
    # neighbours differ, so a block written to the wrong place is caught
    assert block != block_bytes(TRIAL, 3, 3 * CHUNK)
    assert block != block_bytes(TRIAL + 1, 3, 3 * CHUNK + 512)


def test_intact_data_is_ok_and_unreported_writes_are_tolerated() -> None:
    disk = disk_with({0: chunk_bytes(TRIAL, 0, CHUNK), 1: chunk_bytes(TRIAL, 1, CHUNK)})
    result = compare(disk, {0})
    assert result.ok
    assert result.unreported_written == 1  # chunk 1 was in flight at the kill


def test_partly_written_unreported_chunk_is_tolerated() -> None:
    disk = disk_with({2: chunk_bytes(TRIAL, 2, CHUNK)[: CHUNK // 2]})
    assert compare(disk, set()).ok


def test_reported_chunk_missing_is_lost() -> None:
    disk = disk_with({0: chunk_bytes(TRIAL, 0, CHUNK)})
    result = compare(disk, {0, 1})
    assert result.lost == [1]
    assert not result.ok


def test_reported_chunk_half_missing_is_lost() -> None:
    disk = disk_with({1: chunk_bytes(TRIAL, 1, CHUNK)[:BLOCK]})
    assert compare(disk, {1}).lost == [1]


def test_garbage_and_misplaced_data_are_wrong() -> None:
    flipped = bytearray(chunk_bytes(TRIAL, 0, CHUNK))
    flipped[100] ^= 0xFF
    disk = disk_with({0: bytes(flipped), 3: chunk_bytes(TRIAL, 2, CHUNK)})
    result = compare(disk, {0})
    assert result.wrong == [0, 3]  # 3 holds chunk 2's blocks: misdirected, even unreported


def test_other_trials_data_is_wrong() -> None:
    disk = disk_with({0: chunk_bytes(TRIAL + 1, 0, CHUNK)})
    assert compare(disk, {0}).wrong == [0]


def test_compare_raw_file_short_file_reads_as_zeros(tmp_path: Path) -> None:
    raw = tmp_path / "disk.raw"
    raw.write_bytes(chunk_bytes(TRIAL, 0, CHUNK))  # shorter than the disk
    assert compare_raw_file(raw, TRIAL, CHUNK, CHUNKS, {0}).ok
    assert compare_raw_file(raw, TRIAL, CHUNK, CHUNKS, {0, 5}).lost == [5]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_writer_writes_what_the_host_expects(tmp_path: Path) -> None:
    """The C writer and verify.block_bytes must agree byte for byte.

    Runs the real writer against a plain file, so a layout change on one side
    only fails here, not as a mysterious 100 % "reproduction" rate.
    """
    exe = tmp_path / "writer"
    guest.compile_writer(exe)
    target = tmp_path / "disk"
    target.write_bytes(bytes(CHUNK * CHUNKS))
    res = subprocess.run(
        [str(exe), str(target), str(TRIAL), "3", str(CHUNK), str(CHUNKS), "3"],
        capture_output=True,
        text=True,
        check=False,
    )
    if "BQ-OPENFAIL 22" in res.stdout:
        pytest.skip("file system without O_DIRECT")
    assert res.returncode == 0, res.stdout
    lines = res.stdout.splitlines()
    assert lines[0] == f"BQ-GO {CHUNKS}"
    assert lines[-1] == "BQ-ALLDONE"
    reported = {int(line.split()[1]) for line in lines if line.startswith("BQ-D ")}
    assert reported == set(range(CHUNKS))
    assert compare_raw_file(target, TRIAL, CHUNK, CHUNKS, reported).ok
    # and a single flipped byte would have been seen
    data = bytearray(target.read_bytes())
    data[CHUNK * 5 + 40] ^= 1
    target.write_bytes(bytes(data))
    assert compare_raw_file(target, TRIAL, CHUNK, CHUNKS, reported).wrong == [5]


# ------------------------------------------------------------------- guest kit
def read_cpio(blob: bytes) -> dict[str, tuple[int, bytes]]:
    """Minimal newc reader (an independent check of the writer in guest.py)."""
    out, pos = {}, 0
    while True:
        assert blob[pos : pos + 6] == b"070701"
        fields = [int(blob[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_start = pos + 110
        name = blob[name_start : name_start + namesize - 1].decode()
        data_start = (name_start + namesize + 3) & ~3
        data = blob[data_start : data_start + size]
        pos = (data_start + size + 3) & ~3
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, data)


def test_cpio_round_trip() -> None:
    entries = [("bin", 0o040755, b""), ("init", 0o100755, b"#!/bin/sh\n"), ("a/b", 0o100644, b"x")]
    parsed = read_cpio(_cpio_newc(entries))
    assert parsed == {
        "bin": (0o040755, b""),
        "init": (0o100755, b"#!/bin/sh\n"),
        "a/b": (0o100644, b"x"),
    }


def test_resolve_modules_puts_dependencies_first(tmp_path: Path) -> None:
    (tmp_path / "modules.dep").write_text(
        "kernel/a/virtio_blk.ko: kernel/a/virtio.ko kernel/a/virtio_ring.ko\n"
        "kernel/a/virtio.ko:\n"
        "kernel/a/virtio_ring.ko: kernel/a/virtio.ko\n"
        "kernel/b/sd_mod.ko.xz: kernel/b/crc-t10dif.ko.xz\n"
        "kernel/b/crc-t10dif.ko.xz:\n"
    )
    order = resolve_modules(tmp_path, ["virtio_blk", "virtio_pci", "sd_mod"])
    assert order.index("kernel/a/virtio.ko") < order.index("kernel/a/virtio_ring.ko")
    assert order.index("kernel/a/virtio_ring.ko") < order.index("kernel/a/virtio_blk.ko")
    assert order[-2:] == ["kernel/b/crc-t10dif.ko.xz", "kernel/b/sd_mod.ko.xz"]
    assert len(order) == 5  # virtio_pci absent = built in: skipped


def test_kernel_release_from_setup_header(tmp_path: Path) -> None:
    img = bytearray(0x1000)
    img[0x202:0x206] = b"HdrS"
    img[0x20E:0x210] = (0x600).to_bytes(2, "little")
    img[0x800:0x820] = b"6.1.0-99-amd64 (debian@x) #1\0"
    (tmp_path / "vmlinuz").write_bytes(bytes(img))
    assert kernel_release(tmp_path / "vmlinuz") == "6.1.0-99-amd64"
    (tmp_path / "junk").write_bytes(b"not a kernel" * 100)
    assert kernel_release(tmp_path / "junk") is None


@pytest.mark.slow
@pytest.mark.skipif(not list(Path("/boot").glob("vmlinuz-*")), reason="needs linux-image-amd64")
def test_guest_kit_is_built_once_and_holds_what_the_guest_needs(tmp_path: Path) -> None:
    kit = guest.build_guest_kit(tmp_path)
    files = read_cpio((kit / "initramfs.cpio").read_bytes())
    assert {"init", "bin/busybox", "bin/writer", "lib/modules/order"} <= files.keys()
    assert files["dev/console"][0] == 0o020600
    order = files["lib/modules/order"][1].decode().split("\n")
    assert "virtio virtio_blk.ko" in order and "ide ata_piix.ko" in order
    for line in filter(None, order):
        assert f"lib/modules/{line.split()[1]}" in files
    assert files["bin/writer"][1][:4] == b"\x7fELF"
    stamp = (kit / "initramfs.cpio").stat().st_mtime_ns
    assert guest.build_guest_kit(tmp_path) == kit  # same inputs: reused, not rebuilt
    assert (kit / "initramfs.cpio").stat().st_mtime_ns == stamp
    assert guest.build_guest_kit(tmp_path, force=True) == kit


def test_bad_kernel_path_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError):
        guest.build_guest_kit(tmp_path, kernel=tmp_path / "nope")


# --------------------------------------------------------------------- options
def parse(*argv: str) -> Qcow2SigtermProbe:
    parser = argparse.ArgumentParser()
    PROBE.add_arguments(parser)
    return PROBE.from_args(parser.parse_args(list(argv)))


def test_probe_is_exported_under_its_plugin_name() -> None:
    from bisect_driver.plugins import load_plugin

    assert load_plugin("probe", "probes", "qcow2-sigterm", "PROBE") is Qcow2SigtermProbe


@pytest.mark.parametrize(
    "argv",
    [
        ["--kill-after", "ten"],
        ["--kill-after", "9-3"],
        ["--writer-threads", "0"],
        ["--chunk-kib", "6"],
        ["--cluster-kib", "3"],
        ["--kill-after", "1-2000", "--chunks", "100"],
        ["--guest-memory", "16"],
        ["--guest-initramfs", "/x"],
    ],
)
def test_bad_option_values_are_user_errors(argv: list[str]) -> None:
    with pytest.raises(UserError):
        parse(*argv)


def test_key_follows_the_settings() -> None:
    assert parse().key() == parse().key()
    assert parse("--writer-threads", "4").key() != parse().key()
    assert parse("--verify", "guestfs").key() != parse().key()
    assert parse("--writer-threads", "4").workload.threads == 4


def test_namespace_without_probe_options_gives_defaults() -> None:
    probe = PROBE.from_args(argparse.Namespace())
    assert probe.verify == "qemu-img" and probe.workload.threads >= 1


# ------------------------------------------------------------- classification
def test_signal_death_after_the_kill_is_reproduced() -> None:
    run = GuestRun(signal=6, init_seen=True, go_time=1.0, kill_time=2.0)
    outcome, detail = classify_run(run)  # type: ignore[misc]
    assert outcome is Outcome.REPRODUCED and "SIGABRT" in detail


def test_clean_exit_leaves_the_decision_to_the_image() -> None:
    assert classify_run(GuestRun(returncode=0, init_seen=True, go_time=1.0, kill_time=2.0)) is None


@pytest.mark.parametrize(
    ("run", "outcome"),
    [
        (GuestRun(returncode=1), Outcome.INCONCLUSIVE),  # qemu refused to start
        (GuestRun(signal=11, init_seen=True), Outcome.INCONCLUSIVE),  # crashed during boot
        (GuestRun(boot_timeout=True, init_seen=True), Outcome.INCONCLUSIVE),
        (GuestRun(hung=True, go_time=1.0, kill_time=2.0), Outcome.HANG),
        (GuestRun(start_failed="ENOENT"), Outcome.INCONCLUSIVE),
        (
            GuestRun(returncode=0, go_time=1.0, kill_time=2.0, errors=["E 3 5"]),
            Outcome.INCONCLUSIVE,
        ),
        (
            GuestRun(returncode=0, go_time=1.0, kill_time=2.0, alldone_before_kill=True),
            Outcome.INCONCLUSIVE,
        ),
    ],
)
def test_runs_that_cannot_tell(run: GuestRun, outcome: Outcome) -> None:
    decided = classify_run(run)
    assert decided is not None and decided[0] is outcome


# ---------------------------------------------------------------- trusted check
@needs_qemu_img
def test_trusted_check_sees_clean_and_corrupt_images(tmp_path: Path) -> None:
    image = tmp_path / "c.qcow2"
    subprocess.run(
        [
            str(TRUSTED_QEMU_IMG),
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "compat=0.10",
            str(image),
            "4M",
        ],
        check=True,
    )
    assert check_image(image).ok
    corrupt_l1(image)
    result = check_image(image)
    assert not result.ok and result.corruptions >= 1


def corrupt_l1(image: Path) -> None:
    """Set a reserved bit in L1 entry 0 (what QEMU 1.0's crash leaves behind)."""
    subprocess.run(
        ["/usr/bin/qemu-io", "-f", "qcow2", "-c", "write 0 64k", str(image)],
        check=True,
        capture_output=True,
    )
    with open(image, "r+b") as fh:
        l1 = struct.unpack(">Q", fh.read(48)[40:48])[0]
        fh.seek(l1)
        entry = struct.unpack(">Q", fh.read(8))[0]
        fh.seek(l1)
        fh.write(struct.pack(">Q", entry | 2))


@needs_qemu_img
def test_unreadable_image_counts_as_corrupt(tmp_path: Path) -> None:
    image = tmp_path / "junk.qcow2"
    image.write_bytes(b"QFI\xfb" + bytes(random.Random(1).randbytes(4096)))
    assert not check_image(image).ok


# ------------------------------------------------------------------- KVM choice
def test_kvm_detection_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(accel_mod, "kvm_device_usable", lambda: True)
    monkeypatch.setattr(accel_mod, "kvm_boots", lambda kit, qemu: calls.append(1) or False)
    kit = guest.GuestKit(tmp_path / "k", tmp_path / "i", "kit1")
    qemu = Path(sys.executable)  # any existing file
    assert accel_mod.detect_accel(tmp_path, kit, qemu) == "tcg"
    assert accel_mod.detect_accel(tmp_path, kit, qemu) == "tcg"
    assert calls == [1]
    monkeypatch.setattr(accel_mod, "kvm_boots", lambda kit, qemu: True)
    other = guest.GuestKit(tmp_path / "k", tmp_path / "i", "kit2")
    assert accel_mod.detect_accel(tmp_path, other, qemu) == "kvm"


def test_no_kvm_device_means_tcg_without_booting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accel_mod, "kvm_device_usable", lambda: False)
    monkeypatch.setattr(accel_mod, "kvm_boots", lambda kit, qemu: pytest.fail("booted"))
    kit = guest.GuestKit(tmp_path / "k", tmp_path / "i", "kit1")
    assert accel_mod.detect_accel(tmp_path, kit) == "tcg"


# ------------------------------------------------------------------- statistics
def test_guestfs_reads_are_merged_and_sliced() -> None:
    from probes.qcow2_sigterm.gfs import DeviceRead, coalesce

    assert coalesce([(100, 5), (0, 10), (20, 5)], 10) == [(0, 25), (100, 5)]
    read = DeviceRead({0: b"abcdef", 100: b"xyz"})
    assert read.read_at(2, 2) == b"cd"
    assert read.read_at(101, 2) == b"yz"
    assert read.read_at(50, 3) == bytes(3)  # never read = unallocated = zeros


def test_slots_touching_extents() -> None:
    from probes.qcow2_sigterm.verify import slots_touching

    assert slots_touching([(0, 1), (CHUNK * 2 - 1, 2), (CHUNK * 7, CHUNK * 9)], CHUNK, CHUNKS) == {
        0,
        1,
        2,
        7,
    }
