"""Benchmark: bisect-qemu vs a naive driver on generated flaky repos.

    .venv/bin/python bench/bench_flaky.py [--seeds 3] [--commits 100] [--rate 0.25]

The naive driver is what people write by hand: `git bisect run` with a script
that rebuilds from clean (no cache), runs the probe N=30 times serially and
calls the commit broken if any trial crashed.  Both run on the same generated
repo (a real C program with a real SIGTERM race) and the same machine, in the
same process; the script prints the measured figures and their ratios.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bisect_driver.app.flaky_project import FlakySpec, generate  # noqa: E402

NAIVE_STEP = r"""#!/bin/sh
# naive: clean rebuild, N serial trials, broken if any trial crashed
make -s clean >/dev/null 2>&1; rm -f flaky
make -s >/dev/null 2>&1 || exit 125
crashed=0
i=0
while [ $i -lt {n} ]; do
  i=$((i+1))
  echo x >> {counter}
  BISECT_SEED=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ') BISECT_WORK_DIR=$PWD ./probe.sh \
    >/dev/null 2>&1
  [ $? -eq 1 ] && crashed=1
done
[ $crashed -eq 1 ] && exit 0   # old term: broken
exit 1                         # new term: fixed
"""


def naive(repo, work: Path, n: int) -> dict:
    clone = work / "naive-clone"
    subprocess.run(["git", "clone", "-q", str(repo.path), str(clone)], check=True)
    (clone / "Makefile").write_text((clone / "Makefile").read_text() + "clean:\n\trm -f flaky\n")
    subprocess.run(["git", "update-index", "--assume-unchanged", "Makefile"], cwd=clone, check=True)
    counter = work / "naive-trials"
    script = work / "naive-step.sh"
    script.write_text(NAIVE_STEP.format(n=n, counter=counter))
    script.chmod(0o755)
    t0 = time.monotonic()
    g = lambda *a: subprocess.run(["git", *a], cwd=clone, capture_output=True, text=True)  # noqa
    g("bisect", "start", "--term-old=broken", "--term-new=fixed", repo.new, repo.old)
    out = g("bisect", "run", str(script)).stdout
    g("bisect", "reset")
    wall = time.monotonic() - t0
    found = None
    for line in out.splitlines():
        if line.endswith("is the first fixed commit"):
            found = line.split()[0]
    trials = len(counter.read_text().splitlines()) if counter.exists() else 0
    return {"found": found, "trials": trials, "wall": wall}


def backport_trials(report: dict) -> int:
    """Trials the backport stage ran on its own trees (REF + series, REF + prerequisites,
    hand-made patches, adapted candidates): the deliverable after the answer, which other
    bisection tools do not make.  REF itself is the hunt's old end, counted with the hunt."""
    n = 0
    for b in report.get("backports", []):
        n += sum(t["trials"] for t in b.get("trials", []) if t["commit"] != b["ref_sha"])
        n += sum(p["trial"]["trials"] for p in b.get("patches", []) if p.get("trial"))
        n += sum(c["trial"]["trials"] for c in b.get("candidates", []) if c.get("trial"))
    return n


def ours(repo, work: Path, confidence: float, extra: tuple[str, ...] = ()) -> dict:
    """The tool as a user runs it (``extra``: more options, e.g. --steady-rate)."""
    tag = f"{confidence}{''.join(extra)}"
    cache = work / f"cache-{tag}"
    report = work / f"report-{tag}"
    cmd = [
        str(ROOT / ".venv" / "bin" / "bisect-qemu"),
        "--repo",
        str(repo.path),
        "--good",
        repo.old,
        "--bad",
        repo.new,
        "--cache-dir",
        str(cache),
        "--build-cmd",
        "make -s",
        "--artifact",
        "flaky",
        "--artifact",
        "probe.sh",
        "--probe-cmd",
        "./probe.sh",
        "--confidence",
        str(confidence),
        "--report-dir",
        str(report),
        *extra,
    ]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    data = json.loads((report / "report.json").read_text()) if proc.returncode in (0, 1, 8) else {}
    ends = {data.get("good"), data.get("bad")}
    ev = data.get("evidence", [])
    bug_end = [e for e in ev if e["commit"] in ends and e["verdict"] == "bug"]
    return {
        "found": (data.get("candidate") or {}).get("commit"),
        "trials": data.get("trials", 0),
        "endpoint_trials": sum(e["trials"] for e in ev if e["commit"] in ends),
        "measured_rate": bug_end[0]["rate"] if bug_end else None,
        "commits_judged": len(ev),
        "backport_trials": backport_trials(data),
        "wall": wall,
        "confidence": data.get("confidence"),
        "status": proc.returncode,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--commits", type=int, default=100)
    ap.add_argument("--rate", type=float, default=0.25)
    ap.add_argument("--naive-n", type=int, default=30)
    ap.add_argument("--confidence", type=float, nargs="+", default=[0.99])
    ap.add_argument("--json", help="also write the raw figures here")
    a = ap.parse_args()
    rows = []
    for seed in range(a.seeds):
        work = Path(tempfile.mkdtemp(prefix="bench-flaky-"))
        try:
            change = 1 + (seed * 37 + 41) % (a.commits - 1)
            repo = generate(
                work / "repo",
                FlakySpec(commits=a.commits, change_at=change, rate=a.rate, seed=seed),
            )
            nv = naive(repo, work, a.naive_n)
            row = {"seed": seed, "answer": repo.answer, "naive": nv}
            for conf in a.confidence:
                row[f"ours@{conf}"] = ours(repo, work, conf)
            rows.append(row)
            print(
                json.dumps(
                    {
                        k: v
                        if not isinstance(v, dict)
                        else {kk: (vv[:12] if isinstance(vv, str) else vv) for kk, vv in v.items()}
                        for k, v in row.items()
                    }
                ),
                flush=True,
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"{a.seeds} seeds, {a.commits} commits, planted rate {a.rate}, naive N={a.naive_n}")
    nt = sum(r["naive"]["trials"] for r in rows)
    nw = sum(r["naive"]["wall"] for r in rows)
    nc = sum(r["naive"]["found"] == r["answer"] for r in rows)
    print(f"naive:        trials {nt:6d}  wall {nw:7.1f}s  correct {nc}/{len(rows)}")
    for conf in a.confidence:
        key = f"ours@{conf}"
        ot = sum(r[key]["trials"] for r in rows)
        ow = sum(r[key]["wall"] for r in rows)
        oc = sum(r[key]["found"] == r["answer"] for r in rows)
        print(
            f"{key:13s} trials {ot:6d}  wall {ow:7.1f}s  correct {oc}/{len(rows)}"
            f"  -> trials ratio naive/ours {nt / max(1, ot):.2f}x,"
            f" wall ratio {nw / max(0.001, ow):.2f}x"
        )
        rates = [r[key]["measured_rate"] for r in rows if r[key]["measured_rate"] is not None]
        judged = sum(r[key]["commits_judged"] for r in rows)
        ends = sum(r[key]["endpoint_trials"] for r in rows)
        print(
            f"{'':13s} of which at the two ends: {ends}; commits judged: {judged}"
            f" ({ot / max(1, judged):.1f} trials each; a fixed N={a.naive_n} design judging"
            f" the same commits: {a.naive_n * judged}); measured rate at the reproducing end:"
            f" {', '.join(f'{x:.2f}' for x in rates)}"
        )
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
