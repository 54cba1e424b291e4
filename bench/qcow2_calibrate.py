#!/usr/bin/env python3
"""Measure the qcow2-sigterm probe on one build: reproduction rate and time per trial.

Stand-in for ``bisect-qemu probe REF -n 50`` until the driver wires it; it
drives the probe exactly as the driver will (``prepare`` then ``run_batch``).

    flock /tmp/bisect-heavy.lock .venv/bin/python bench/qcow2_calibrate.py \\
        cache/artifacts/v1.0 -n 50 -j 2 --out cache/calib/v1.0.jsonl

Why flock: the machine has two cores shared with QEMU builds; every
multi-trial run takes the same lock as the build helper.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bisect_driver.plugin import Outcome, TrialContext  # noqa: E402
from bisect_driver.verdict.stats import clopper_pearson  # noqa: E402
from probes.qcow2_sigterm import Qcow2SigtermProbe  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifact_dir", type=Path, help="dir with bin/qemu-* and pc-bios/")
    parser.add_argument("-n", "--trials", type=int, default=50)
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument(
        "--batch",
        type=int,
        default=0,
        help="trials per run_batch call (default: all; guestfs: one launch each)",
    )
    parser.add_argument("--seed-base", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--cache-dir", type=Path, default=Path("cache"))
    parser.add_argument("--evidence-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, help="append one JSON line per trial")
    Qcow2SigtermProbe.add_arguments(parser)
    args = parser.parse_args(argv)

    probe = Qcow2SigtermProbe.from_args(args)
    t0 = time.monotonic()
    probe.prepare(args.cache_dir)
    print(
        f"prepare: {time.monotonic() - t0:.1f}s, accel={probe.resolved_accel}, "
        f"kit={probe.kit.key if probe.kit else None}",
        flush=True,
    )
    evidence = args.evidence_dir or args.cache_dir / "evidence" / args.artifact_dir.name
    scratch = Path(tempfile.mkdtemp(prefix="qcow2-calib-", dir=args.cache_dir))
    contexts = [
        TrialContext(
            commit=args.artifact_dir.resolve().name,
            artifact_dir=args.artifact_dir.resolve(),
            index=i,
            work_dir=scratch / f"t{i}",
            evidence_dir=evidence,
            timeout=args.timeout,
            seed=args.seed_base + i,
        )
        for i in range(args.trials)
    ]
    batch = args.batch or len(contexts)
    counts: Counter[str] = Counter()
    durations = []
    start = time.monotonic()
    out = open(args.out, "a") if args.out else None  # noqa: SIM115 - closed below
    try:
        for b in range(0, len(contexts), batch):
            chunk = contexts[b : b + batch]
            t_batch = time.monotonic()
            results = probe.run_batch(chunk, args.jobs)
            batch_s = time.monotonic() - t_batch
            for ctx, res in zip(chunk, results, strict=True):
                counts[res.outcome.value] += 1
                durations.append(res.duration)
                print(
                    f"#{ctx.index:3d} seed={ctx.seed} {res.outcome.value:12s} "
                    f"{res.duration:5.1f}s {res.extra} {res.detail}",
                    flush=True,
                )
                if out:
                    out.write(
                        json.dumps(
                            {
                                "artifact": str(args.artifact_dir),
                                "index": ctx.index,
                                "seed": ctx.seed,
                                "outcome": res.outcome.value,
                                "duration": res.duration,
                                "signal": res.signal,
                                "exit": res.exit_status,
                                "detail": res.detail,
                                "extra": res.extra,
                                "settings": probe.settings(),
                                "batch_s": batch_s,
                            }
                        )
                        + "\n"
                    )
            print(f"batch of {len(chunk)}: {batch_s:.1f}s wall", flush=True)
    finally:
        if out:
            out.close()
        shutil.rmtree(scratch, ignore_errors=True)
    wall = time.monotonic() - start
    rep = counts[Outcome.REPRODUCED.value]
    decisive = rep + counts[Outcome.CLEAN.value]
    lo, hi = clopper_pearson(rep, decisive)
    durations.sort()
    print(f"\noutcomes: {dict(counts)}")
    print(
        f"reproduced {rep}/{decisive} decisive = {rep / max(1, decisive):.1%} "
        f"(95% Clopper-Pearson {lo:.1%}-{hi:.1%})"
    )
    print(
        f"per trial: median {durations[len(durations) // 2]:.1f}s, "
        f"wall {wall:.0f}s for {len(contexts)} trials with -j {args.jobs} "
        f"= {wall / max(1, len(contexts)):.1f}s/trial"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
