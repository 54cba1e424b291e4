"""bisect-qemu's shipped hunt against git-bayesect 1.2's own bisector, on simulated trials
(issue 18, eighth round).

    .venv/bin/python bench/bayesect_simulated.py [--runs 200] [--rates 0.08 0.25 0.5]
        [--commits 100] [--confidence 0.99] [--seed 1] [--venv cache/bench-bayesect]

bench/bench_bayesect.py runs both tools on generated repos with a real race, three repos a
rate: it measures the real thing, but git-bayesect's own totals there moved by 40 % between
runs of the same repos (989, 1731 and 1147 trials at 8 %), so three repos decide no ratio to
better than a few tens of per cent.  This bench takes the race out: both tools get the same
simulated fix hunts (``--commits`` commits, the fix anywhere, every commit before it
reproducing at the rate, none after: no drift, no background), many of them, and the
standard error of each mean is printed.

- bisect-qemu: bench/simulate.py, which runs the shipped hunt (bisect_driver.hunt.stage.hunt
  and its testers, confirmation and revert check), as by default and with ``--steady-rate``.
  Trials are the line's and the revert check's (no backport check: the simulator has no
  old release to backport onto; on the generated repos it is 12-15 % of the steady mode's).
- git-bayesect: its ``Bisector`` class, imported from the virtual environment
  bench/bench_bayesect.py installs (``--venv``; installed here if missing), driven as its
  ``git bayesect run --confidence C`` drives it: ``select()`` a commit, one trial there,
  ``record()`` it, until the most likely commit holds ``C`` of the posterior; the answer is
  that commit.  Its own code decides everything; only the trial is simulated.

Printed per rate: mean trials (± standard error), mean distinct commits tested, claims that
were wrong, and the ratios of bisect-qemu's trials and commits to git-bayesect's.  git-bayesect
claims in every hunt (it stops only at ``C``), so its wrong share is its calibration at ``C``
on these hunts.  Nothing is timed; the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_bayesect import install  # noqa: E402
from simulate import Case, mean_se, simulate  # noqa: E402

DRIVER = r"""
import json, random, sys
import numpy as np
from git_bayesect import Bisector

def hunt(n, change, rate, confidence, seed, cap):
    # Index 0 is the newest commit (git-bayesect's numbering); commit i = n - index.
    rng = random.Random(seed)
    b = Bisector(np.ones(n + 1))
    tested = set()
    trials = 0
    while trials < cap:
        index = b.select()
        commit = n - index
        tested.add(commit)
        fail = commit < change and rng.random() < rate
        b.record(index, fail)
        trials += 1
        if b.distribution.max() >= confidence:
            break
    answer = n - int(b.distribution.argmax())
    return {"answer": answer, "trials": trials, "commits": len(tested),
            "claimed": bool(b.distribution.max() >= confidence)}

for line in sys.stdin:
    case = json.loads(line)
    print(json.dumps(hunt(**case)), flush=True)
"""

CAP = 50_000
"""git-bayesect trials after which a simulated hunt stops unclaimed (never reached here)."""


def bayesect_hunts(
    python: Path, cases: list[Case], seeds: list[int], confidence: float
) -> list[dict[str, object]]:
    """git-bayesect's bisector over ``cases``, in its own interpreter (it needs numpy and
    scipy, which the tool does not)."""
    lines = "".join(
        json.dumps(
            {
                "n": c.n,
                "change": c.change,
                "rate": c.far_rate,
                "confidence": confidence,
                "seed": s,
                "cap": CAP,
            }
        )
        + "\n"
        for c, s in zip(cases, seeds, strict=True)
    )
    out = subprocess.run(
        [str(python), "-c", DRIVER], input=lines, capture_output=True, text=True, check=True
    )
    return [json.loads(line) for line in out.stdout.splitlines()]


def summary(trials: list[int], commits: list[int], claimed: int, wrong: int) -> dict[str, float]:
    return {
        "trials": sum(trials) / len(trials),
        "se": mean_se(trials),
        "commits": sum(commits) / len(commits),
        "claimed": claimed,
        "wrong": wrong,
    }


def cell(
    rate: float, commits: int, runs: int, seed: int, confidence: float, python: Path
) -> dict[str, dict[str, float]]:
    """Every tool's summary over the same ``runs`` simulated fix hunts at ``rate``."""
    rng = random.Random(seed * 1000 + int(rate * 1000) + commits)
    cases = [Case(commits, rng.randint(1, commits), rate) for _ in range(runs)]
    seeds = [rng.randrange(1 << 30) for _ in cases]
    out: dict[str, dict[str, float]] = {}
    for name, steady in (("bisect-qemu", False), ("bisect-qemu --steady-rate", True)):
        sims = [
            simulate(c, s, confidence=confidence, steady=steady)
            for c, s in zip(cases, seeds, strict=True)
        ]
        out[name] = summary(
            [o.trials + o.revert_trials for o in sims],
            [o.commits for o in sims],
            sum(o.claimed for o in sims),
            sum(o.wrong for o in sims),
        )
    theirs = bayesect_hunts(python, cases, seeds, confidence)
    out["git-bayesect"] = summary(
        [int(h["trials"]) for h in theirs],  # type: ignore[call-overload]
        [int(h["commits"]) for h in theirs],  # type: ignore[call-overload]
        sum(bool(h["claimed"]) for h in theirs),
        sum(
            bool(h["claimed"]) and h["answer"] != c.answer
            for h, c in zip(theirs, cases, strict=True)
        ),
    )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="hunts a rate (default 200)")
    ap.add_argument("--rates", type=float, nargs="+", default=[0.08, 0.25, 0.5])
    ap.add_argument("--commits", type=int, default=100)
    ap.add_argument("--confidence", type=float, default=0.99)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--venv", type=Path, default=ROOT / "cache" / "bench-bayesect")
    a = ap.parse_args()
    install(a.venv)
    python = a.venv / "bin" / "python"
    print(
        f"{a.runs} simulated fix hunts a rate, {a.commits} commits, confidence {a.confidence},"
        f" seed {a.seed}; trials ± standard error\n"
    )
    print(
        "| rate | tool | trials | distinct commits | claimed | wrong | trials / bayesect's"
        " | commits / bayesect's |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for rate in a.rates:
        row = cell(rate, a.commits, a.runs, a.seed, a.confidence, python)
        theirs = row["git-bayesect"]
        for tool, s in row.items():
            ratio = (
                f"{s['trials'] / theirs['trials']:.2f}x | {s['commits'] / theirs['commits']:.2f}x"
                if tool != "git-bayesect"
                else " | "
            )
            print(
                f"| {rate:g} | {tool} | {s['trials']:.0f} ± {s['se']:.0f} | {s['commits']:.1f}"
                f" | {s['claimed']:.0f} | {s['wrong']:.0f} | {ratio} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
