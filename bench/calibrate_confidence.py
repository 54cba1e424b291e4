"""Is the claimed confidence calibrated?  Simulated runs of the driver's decisions.

    .venv/bin/python bench/calibrate_confidence.py [--runs 1200] [--seed 1] [--json FILE]

Each run draws a case: a range of N in [20, 400] commits, the change somewhere
inside, a far-end rate in [0.05, 0.9] (log-uniform), and one of: no drift; the
commits next to the change reproducing at a sixth of the far end's rate over
a span of 1-40 commits (the worst the default floor covers); the same at a
tenth (below the floor: the run must say "inconclusive", not name a wrong
commit at >= 0.99); untestable commits (skips) right next to the answer.
It runs bench/sim_bisect.run_v2 (the driver's own decision functions) and
prints, for each threshold c, the runs that claimed confidence >= c and the
share of them that named a wrong commit, which must stay <= 1 - c.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sim_bisect import Case, run_v2  # noqa: E402

THRESHOLDS = (0.9, 0.95, 0.99, 0.995)
KINDS = ("no drift", "drift 1/6", "drift 1/10 (below the floor)", "skips next to the answer")


def draw(rng: random.Random, kind: str) -> Case:
    n = rng.randint(20, 400)
    change = rng.randint(1, n)
    rate = math.exp(rng.uniform(math.log(0.05), math.log(0.9)))
    if kind == "drift 1/6":
        return Case(n, change, rate, near_rate=rate / 6, near_span=rng.randint(1, 40))
    if kind.startswith("drift 1/10"):
        return Case(n, change, rate, near_rate=rate / 10, near_span=rng.randint(1, 40))
    if kind == "skips next to the answer":
        around = {change - 2, change - 1, change + 1, change + 2}
        skips = frozenset(i for i in around if 0 < i < n and rng.random() < 0.5)
        return Case(n, change, rate, skips=skips)
    return Case(n, change, rate)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1200, help="simulated runs (default 1200)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows = []
    for i in range(args.runs):
        kind = KINDS[i % len(KINDS)]
        case = draw(rng, kind)
        out = run_v2(case, rng)
        rows.append(
            {
                "kind": kind,
                "n": case.n,
                "rate": case.far_rate,
                "trials": out.trials,
                "confidence": out.confidence,
                "claimed": out.confidence is not None,
                "wrong": out.wrong(case) if out.confidence is not None else False,
                "why": out.why,
            }
        )
    print(f"{args.runs} simulated runs (seed {args.seed}), confidence target 0.99\n")
    print("| claims confidence >= c | runs | wrong | share wrong | allowed (1 - c) |")
    print("|---|---:|---:|---:|---:|")
    table = []
    for c in THRESHOLDS:
        claimed = [r for r in rows if r["claimed"] and r["confidence"] >= c]
        wrong = sum(r["wrong"] for r in claimed)
        share = wrong / len(claimed) if claimed else 0.0
        table.append({"c": c, "runs": len(claimed), "wrong": wrong, "share": share})
        print(f"| {c} | {len(claimed)} | {wrong} | {share:.4f} | {1 - c:.3f} |")
    print("\n| case | runs | claimed | wrong among claimed | mean trials | why not claimed |")
    print("|---|---:|---:|---:|---:|---|")
    for kind in KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        claimed = [r for r in mine if r["claimed"]]
        whys: dict[str, int] = {}
        for r in mine:
            if not r["claimed"]:
                whys[r["why"] or "?"] = whys.get(r["why"] or "?", 0) + 1
        mean = sum(r["trials"] for r in mine) / max(1, len(mine))
        why = ", ".join(f"{k} {v}" for k, v in sorted(whys.items())) or "-"
        print(
            f"| {kind} | {len(mine)} | {len(claimed)} | {sum(r['wrong'] for r in claimed)}"
            f" | {mean:.0f} | {why} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"table": table, "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
