"""Where a hunt's trials go: the ends, the answer's two neighbours, the other steps.

    .venv/bin/python bench/where_trials_go.py [--runs 20] [--seed 3]
        [--cells 0.08:120 0.25:100] [--steady-rate] [--soft-alpha 0.2] [--perfect-steps]
        [--regression]

Simulated constant-rate fix hunts through the shipped hunt (bench/simulate.py), the change
anywhere; per cell (rate:commits) the mean trials at the reproducing end, the clean end, the
bug-carrying neighbour of the change (its parent), the answer itself (the clean neighbour the
strict test clears) and every other commit the bisect visited.  The revert check's trials are
not on the line and not counted.  With --steady-rate the hunts are told the rate does not
drift (the strict test against the pool, no floor).  With --soft-alpha the steps decide at
that level instead of the shipped stats.SOFT_ALPHA (the clean end's anchor and the BUG side
keep stats.ANCHOR_ALPHA, as shipped): the sweep behind SOFT_ALPHA's value.  With
--regression the hunts are regression hunts (the bug from the change on), so the
bug-carrying neighbour is the change itself and the answer's clean neighbour its parent:
issue 18's 8 % target is for fix and regression hunts alike.  The last columns
count the hunts that had a correction and the distinct commits tested; a line under the
table gives each total's standard error.  It says which part
of the decisions a cheaper route must cut (issue 18).

With --perfect-steps every hunt runs twice on the same trials (the simulator draws each
commit's trials from a stream of its own): as shipped, and with perfect steps, a
counterfactual only a simulation has (a soft CLEAN at a commit that carries the bug is
instead tested on to its next reproduction, so no correction follows).  The table is then
the shipped hunts', with a last column of what corrections cost: the paired mean difference
of the two in trials, with its standard error, and as a share of the shipped hunts' trials.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from simulate import Case, mean_se, simulate  # noqa: E402

from bisect_driver.verdict.stats import SOFT_ALPHA  # noqa: E402

PARTS = ("total", "bug end", "clean end", "bug-side neighbour", "the answer", "other steps")


def where(
    rate: float,
    commits: int,
    runs: int,
    rng: random.Random,
    steady: bool = False,
    soft_alpha: float = SOFT_ALPHA,
    perfect_steps: bool = False,
    direction: str = "fix",
) -> dict[str, float]:
    """Mean trials per part over ``runs`` hunts (``direction``: "fix" or "regression") at
    ``rate`` over ``commits``, and the share of hunts with a correction and the mean
    distinct commits tested; with
    ``perfect_steps`` also what corrections cost (the paired difference to the same hunts
    with perfect steps: "corrections", its standard error "corrections se")."""
    rows = []
    corrected, commits_tested = 0, 0
    saved: list[int] = []
    for _ in range(runs):
        change = rng.randint(2, commits - 1)
        case = Case(commits, change, rate, direction=direction)
        seed = rng.randrange(1 << 30)
        out = simulate(case, seed=seed, steady=steady, policy_alpha=soft_alpha)
        if perfect_steps:
            ideal = simulate(
                case, seed=seed, steady=steady, policy_alpha=soft_alpha, perfect_steps=True
            )
            saved.append(out.trials - ideal.trials)
        c = out.per_commit
        ends = c[0] + c[commits]
        if direction == "fix":  # the bug before the change: the old end reproduces
            bug_end, clean_end, near, answer = c[0], c[commits], c[change - 1], c[change]
        else:  # the bug from the change on: the new end reproduces
            bug_end, clean_end, near, answer = c[commits], c[0], c[change], c[change - 1]
        rows.append((sum(c), bug_end, clean_end, near, answer, sum(c) - ends - answer - near))
        corrected += out.corrected > 0
        commits_tested += out.commits
    columns = zip(*rows, strict=True)
    means = {part: statistics.mean(col) for part, col in zip(PARTS, columns, strict=True)}
    means["total se"] = mean_se([row[0] for row in rows])
    means["corrected"] = corrected / runs
    means["commits"] = commits_tested / runs
    if saved:
        means["corrections"] = statistics.mean(saved)
        means["corrections se"] = mean_se(saved)
    return means


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20, help="hunts per cell (default 20)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument(
        "--cells", nargs="+", default=["0.08:120", "0.25:100", "0.5:100"], help="RATE:COMMITS"
    )
    ap.add_argument("--steady-rate", action="store_true", help="hunts told the rate is steady")
    ap.add_argument(
        "--soft-alpha",
        type=float,
        default=SOFT_ALPHA,
        help=f"the steps' level (default the shipped {SOFT_ALPHA})",
    )
    ap.add_argument(
        "--perfect-steps",
        action="store_true",
        help="also run each hunt with perfect steps and print what corrections cost",
    )
    ap.add_argument(
        "--regression", action="store_true", help="regression hunts instead of fix hunts"
    )
    a = ap.parse_args()
    if not 0.0 < a.soft_alpha < 1.0:
        ap.error(f"--soft-alpha must be between 0 and 1, not {a.soft_alpha}")
    rng = random.Random(a.seed)
    print(
        f"{a.runs} simulated {'regression' if a.regression else 'fix'} hunts per cell"
        f" (seed {a.seed}), steps at {a.soft_alpha}, mean trials\n"
    )
    extra = " what corrections cost |" if a.perfect_steps else ""
    print(
        "| rate | commits | "
        + " | ".join(PARTS)
        + " | the answer's share | hunts with a correction | distinct commits |"
        + extra
    )
    print("|---:|---:|" + "---:|" * (len(PARTS) + 3 + bool(extra)))
    spread: list[str] = []
    for cell in a.cells:
        rate_s, commits_s = cell.split(":")
        m = where(
            float(rate_s),
            int(commits_s),
            a.runs,
            rng,
            a.steady_rate,
            a.soft_alpha,
            a.perfect_steps,
            "regression" if a.regression else "fix",
        )
        cells = " | ".join(f"{m[p]:.0f}" for p in PARTS)
        cost = ""
        if a.perfect_steps:
            share = m["corrections"] / m["total"]
            cost = f" {m['corrections']:.0f} +- {m['corrections se']:.0f} ({share:.1%}) |"
        print(
            f"| {rate_s} | {commits_s} | {cells} | {m['the answer'] / m['total']:.0%}"
            f" | {m['corrected']:.0%} | {m['commits']:.1f} |{cost}"
        )
        spread.append(f"{cell} {m['total']:.0f} ± {m['total se']:.0f}")
    print("\ntotal, standard error of the mean: " + "; ".join(spread))
    return 0


if __name__ == "__main__":
    sys.exit(main())
