"""Fast tests of the qcow2-sigterm probe's pieces: no guest is booted here.

The slow end-to-end tests (real qemu, injected faults) are in test_qcow2_probe.py.
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bisect_driver.plugin import Outcome, TrialContext
from bisect_driver.plugin.errors import UserError
from probes.qcow2_sigterm import PROBE, Qcow2SigtermProbe, guest
from probes.qcow2_sigterm import accel as accel_mod
from probes.qcow2_sigterm.guest import _cpio_newc, kernel_release, resolve_modules
from probes.qcow2_sigterm.judge import Judgement, abort_message, judge, wants_data
from probes.qcow2_sigterm.probe import _Pending
from probes.qcow2_sigterm.trial import GuestRun, SerialWatcher, classify_run
from probes.qcow2_sigterm.verify import (
    BLOCK,
    CheckResult,
    DataResult,
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
    # exit_on_error=False: a value the option's own parser rejects raises
    # ArgumentError (the CLI turns it into a usage error) instead of exiting pytest.
    parser = argparse.ArgumentParser(exit_on_error=False)
    PROBE.add_arguments(parser)
    return PROBE.from_args(parser.parse_args(list(argv)))


def test_probe_is_exported_under_its_plugin_name() -> None:
    from bisect_driver.plugin.registry import load_plugin

    assert load_plugin("probe", "qcow2-sigterm") is Qcow2SigtermProbe


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
    """Rejected either while parsing (--kill-after's own parser) or by the probe."""
    with pytest.raises((UserError, argparse.ArgumentError)):
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


# ------------------------------------------------------------------- judgement
ASSERT_LINE = (
    "qemu-system-x86_64: block/qcow2-cache.c:73: qcow2_cache_destroy: "
    "Assertion `c->entries[i].ref == 0' failed."
)
ASSERT_SIG = "qcow2_cache_destroy: Assertion `c->entries[i].ref == 0' failed"


def ran(**kw: object) -> GuestRun:
    """A run that reached the writes and got our SIGTERM: the image has the say."""
    facts: dict = dict(
        returncode=0,
        init_seen=True,
        go_time=1.0,
        kill_time=2.0,
        reported={0, 1, 2},
        reported_before_kill=2,
    )
    facts.update(kw)
    return GuestRun(**facts)


CHECK_OK = CheckResult(True)
CORRUPT = CheckResult(False, 1, 2, "1 corruption(s), 2 leak(s)")
LEAKS = CheckResult(False, 0, 3, "0 corruption(s), 3 leak(s)")
NOT_QCOW2 = CheckResult(False, detail="check failed (status 1): Image is not in qcow2 format")
INTACT_012 = compare(disk_with({i: chunk_bytes(TRIAL, i, CHUNK) for i in range(3)}), {0, 1, 2})
# chunk 2 was written (half of it) but never reported, chunk 3 never reached the disk:
# both were in flight at the kill, which is fine
IN_FLIGHT = compare(
    disk_with(
        {0: chunk_bytes(TRIAL, 0, CHUNK), 1: chunk_bytes(TRIAL, 1, CHUNK)}
        | {2: chunk_bytes(TRIAL, 2, CHUNK)[: CHUNK // 2]}
    ),
    {0, 1},
)
LOST_1 = compare(disk_with({0: chunk_bytes(TRIAL, 0, CHUNK)}), {0, 1})
WRONG_0 = compare(disk_with({0: chunk_bytes(TRIAL + 1, 0, CHUNK)}), {0})
SIGABRT_RUN = ran(returncode=None, signal=6, abort_message=ASSERT_SIG)


@pytest.mark.parametrize(
    ("run", "check", "data", "read_error", "harness", "outcome", "signature", "detail"),
    [
        pytest.param(
            ran(), CHECK_OK, INTACT_012, "", (), Outcome.CLEAN, None,
            "qemu exited 0 after SIGTERM at 2 reported chunks; check ok; 3 reported chunks intact",
            id="clean-exit-check-ok-data-intact",
        ),
        pytest.param(
            ran(reported={0, 1}), CHECK_OK, IN_FLIGHT, "", (), Outcome.CLEAN, None,
            "2 reported chunks intact", id="data-past-last-report-is-in-flight",
        ),
        pytest.param(
            SIGABRT_RUN, CHECK_OK, INTACT_012, "", (), Outcome.REPRODUCED,
            f"SIGABRT: {ASSERT_SIG}", f"qemu died by signal 6 SIGABRT after SIGTERM: {ASSERT_SIG}",
            id="sigabrt-with-assertion",
        ),
        pytest.param(
            ran(returncode=None, signal=11), CHECK_OK, INTACT_012, "", (), Outcome.REPRODUCED,
            "SIGSEGV", "qemu died by signal 11 SIGSEGV after SIGTERM", id="sigsegv",
        ),
        pytest.param(
            ran(returncode=None, signal=6), CORRUPT, None, "", (), Outcome.REPRODUCED,
            "SIGABRT", "SIGABRT after SIGTERM; trusted check: 1 corruption(s)",
            id="signal-comes-first-in-the-signature",
        ),
        pytest.param(
            ran(returncode=None, signal=40), CHECK_OK, INTACT_012, "", (), Outcome.REPRODUCED,
            "signal 40", "qemu died by signal 40 after SIGTERM", id="signal-without-a-name",
        ),
        pytest.param(
            ran(), CORRUPT, INTACT_012, "", (), Outcome.REPRODUCED, "image corrupt",
            "trusted check: 1 corruption(s), 2 leak(s)", id="check-reports-corruption",
        ),
        pytest.param(
            ran(), LEAKS, INTACT_012, "", (), Outcome.REPRODUCED, "leaked clusters",
            "trusted check: 0 corruption(s), 3 leak(s)", id="check-reports-leaks",
        ),
        pytest.param(
            ran(), NOT_QCOW2, None, "", (), Outcome.REPRODUCED, "image unreadable",
            "not in qcow2 format", id="check-cannot-open-image",
        ),
        pytest.param(
            ran(), CHECK_OK, None, "image unreadable: Input/output error", (),
            Outcome.REPRODUCED, "image unreadable", "Input/output error",
            id="data-cannot-be-read",
        ),
        pytest.param(
            ran(reported={0, 1}), CHECK_OK, LOST_1, "", (), Outcome.REPRODUCED, "data lost",
            "1 reported chunk(s) lost (e.g. [1])", id="reported-chunk-lost",
        ),
        pytest.param(
            ran(reported={0}), CHECK_OK, WRONG_0, "", (), Outcome.REPRODUCED, "data wrong",
            "wrong data", id="reported-chunk-wrong",
        ),
        pytest.param(
            GuestRun(returncode=0, init_seen=True), None, None, "", (), Outcome.INCONCLUSIVE,
            None, "guest did not reach the writes; qemu exited 0", id="never-reached-writes",
        ),
        pytest.param(
            GuestRun(signal=11), None, None, "", (), Outcome.INCONCLUSIVE, None,
            "guest never started init; qemu killed by signal 11", id="crash-before-init",
        ),
        pytest.param(
            ran(alldone_before_kill=True), CHECK_OK, INTACT_012, "", (), Outcome.INCONCLUSIVE,
            None, "nothing in flight", id="all-writes-done-before-kill",
        ),
        pytest.param(
            None, None, None, "", ("qemu-img create failed: boom",), Outcome.INCONCLUSIVE,
            None, "harness: qemu-img create failed: boom", id="harness-before-qemu",
        ),
        pytest.param(
            ran(), None, None, "", ("qemu-img check timed out",), Outcome.INCONCLUSIVE, None,
            "harness: qemu-img check timed out", id="harness-error-no-other-evidence",
        ),
        pytest.param(
            ran(), CORRUPT, None, "", ("qemu-img map timed out",), Outcome.REPRODUCED,
            "image corrupt", "harness: qemu-img map timed out", id="harness-error-but-corrupt",
        ),
        pytest.param(
            SIGABRT_RUN, None, INTACT_012, "", ("qemu-img check timed out",),
            Outcome.REPRODUCED, f"SIGABRT: {ASSERT_SIG}", "SIGABRT", id="harness-error-but-signal",
        ),
        pytest.param(
            ran(returncode=None, hung=True), None, None, "", (), Outcome.HANG,
            "hang after SIGTERM", "did not exit after SIGTERM", id="timeout-after-sigterm",
        ),
    ],
)  # fmt: skip
def test_judgement_table(
    run: GuestRun | None,
    check: CheckResult | None,
    data: DataResult | None,
    read_error: str,
    harness: tuple[str, ...],
    outcome: Outcome,
    signature: str | None,
    detail: str,
) -> None:
    """Every rule of the judgement as one row: facts in, (outcome, detail, signature) out."""
    got = judge(run, check, data, read_error, harness)
    assert (got.outcome, got.signature) == (outcome, signature), got.detail
    assert detail in got.detail
    assert "\n" not in got.detail


def test_judgement_notes_follow_the_image_findings() -> None:
    got = judge(ran(), CHECK_OK, INTACT_012, notes=["guestfs failed, data read with qemu-img"])
    assert got == Judgement(
        Outcome.CLEAN,
        "guestfs failed, data read with qemu-img; qemu exited 0 after SIGTERM at 2 reported"
        " chunks; check ok; 3 reported chunks intact",
    )


def test_judgement_never_calls_an_unexamined_image_clean() -> None:
    """A caller that skipped the check or the read gets INCONCLUSIVE, never CLEAN."""
    assert judge(ran(), None, None).outcome is Outcome.INCONCLUSIVE
    assert judge(ran(), CHECK_OK, None).outcome is Outcome.INCONCLUSIVE


@pytest.mark.parametrize(
    ("run", "check", "harness", "wanted"),
    [
        pytest.param(ran(), CHECK_OK, (), True, id="check-ok"),
        pytest.param(ran(), CORRUPT, (), True, id="corrupt-but-openable"),
        pytest.param(ran(), NOT_QCOW2, (), False, id="check-cannot-open"),
        pytest.param(GuestRun(returncode=0), None, (), False, id="run-decided"),
        pytest.param(ran(), None, ("check timed out",), False, id="harness-no-signal"),
        pytest.param(SIGABRT_RUN, None, ("check timed out",), True, id="harness-but-signal"),
        pytest.param(None, None, ("create failed",), False, id="qemu-never-ran"),
    ],
)
def test_data_is_read_only_when_it_can_matter(
    run: GuestRun | None, check: CheckResult | None, harness: tuple[str, ...], wanted: bool
) -> None:
    assert wants_data(run, check, harness) is wanted


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (ASSERT_LINE, ASSERT_SIG),
        (
            "[   7.1] init: x qemu-system-x86_64: a/b.c:9: f_1: Assertion `x' failed.",
            "f_1: Assertion `x' failed",
        ),
        (
            "ERROR:../block/io.c:123:bdrv_drain_all: assertion failed: (x == 0)",
            "bdrv_drain_all: assertion failed: (x == 0)",
        ),
        ("qemu: fatal: Trying to execute code", "qemu: fatal: Trying to execute code"),
        ("BQ-D 17", None),
        ("BQ-E 3 28", None),
        # qemu's stderr shares the pipe with the console: its message can land mid-line
        ("BQ-D 1" + ASSERT_LINE, ASSERT_SIG),
        ("BQ-" + ASSERT_LINE, ASSERT_SIG),
        ("BQ-ALLDO" + ASSERT_LINE, ASSERT_SIG),
        ("BQ-D 17 qemu: fatal: Trying to execute code", "qemu: fatal: Trying to execute code"),
        ("Run /init as init process", None),
        ("[    0.5] kernel BUG at mm/slub.c:12!", None),
    ],
)  # fmt: skip
def test_abort_message_is_qemus_own(line: str, message: str | None) -> None:
    assert abort_message(line) == message


def test_serial_watcher_keeps_the_first_abort_message(tmp_path: Path) -> None:
    out = "\n".join(
        ["BQ-INIT", "BQ-GO 8", "BQ-D 3 x", ASSERT_LINE, "x.c:1: g: Assertion `y' failed.", ""]
    )
    watcher = SerialWatcher(io.BytesIO(out.encode()), tmp_path / "serial.log", time.monotonic())
    watcher.thread.join(timeout=10)
    assert watcher.eof and watcher.reported == {3}
    assert watcher.abort_message == ASSERT_SIG
    assert ASSERT_LINE in (tmp_path / "serial.log").read_text()


def test_serial_watcher_finds_an_abort_message_glued_to_a_console_line(tmp_path: Path) -> None:
    """The CI failure of stop 25: the assertion came while the console was mid-line."""
    out = "\n".join(["BQ-INIT", "BQ-GO 8", "BQ-D 3", "BQ-D 4" + ASSERT_LINE, "5", ""])
    watcher = SerialWatcher(io.BytesIO(out.encode()), tmp_path / "serial.log", time.monotonic())
    watcher.thread.join(timeout=10)
    assert watcher.abort_message == ASSERT_SIG


def finished(tmp_path: Path, run: GuestRun | None, **facts: object) -> _Pending:
    ctx = TrialContext(
        commit="deadbeefcafe",
        artifact_dir=tmp_path / "art",
        index=0,
        work_dir=tmp_path / "work",
        evidence_dir=tmp_path / "evidence",
        timeout=10.0,
        seed=1,
    )
    ctx.work_dir.mkdir()
    log = ctx.work_dir / "serial.log"
    log.write_text(ASSERT_LINE + "\n")
    pending = _Pending(ctx, run, ctx.work_dir / "disk.qcow2", log)
    for name, value in facts.items():
        setattr(pending, name, value)
    return pending


def test_trial_result_carries_the_signature(tmp_path: Path) -> None:
    """The probe's _finish passes the judgement's signature on, in TrialResult.signature."""
    probe = Qcow2SigtermProbe(accel="tcg")
    # the check could not open the image, so no data is read: no qemu-img runs here
    res = probe._finish(finished(tmp_path, SIGABRT_RUN, check=NOT_QCOW2), None)
    assert res.outcome is Outcome.REPRODUCED
    assert res.signature == f"SIGABRT: {ASSERT_SIG}"
    assert res.signal == 6 and "trusted check: check failed (status 1)" in res.detail
    assert res.log_path and Path(res.log_path).is_file()


@pytest.mark.parametrize(
    ("run", "facts", "outcome", "signature"),
    [
        (ran(returncode=None, hung=True), {}, Outcome.HANG, "hang after SIGTERM"),
        (GuestRun(returncode=1), {}, Outcome.INCONCLUSIVE, None),
        (None, {"harness_errors": ["qemu-img create failed"]}, Outcome.INCONCLUSIVE, None),
        (None, {"error": "probe raised OSError: x"}, Outcome.ERROR, None),
    ],
)
def test_trials_without_a_failure_of_qemu_have_no_signature_but_hangs(
    tmp_path: Path, run: GuestRun | None, facts: dict, outcome: Outcome, signature: str | None
) -> None:
    res = Qcow2SigtermProbe(accel="tcg")._finish(finished(tmp_path, run, **facts), None)
    assert res.outcome is outcome, res.detail
    assert res.signature == signature


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
