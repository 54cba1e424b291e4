"""Trials per hunt against the bounds, through the shipped hunt (bench/simulate.py).

    .venv/bin/python bench/bench_statistics.py [--runs 100] [--seed 1] [--repos] [--json F]

Simulated part (always): for N in {100, 2713} commits and a constant rate p in
{0.05, 0.1, 0.25, 0.5, 0.86}, delta = 0.01, it runs bisect_driver.hunt.stage.hunt on
simulated fix hunts (the change drawn uniformly) and prints the mean trials per hunt,
the distinct commits tested, the share of wrong claims, and the ratios to the
information bound log2 N / C_Z(p) + ln(1/delta) / -ln(1-p) and to the drift-aware bound
(the last term at p/6: the default guards against the commits next to the change
reproducing at a sixth of the far end's rate, and excluding a bug at p/6 at the clean
neighbour costs ln(1/delta) / -ln(1-p/6) trials whatever the method); the default's ratio
to it carries the standard error of its mean ("1.53 ± 0.04").  "--steady-rate" is
the same hunt told that the rate does not drift (its bound is the constant-rate one);
"--min-rate p" is the same hunt told the rate.

With --repos it also runs the real tool and the naive driver (bench_flaky.py) on
generated 100-commit repos at planted rates 0.1, 0.25 and 0.5, one seed each, and
prints the trials each used and whether each was right.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from simulate import Case, Simulated, mean_se, simulate  # noqa: E402

RATES = (0.05, 0.1, 0.25, 0.5, 0.86)
SIZES = (100, 2713)
DELTA = 0.01


def c_z(p: float) -> float:
    """Capacity of the Z-channel with crossover 1-p, in bits per trial."""
    return math.log2(1 + p * (1 - p) ** ((1 - p) / p))


def bound(n: int, p: float, delta: float = DELTA) -> float:
    """Trials any method needs, roughly: log2 N / C_Z(p) + ln(1/delta) / -ln(1-p)."""
    return math.log2(n) / c_z(p) + math.log(1 / delta) / -math.log1p(-p)


def drift_bound(n: int, p: float, delta: float = DELTA) -> float:
    return math.log2(n) / c_z(p) + math.log(1 / delta) / -math.log1p(-p / 6)


def _summary(outs: list[Simulated]) -> dict[str, float]:
    claimed = [o for o in outs if o.claimed]
    trials = [o.trials for o in outs]
    return {
        "trials": sum(trials) / len(outs),
        "trials_se": mean_se(trials),
        "commits": sum(o.commits for o in outs) / len(outs),
        "claimed": len(claimed) / len(outs),
        "wrong": sum(o.wrong for o in claimed) / max(1, len(claimed)),
    }


def simulated(runs: int, seed: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for n in SIZES:
        for p in RATES:
            rng = random.Random(seed * 1000 + int(p * 100) + n)
            count = runs if n < 1000 else max(1, runs // 2)
            cases = [Case(n, rng.randint(1, n), p) for _ in range(count)]
            seeds = [rng.randrange(1 << 30) for _ in cases]
            row: dict[str, object] = {
                "N": n,
                "p": p,
                "bound": bound(n, p),
                "drift_bound": drift_bound(n, p),
                "default": _summary([simulate(c, s) for c, s in zip(cases, seeds, strict=True)]),
                "steady": _summary(
                    [simulate(c, s, steady=True) for c, s in zip(cases, seeds, strict=True)]
                ),
                "min-rate": _summary(
                    [simulate(c, s, min_rate=p) for c, s in zip(cases, seeds, strict=True)]
                ),
            }
            rows.append(row)
            print_row(row)
    return rows


HEADER = (
    "| N | p | bound | drift-aware bound | default: trials (commits, wrong) | / bound"
    " | / drift-aware (± s.e.) | --steady-rate: trials (commits, wrong) | / bound"
    " | --min-rate p: trials (commits, wrong) |"
)
RULE = "|---:|---:|---:|---:|---|---:|---:|---|---:|---|"


def _cell(s: dict[str, float]) -> str:
    return f"{s['trials']:.0f} ({s['commits']:.1f}, {s['wrong']:.1%})"


def print_row(row: dict[str, object]) -> None:
    d, st, m = row["default"], row["steady"], row["min-rate"]
    assert isinstance(d, dict) and isinstance(st, dict) and isinstance(m, dict)
    b, db = float(row["bound"]), float(row["drift_bound"])  # type: ignore[arg-type]
    print(
        f"| {row['N']} | {row['p']} | {b:.0f} | {db:.0f} | {_cell(d)} | {d['trials'] / b:.2f}"
        f" | {d['trials'] / db:.2f} ± {d['trials_se'] / db:.2f} | {_cell(st)}"
        f" | {st['trials'] / b:.2f} | {_cell(m)} |",
        flush=True,
    )


def repos() -> list[dict[str, object]]:
    from bench_flaky import naive, ours

    from bisect_driver.app.flaky_project import FlakySpec, generate

    rows: list[dict[str, object]] = []
    print("\n| planted rate | tool: trials, right? | naive-30: trials, right? |")
    print("|---:|---|---|")
    for rate in (0.1, 0.25, 0.5):
        work = Path(tempfile.mkdtemp(prefix="bench-stats-"))
        try:
            repo = generate(work / "repo", FlakySpec(commits=100, change_at=63, rate=rate))
            mine = ours(repo, work, 0.99)
            nv = naive(repo, work, 30)
            row = {"rate": rate, "tool": mine, "naive": nv, "answer": repo.answer}
            rows.append(row)
            print(
                f"| {rate} | {mine['trials']}, {mine['found'] == repo.answer}"
                f" (exit {mine['status']}) | {nv['trials']}, {nv['found'] == repo.answer} |",
                flush=True,
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100, help="simulated runs per cell (N=100)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repos", action="store_true", help="also run generated 100-commit repos")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    print(f"delta = {DELTA}; mean trials per hunt; wrong = share of claimed answers\n")
    print(HEADER)
    print(RULE)
    data: dict[str, object] = {"simulated": simulated(args.runs, args.seed)}
    if args.repos:
        data["repos"] = repos()
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
