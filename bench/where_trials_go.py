"""Where a hunt's trials go: the ends, the answer's two neighbours, the other steps.

    .venv/bin/python bench/where_trials_go.py [--runs 20] [--seed 3]
        [--cells 0.08:120 0.25:100] [--steady-rate]

Simulated constant-rate fix hunts through the shipped hunt (bench/simulate.py), the change
anywhere; per cell (rate:commits) the mean trials at the reproducing end, the clean end, the
bug-carrying neighbour of the change (its parent), the answer itself (the clean neighbour the
strict test clears) and every other commit the bisect visited.  The revert check's trials are
not on the line and not counted.  With --steady-rate the hunts are told the rate does not
drift (the strict test against the pool, no floor).  It says which part of the decisions a
cheaper route must cut (issue 18).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from simulate import Case, simulate  # noqa: E402

PARTS = ("total", "bug end", "clean end", "bug-side neighbour", "the answer", "other steps")


def where(
    rate: float, commits: int, runs: int, rng: random.Random, steady: bool = False
) -> dict[str, float]:
    """Mean trials per part over ``runs`` fix hunts at ``rate`` over ``commits``."""
    rows = []
    for _ in range(runs):
        change = rng.randint(2, commits - 1)
        out = simulate(Case(commits, change, rate), seed=rng.randrange(1 << 30), steady=steady)
        c = out.per_commit
        ends, answer, parent = c[0] + c[commits], c[change], c[change - 1]
        rows.append((sum(c), c[0], c[commits], parent, answer, sum(c) - ends - answer - parent))
    columns = zip(*rows, strict=True)
    return {part: statistics.mean(col) for part, col in zip(PARTS, columns, strict=True)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20, help="hunts per cell (default 20)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument(
        "--cells", nargs="+", default=["0.08:120", "0.25:100", "0.5:100"], help="RATE:COMMITS"
    )
    ap.add_argument("--steady-rate", action="store_true", help="hunts told the rate is steady")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    print(f"{a.runs} simulated fix hunts per cell (seed {a.seed}), mean trials\n")
    print("| rate | commits | " + " | ".join(PARTS) + " | the answer's share |")
    print("|---:|---:|" + "---:|" * (len(PARTS) + 1))
    for cell in a.cells:
        rate_s, commits_s = cell.split(":")
        m = where(float(rate_s), int(commits_s), a.runs, rng, a.steady_rate)
        cells = " | ".join(f"{m[p]:.0f}" for p in PARTS)
        print(f"| {rate_s} | {commits_s} | {cells} | {m['the answer'] / m['total']:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
