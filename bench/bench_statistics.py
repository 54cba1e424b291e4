"""Trials per bisect, side by side: this design, the previous one, naive fixed-30, the bound.

    .venv/bin/python bench/bench_statistics.py [--runs 100] [--seed 1] [--repos] [--json F]

Simulated part (always): for N in {100, 2713} commits and a constant rate p in
{0.05, 0.1, 0.25, 0.5, 0.86}, delta = 0.01, it runs bench/sim_bisect.py's
designs on the same drawn cases and prints the mean trials per bisect, the
share of wrong answers (among answers that were claimed), and the ratio to
the information bound log2 N / C_Z(p) + ln(1/delta) / -ln(1-p).  Because the
default design protects against drift (the commits next to the change may
reproduce at a sixth of the far end's rate), its clean neighbour must exclude
a bug at p/6, which no method can do in fewer than ln(1/delta) / -ln(1-p/6)
trials: the "drift-aware bound" column replaces the bound's last term by that.
"v2 --min-rate p" is the same design told that there is no drift.

With --repos it also runs the real tool and the naive driver (bench_flaky.py)
on generated 100-commit repos at planted rates 0.1, 0.25 and 0.5, one seed
each, and prints the trials each used and whether each was right.
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

from sim_bisect import Case, bound, c_z, run_naive, run_v1, run_v2  # noqa: E402

RATES = (0.05, 0.1, 0.25, 0.5, 0.86)
SIZES = (100, 2713)
DELTA = 0.01


def drift_bound(n: int, p: float, delta: float = DELTA) -> float:
    return math.log2(n) / c_z(p) + math.log(1 / delta) / -math.log1p(-p / 6)


def simulated(runs: int, seed: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for n in SIZES:
        for p in RATES:
            rng = random.Random(seed * 1000 + int(p * 100) + n)
            cases = [Case(n, rng.randint(1, n), p) for _ in range(runs if n < 1000 else runs // 2)]
            designs = {
                "v2": lambda c, r: run_v2(c, r),
                "v2 --min-rate p": lambda c, r, p=p: run_v2(c, r, min_rate=p),
                "v1 (previous)": lambda c, r: run_v1(c, r),
                "naive-30": lambda c, r: run_naive(c, r),
            }
            row: dict[str, object] = {
                "N": n,
                "p": p,
                "bound": bound(n, p),
                "drift_bound": drift_bound(n, p),
            }
            for name, design in designs.items():
                r = random.Random(rng.random())
                outs = [design(c, r) for c in cases]
                claimed = [(o, c) for o, c in zip(outs, cases, strict=True) if o.answer is not None]
                wrong = sum(o.wrong(c) for o, c in claimed)
                row[name] = {
                    "trials": sum(o.trials for o in outs) / len(outs),
                    "wrong": wrong / max(1, len(claimed)),
                    "claimed": len(claimed) / len(outs),
                    "builds": sum(len(o.commits) for o in outs) / len(outs),
                }
            rows.append(row)
            print_row(row)
    return rows


HEADER = (
    "| N | p | bound | drift-aware bound | v2 | v2 / bound | v2 / drift-aware"
    " | v2 --min-rate p | v1 (previous) | naive-30 (wrong) |"
)


def print_row(row: dict[str, object]) -> None:
    def t(name: str) -> dict[str, float]:
        value = row[name]
        assert isinstance(value, dict)
        return value

    b, db = float(row["bound"]), float(row["drift_bound"])  # type: ignore[arg-type]
    v2 = t("v2")
    print(
        f"| {row['N']} | {row['p']} | {b:.0f} | {db:.0f} | {v2['trials']:.0f}"
        f" (wrong {v2['wrong']:.1%}) | {v2['trials'] / b:.2f} | {v2['trials'] / db:.2f}"
        f" | {t('v2 --min-rate p')['trials']:.0f} (wrong {t('v2 --min-rate p')['wrong']:.1%})"
        f" | {t('v1 (previous)')['trials']:.0f} (wrong {t('v1 (previous)')['wrong']:.1%})"
        f" | {t('naive-30')['trials']:.0f} ({t('naive-30')['wrong']:.1%}) |",
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
    print(f"delta = {DELTA}; mean trials per bisect; wrong = share of claimed answers\n")
    print(HEADER)
    print("|---:|---:|---:|---:|---|---:|---:|---|---|---|")
    data: dict[str, object] = {"simulated": simulated(args.runs, args.seed)}
    if args.repos:
        data["repos"] = repos()
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
