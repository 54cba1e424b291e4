#!/usr/bin/env python3
"""Where the wall time of one qcow2-sigterm trial goes, phase by phase (issue 13).

Why: every second of a trial is paid on every trial of an overnight bisect, and
the journal only records a trial's total.  This script runs real trials with the
probe's own pieces (``make_image``, ``qemu_command``, ``run_guest``,
``check_image``, ``image_to_raw``, ``compare_raw_file``, ``judge``), in the same
order as ``Qcow2SigtermProbe.run_trial``, and splits each trial's wall time with
the per-line host timestamps that ``SerialWatcher`` writes into the serial log:

    image     qemu-img create (the build's own)
    bios      qemu start -> first guest output (firmware, option ROM, kernel + initrd load)
    unpack    -> first kernel printk line (the bzImage decompressor: unpack the kernel)
    kernel    -> BQ-INIT (kernel init up to /init)
    modules   -> BQ-DISK (insmod of the disk modules, block device ready)
    go        -> BQ-GO (writer started)
    writes    -> SIGTERM sent (the drawn number of reported chunks + jitter)
    exit      -> qemu exited
    reap      -> run_guest returned (group kill, serial thread join)
    check     trusted qemu-img check
    convert   trusted qemu-img convert to raw (only when the data still matters)
    compare   byte comparison of the raw file
    total     the whole trial, as its worker thread saw it
    journal_duration   what the journal's ``duration`` holds (run_guest + data read)

``bios`` and ``unpack`` need markers on the serial console: by default the
kernel command line gets ``earlyprintk=serial,ttyS0,115200 nokaslr loglevel=6``
so that the decompressor prints "KASLR disabled" when it starts and the kernel
prints from its start on (a few dozen lines at loglevel 6; ``--no-markers`` measures
without them, and then ``bios``+``unpack``+``kernel`` are reported as one
``boot`` phase).  ``--alt-verify`` also times two candidate verifications and checks
that they find what the full compare finds: ``slots_compare`` compares the
converted raw file only at the reported and allocated chunks (allocated per the
trusted ``qemu-img map``, as ``--verify guestfs`` does), and ``alt_verify``
skips the convert and reads those chunks straight from the qcow2 file at the
host offsets the map gives.  Their time is left out of ``total``.
``--initcalls N`` boots with ``initcall_debug`` and prints the N slowest
initcalls (timings then include console output).

Run it alone (2 cores: one batch of trials at a time), e.g.:

    .venv/bin/python bench/trial_profile.py \\
        /work/qemucache/artifacts/d58728140cda781d/1c8a881daaca6fe0646a425b0970fb3ad25f6732 \\
        -n 10 -j 2 --cache-dir /work/qemucache --out /tmp/profile-v1.0.jsonl \\
        [--guest-append "..."] [--kill-after 1-8] [--guest-kernel K --guest-modules M]

All the probe's options (``--guest-append``, ``--guest-memory``, ``--kill-after``,
``--chunks`` ...) are accepted and mean what they mean for ``bisect-qemu probe``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bisect_driver.plugin import Outcome, TrialContext  # noqa: E402
from bisect_driver.plugin.proc import run_group  # noqa: E402
from probes.qcow2_sigterm import Qcow2SigtermProbe  # noqa: E402
from probes.qcow2_sigterm.judge import judge, judge_run, wants_data  # noqa: E402
from probes.qcow2_sigterm.trial import make_image, qemu_command, run_guest  # noqa: E402
from probes.qcow2_sigterm.verify import (  # noqa: E402
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

MARKERS = "earlyprintk=serial,ttyS0,115200 nokaslr loglevel=6"
PHASES = (
    "image",
    "bios",
    "unpack",
    "kernel",
    "boot",
    "modules",
    "go",
    "writes",
    "exit",
    "reap",
    "check",
    "convert",
    "compare",
    "slots_compare",
    "alt_verify",
    "total",
    "journal_duration",
)
_LOG_LINE = re.compile(r"^\[\s*([0-9.]+)\] (.*)$")
_INITCALL = re.compile(r"initcall (\S+) returned \S+ after (\d+) usecs")


def serial_marks(log: Path) -> dict[str, float]:
    """Host seconds since qemu started at which each marker line first appeared."""
    marks: dict[str, float] = {}
    if not log.is_file():
        return marks
    wanted: dict[str, Callable[[str], bool]] = {
        "first": lambda s: "KASLR" in s or s.startswith("["),
        "banner": lambda s: s.startswith("["),
        "init": lambda s: s.startswith("BQ-INIT"),
        "disk": lambda s: s.startswith("BQ-DISK"),
        "go": lambda s: s.startswith("BQ-GO"),
        "first_d": lambda s: s.startswith("BQ-D "),
    }
    for raw in log.read_text(errors="replace").splitlines():
        m = _LOG_LINE.match(raw)
        if not m:
            continue
        t, text = float(m.group(1)), m.group(2).strip()
        if not text or "GLib-WARNING" in text:
            continue  # qemu's own start-up noise, not the guest
        for name, test in wanted.items():
            if name not in marks and test(text):
                marks[name] = t
    return marks


def slow_initcalls(log: Path, top: int) -> list[tuple[int, str]]:
    """The ``top`` slowest initcalls in a log booted with ``initcall_debug``."""
    found = [
        (int(m.group(2)), m.group(1))
        for m in map(_INITCALL.search, log.read_text(errors="replace").splitlines())
        if m
    ]
    return sorted(found, reverse=True)[:top]


def map_read_data(
    image: Path, trial: int, chunk_size: int, chunks: int, reported: set[int]
) -> tuple[DataResult | None, str]:
    """Candidate verification: compare only reported + allocated chunks, read in place.

    The trusted ``qemu-img map`` says where each guest range lives in the file
    (compat=0.10 images are never compressed or encrypted here); every other
    range reads as zeros.  Returns (None, why) when the map fails (corrupt).
    """
    res = run_group(
        [str(TRUSTED_QEMU_IMG), "map", "-f", "qcow2", "--output=json", str(image)], timeout=120
    )
    start = res.output.find("[")
    if not res.ok or start < 0:
        return None, " ".join(res.output.split())[:160]
    entries = json.loads(res.output[start : res.output.rfind("]") + 1])
    extents = sorted(
        (int(e["start"]), int(e["length"]), int(e["offset"]))
        for e in entries
        if e.get("data") and "offset" in e
    )
    slots = set(reported)
    for gstart, glen, _ in extents:
        slots.update(
            range(gstart // chunk_size, min(chunks - 1, (gstart + glen - 1) // chunk_size) + 1)
        )
    with open(image, "rb") as fh:

        def read_at(offset: int, length: int) -> bytes:
            out = bytearray(length)
            for gstart, glen, hoff in extents:
                lo, hi = max(offset, gstart), min(offset + length, gstart + glen)
                if lo < hi:
                    fh.seek(hoff + lo - gstart)
                    data = fh.read(hi - lo)
                    out[lo - offset : lo - offset + len(data)] = data
            return bytes(out)

        return compare_data(read_at, trial, chunk_size, chunks, reported, slots), ""


def same_findings(a: DataResult | None, b: DataResult | None) -> bool:
    """Do two byte comparisons report the same lost and wrong chunks (or both fail)?"""
    if a is None or b is None:
        return a is b
    return (a.lost, a.wrong) == (b.lost, b.wrong)


def slots_compare(
    raw: Path,
    image: Path,
    trial: int,
    chunk_size: int,
    chunks: int,
    reported: set[int],
    full: DataResult,
) -> tuple[float, bool]:
    """Candidate: compare the converted raw file only at reported + allocated slots.

    The slots come from the trusted ``qemu-img map`` (as ``--verify guestfs``
    already does); the rest of a converted image is zeros.  Returns the seconds
    it took (map + compare) and whether it found what the full compare found.
    """
    start = time.monotonic()
    extents, _ = allocated_extents(image)
    if extents is None:
        return time.monotonic() - start, False
    slots = reported | slots_touching(extents, chunk_size, chunks)
    with open(raw, "rb") as fh:

        def read_at(offset: int, length: int) -> bytes:
            fh.seek(offset)
            data = fh.read(length)
            return data + bytes(length - len(data))

        found = compare_data(read_at, trial, chunk_size, chunks, reported, slots)
    return time.monotonic() - start, same_findings(found, full)


def one_trial(
    probe: Qcow2SigtermProbe, ctx: TrialContext, alt_verify: bool, initcalls: int
) -> dict[str, Any]:
    """One trial as ``run_trial`` does it, with every phase timed."""
    t0 = time.monotonic()
    w = probe.workload
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    image, log = ctx.work_dir / "disk.qcow2", ctx.work_dir / "serial.log"
    row: dict[str, Any] = {"index": ctx.index, "seed": ctx.seed}
    try:
        make_image(ctx.artifact_dir, image, w)
    except HarnessError as exc:
        row.update(outcome="inconclusive", detail=str(exc))
        return row
    t_qemu = time.monotonic()
    row["image"] = t_qemu - t0
    trial = ctx.seed & 0xFFFFFFFF
    assert probe.kit is not None and probe.resolved_accel is not None
    cmd = qemu_command(ctx.artifact_dir, probe.kit, image, w, trial, probe.resolved_accel)
    run = run_guest(cmd, w, ctx, log, random.Random(ctx.seed))
    marks = serial_marks(log)
    row["marks"] = marks
    if "first" in marks and "banner" in marks:
        row["bios"] = marks["first"]
        row["unpack"] = marks["banner"] - marks["first"]
        if "init" in marks:
            row["kernel"] = marks["init"] - marks["banner"]
    if "init" in marks:
        row["boot"] = marks["init"]
        if "disk" in marks:
            row["modules"] = marks["disk"] - marks["init"]
            if "go" in marks:
                row["go"] = marks["go"] - marks["disk"]
    if run.go_time and run.kill_time:
        row["writes"] = run.kill_time - run.go_time
    if run.kill_time and run.exit_time:
        row["exit"] = run.exit_time - run.kill_time
    if run.exit_time:
        row["reap"] = run.start + run.duration - run.exit_time
    row["reported_before_kill"] = run.reported_before_kill
    row["signal"] = run.signal
    check: CheckResult | None = None
    data: DataResult | None = None
    harness: list[str] = []
    read_error = ""
    decided = judge_run(run)
    t_fin = time.monotonic()
    if decided is None or decided.outcome is Outcome.REPRODUCED:
        try:
            check = check_image(image)
        except HarnessError as exc:
            harness.append(str(exc))
        row["check"] = time.monotonic() - t_fin
    t_data = time.monotonic()
    alt_s = 0.0  # time spent on the candidate verifications, left out of the totals
    if wants_data(run, check, harness):
        raw = ctx.work_dir / "disk.raw"
        try:
            err = image_to_raw(image, raw)
            t_cmp = time.monotonic()
            row["convert"] = t_cmp - t_data
            if err:
                read_error = f"image unreadable: {err}"
            else:
                data = compare_raw_file(raw, trial, w.chunk_size, w.chunks, set(run.reported))
                t_alt = time.monotonic()
                row["compare"] = t_alt - t_cmp
                if alt_verify:
                    row["slots_compare"], row["slots_agrees"] = slots_compare(
                        raw, image, trial, w.chunk_size, w.chunks, set(run.reported), data
                    )
                    alt_s += time.monotonic() - t_alt
        except HarnessError as exc:
            harness.append(str(exc))
        finally:
            raw.unlink(missing_ok=True)
        if alt_verify:
            t_alt = time.monotonic()
            alt, alt_err = map_read_data(image, trial, w.chunk_size, w.chunks, set(run.reported))
            row["alt_verify"] = time.monotonic() - t_alt
            alt_s += row["alt_verify"]
            row["alt_agrees"] = same_findings(alt, data)
            row["alt_error"] = alt_err
    verdict = judge(run, check, data, read_error, harness)
    row.update(outcome=str(verdict.outcome), detail=verdict.detail[:200])
    now = time.monotonic()
    row["total"] = now - t0 - alt_s
    # What the journal's `duration` holds: run_guest's duration plus _finish (data read).
    row["journal_duration"] = run.duration + now - t_data - alt_s
    if initcalls:
        row["initcalls"] = slow_initcalls(log, initcalls)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("artifact_dir", type=Path, help="dir with bin/qemu-* and pc-bios/")
    parser.add_argument("-n", "--trials", type=int, default=10)
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--seed-base", type=int, default=50000)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--cache-dir", type=Path, default=Path("/work/qemucache"))
    parser.add_argument("--no-markers", action="store_true", help="no earlyprintk/banner lines")
    parser.add_argument("--alt-verify", action="store_true", help="also time faster checks")
    parser.add_argument("--initcalls", type=int, default=0, help="boot with initcall_debug")
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir (logs)")
    parser.add_argument("--out", type=Path, help="append one JSON line per trial")
    Qcow2SigtermProbe.add_arguments(parser)
    args = parser.parse_args(argv)

    probe = Qcow2SigtermProbe.from_args(args)
    extra = [] if args.no_markers else [MARKERS]
    if args.initcalls:
        extra.append("initcall_debug ignore_loglevel")
    if extra:
        append = " ".join([probe.workload.append, *extra]).strip()
        probe.workload = replace(probe.workload, append=append)
    probe.prepare(args.cache_dir)
    scratch = Path(tempfile.mkdtemp(prefix="trial-profile-"))
    art = args.artifact_dir.resolve()
    contexts = [
        TrialContext(
            commit=art.name,
            artifact_dir=art,
            index=i,
            work_dir=scratch / f"t{i}",
            evidence_dir=scratch / "evidence",
            timeout=args.timeout,
            seed=args.seed_base + i,
        )
        for i in range(args.trials)
    ]
    print(f"kit={probe.kit.key if probe.kit else None} append={probe.workload.append!r}")
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(
            pool.map(lambda c: one_trial(probe, c, args.alt_verify, args.initcalls), contexts)
        )
    wall = time.monotonic() - start
    if args.out:
        with open(args.out, "a") as fh:
            for row in rows:
                fh.write(json.dumps({"artifact": art.name, "argv": argv or sys.argv[1:], **row}))
                fh.write("\n")
    counts = Counter(r.get("outcome") for r in rows)
    per = wall / len(rows)
    print(f"{len(rows)} trials, {args.jobs} at once: wall {wall:.1f}s = {per:.2f}s/trial")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
    print(f"{'phase':<17}{'median':>8}{'min':>8}{'max':>8}{'n':>4}")
    for phase in PHASES:
        vals = [float(r[phase]) for r in rows if r.get(phase) is not None]
        if vals:
            print(
                f"{phase:<17}{statistics.median(vals):8.3f}{min(vals):8.3f}{max(vals):8.3f}"
                f"{len(vals):4d}"
            )
    kills = [r["reported_before_kill"] for r in rows if "writes" in r]
    if kills:
        print(f"reported chunks at the kill: median {statistics.median(kills)}")
    if args.alt_verify:
        for key, what in (("slots_agrees", "slots_compare"), ("alt_agrees", "alt_verify")):
            agree = [bool(r[key]) for r in rows if key in r]
            print(f"{what} finds what the full compare finds: {sum(agree)}/{len(agree)}")
    if args.initcalls:
        slow: Counter[str] = Counter()
        for r in rows:
            for usecs, name in r.get("initcalls", []):
                slow[name] += usecs // max(1, len(rows))
        for name, usecs in slow.most_common(args.initcalls):
            print(f"  initcall {name}: {usecs / 1000:.1f} ms (mean)")
    if args.keep:
        print(f"logs kept in {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
