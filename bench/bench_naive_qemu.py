"""Real QEMU: bisect-qemu vs a naive driver on a sub-range, measured in one process.

    .venv/bin/python bench/bench_naive_qemu.py --repo QEMU_CLONE --good G --bad B --work DIR

The naive driver is `git bisect run` over a plain clone with a step that
(1) throws away every build product (artifact cache, build tree, journal;
ccache off) and builds the commit with the qemu recipe, then (2) runs the
qcow2 probe N=30 times serially and calls the commit broken if any trial
reproduced.  bisect-qemu runs with its defaults in a fresh cache.  Both use
the same recipe, probe and guest kit, on the same machine.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

TOOL = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "bisect-qemu")


def step(cache: Path, n: int) -> int:
    """The naive driver's `git bisect run` script (called with --step)."""
    for sub in (
        "artifacts",
        "builds",
        "journal.sqlite3",
        "journal.sqlite3-wal",
        "journal.sqlite3-shm",
        "runs",
        "qemu-recipe",
        "checkouts",
    ):
        p = cache / sub
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    common = ["--repo", ".", "--cache-dir", str(cache), "--no-ccache"]
    if subprocess.run([TOOL, "build", sha, *common], capture_output=True).returncode:
        return 125
    out = subprocess.run(
        [TOOL, "probe", sha, "-n", str(n), "--jobs", "1", *common], capture_output=True, text=True
    ).stdout
    with open(cache / "naive-trials.log", "a") as fh:
        fh.write(out)
    m = re.search(r": (\d+)/(\d+) reproduced", out)
    if not m:
        return 125
    return 0 if int(m.group(1)) > 0 else 1  # old term "broken" = bug seen


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path)
    ap.add_argument("--good")
    ap.add_argument("--bad")
    ap.add_argument("--work", type=Path)
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--step", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.step:
        return step(a.step, a.n)
    a.work.mkdir(parents=True, exist_ok=True)
    clone = a.work / "naive-clone"
    subprocess.run(["git", "clone", "-q", "--shared", str(a.repo), str(clone)], check=True)
    naive_cache = a.work / "naive-cache"
    naive_cache.mkdir()
    g = lambda *x: subprocess.run(["git", *x], cwd=clone, capture_output=True, text=True)  # noqa
    t0 = time.monotonic()
    g("bisect", "start", "--term-old=broken", "--term-new=fixed", a.bad, a.good)
    out = g(
        "bisect", "run", sys.executable, __file__, "--step", str(naive_cache), "-n", str(a.n)
    ).stdout
    g("bisect", "reset")
    naive_wall = time.monotonic() - t0
    found = re.search(r"^([0-9a-f]{40}) is the first fixed commit", out, re.M)
    trials = sum(
        int(m.group(2))
        for m in re.finditer(
            r": (\d+)/(\d+) reproduced", (naive_cache / "naive-trials.log").read_text()
        )
    )
    print(
        f"naive: {found.group(1) if found else None} trials {trials} wall {naive_wall:.0f}s",
        flush=True,
    )
    t0 = time.monotonic()
    res = subprocess.run(
        [
            TOOL,
            "--good",
            a.good,
            "--bad",
            a.bad,
            "--repo",
            str(a.repo),
            "--cache-dir",
            str(a.work / "ours-cache"),
            "--report-dir",
            str(a.work / "ours-report"),
        ],
        capture_output=True,
        text=True,
    )
    ours_wall = time.monotonic() - t0
    import json

    rep = json.loads((a.work / "ours-report" / "report.json").read_text())
    print(
        f"ours:  {res.stdout.strip()} trials {rep['trials']} wall {ours_wall:.0f}s"
        f" confidence {rep['confidence']:.5f} exit {res.returncode}"
    )
    print(
        f"wall ratio naive/ours {naive_wall / ours_wall:.2f}x,"
        f" trials ratio {trials / max(1, rep['trials']):.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
