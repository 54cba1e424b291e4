"""Is the claimed confidence calibrated?  Simulated hunts through the shipped hunt stage.

    .venv/bin/python bench/calibrate_confidence.py [--runs 1200] [--seed 1] [--jobs 2]
        [--steady-rate] [--kind KIND] [--json FILE]

Each run draws a case (bench/simulate.py: a line of N in [20, 400] commits, the change
somewhere inside, a far-end rate in [0.05, 0.9] log-uniform, a fix or a regression hunt)
of one of the KINDS below, and runs bisect_driver.hunt.stage.hunt on it: the driver's
own ends check, steps, confirmation, corrections and answer, with only builds, trial
outcomes and history simulated.  It prints, for each threshold c, the runs that claimed
confidence >= c and the share of those whose claim was wrong (a single commit that is
not the change, or a candidate set without it), which must stay <= 1 - c, and per kind
the claims, wrong claims, the same without the revert check (the driver runs it on a single
answer, as the simulation does; a real revert may not apply), mean trials and why the
others made no claim.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from simulate import Case, Simulated, simulate  # noqa: E402

THRESHOLDS = (0.9, 0.95, 0.99, 0.995)
KINDS = (
    "no drift",
    "drift 1/6",
    "drift 1/10 (below the floor)",
    "long drift 1/6",
    "skips next to the answer",
    "unrelated crash next to the change",
    "rare flake at the clean end",
    "two faces of the bug",
)


def draw(rng: random.Random, kind: str, small: bool = False) -> Case:
    """A case of ``kind``; ``small`` keeps N and the rates where a test runs quickly."""
    n = rng.randint(20, 120) if small else rng.randint(20, 400)
    change = rng.randint(1, n)
    lo_rate = 0.15 if small else 0.05
    rate = math.exp(rng.uniform(math.log(lo_rate), math.log(0.9)))
    direction = "fix" if rng.random() < 0.5 else "regression"
    base = Case(n, change, rate, direction=direction)
    if kind == "drift 1/6":
        return _with(base, near_rate=rate / 6, near_span=rng.randint(1, 40))
    if kind.startswith("drift 1/10"):
        return _with(base, near_rate=rate / 10, near_span=rng.randint(1, 40))
    if kind == "long drift 1/6":
        # A quarter to three quarters of the bug side at a sixth: every step in the stretch
        # is tempted to call it clean (the shape that exhausted a CI run's corrections).
        side = change if direction == "fix" else n - change
        span = rng.randint(max(1, side // 4), max(1, 3 * side // 4))
        return _with(base, near_rate=rate / 6, near_span=span)
    if kind == "skips next to the answer":
        around = {change - 2, change - 1, change + 1, change + 2}
        skips = frozenset(i for i in around if 0 < i < n and rng.random() < 0.5)
        return _with(base, skips=skips)
    if kind.startswith("unrelated crash"):
        # Another bug crashes in a stretch on the clean side that starts or ends at the
        # change: after a fix, before a regression (the shapes that fooled the tool).
        span = rng.randint(1, max(1, n // 3))
        if direction == "fix":
            other = (change, min(n, change + span))
        else:
            other = (max(1, change - span), change)
        return _with(base, other=other, other_rate=rng.uniform(0.05, 0.6))
    if kind.startswith("rare flake"):
        return _with(base, background=rate / rng.uniform(6, 12))
    if kind.startswith("two faces"):
        return _with(base, faces=rng.uniform(0.2, 0.6), face_span=rng.randint(1, 20))
    return base


def _with(case: Case, **changes: object) -> Case:
    from dataclasses import replace

    return replace(case, **changes)  # type: ignore[arg-type]


def _one(job: tuple[str, Case, int, bool]) -> tuple[str, Simulated]:
    kind, case, seed, steady = job
    return kind, simulate(case, seed=seed, steady=steady)


def run(
    runs: int,
    seed: int,
    small: bool = False,
    progress: bool = False,
    jobs: int = 1,
    steady: bool = False,
    kinds: tuple[str, ...] = KINDS,
) -> list[tuple[str, Simulated]]:
    """``runs`` simulated hunts, the kinds in turn; ``jobs`` at a time (processes: the
    hunts are independent, and the cases and seeds are drawn first, so the result does
    not depend on ``jobs``)."""
    rng = random.Random(seed)
    todo = []
    for i in range(runs):
        kind = kinds[i % len(kinds)]
        case = draw(rng, kind, small)
        todo.append((kind, case, rng.randrange(1 << 30), steady))
    out: list[tuple[str, Simulated]] = []
    if jobs <= 1:
        results = map(_one, todo)
    else:
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=jobs)
        results = pool.map(_one, todo, chunksize=4)
    for row in results:
        out.append(row)
        if progress and len(out) % 50 == 0:
            print(f"{len(out)}/{runs} hunts simulated", file=sys.stderr, flush=True)
    if jobs > 1:
        pool.shutdown()
    return out


def table(rows: list[tuple[str, Simulated]]) -> dict[str, object]:
    by_c = []
    for c in THRESHOLDS:
        claimed = [r for _k, r in rows if r.claimed and (r.confidence or 0) >= c]
        wrong = sum(r.wrong for r in claimed)
        by_c.append({"c": c, "runs": len(claimed), "wrong": wrong})
    kinds = []
    for kind in KINDS:
        mine = [r for k, r in rows if k == kind]
        if not mine:
            continue
        claimed = [r for r in mine if r.claimed]
        whys: dict[str, int] = {}
        for r in mine:
            if not r.claimed:
                why = f"exit {r.exit_status}"
                whys[why] = whys.get(why, 0) + 1
        alone = [r for r in mine if r.alone is not None]
        kinds.append(
            {
                "kind": kind,
                "runs": len(mine),
                "claimed": len(claimed),
                "wrong": sum(r.wrong for r in claimed),
                "claimed alone": len(alone),
                "wrong alone": sum(r.wrong_alone for r in alone),
                "revert failed": sum(r.revert == "FAIL" for r in mine),
                "trials": sum(r.trials for r in mine) / max(1, len(mine)),
                "not claimed": whys,
            }
        )
    return {"thresholds": by_c, "kinds": kinds}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1200, help="simulated hunts (default 1200)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--jobs", type=int, default=1, help="hunts simulated at once (processes)")
    ap.add_argument(
        "--steady-rate",
        action="store_true",
        help="the hunts run with --steady-rate (the drift kinds then break its assumption)",
    )
    ap.add_argument(
        "--kind",
        action="append",
        choices=KINDS,
        help="only this kind (repeatable; default: all seven in turn)",
    )
    args = ap.parse_args()
    kinds = tuple(args.kind or KINDS)
    rows = run(
        args.runs, args.seed, progress=True, jobs=args.jobs, steady=args.steady_rate, kinds=kinds
    )
    t = table(rows)
    mode = " with --steady-rate" if args.steady_rate else ""
    print(
        f"{args.runs} simulated hunts{mode} (seed {args.seed}) through hunt.stage.hunt,"
        " target 0.99\n"
    )
    print("| claims confidence >= c | runs | wrong | share wrong | allowed (1 - c) |")
    print("|---|---:|---:|---:|---:|")
    for row in t["thresholds"]:  # type: ignore[attr-defined]
        share = row["wrong"] / row["runs"] if row["runs"] else 0.0
        print(f"| {row['c']} | {row['runs']} | {row['wrong']} | {share:.4f} | {1 - row['c']:.3f} |")
    print(
        "\n| kind | runs | claimed | wrong among claimed | without the revert check:"
        " claimed / wrong | revert check failed | mean trials | not claimed |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for k in t["kinds"]:  # type: ignore[attr-defined]
        why = ", ".join(f"{w} {v}" for w, v in sorted(k["not claimed"].items())) or "-"
        print(
            f"| {k['kind']} | {k['runs']} | {k['claimed']} | {k['wrong']}"
            f" | {k['claimed alone']} / {k['wrong alone']} | {k['revert failed']}"
            f" | {k['trials']:.0f} | {why} |"
        )
    if args.json:
        data = {
            "table": t,
            "runs": [
                {
                    "kind": k,
                    "n": r.case.n,
                    "direction": r.case.direction,
                    "rate": r.case.far_rate,
                    "candidates": r.candidates,
                    "answer": r.case.answer,
                    "confidence": r.confidence,
                    "without revert check": r.alone,
                    "revert check": r.revert,
                    "exit": r.exit_status,
                    "trials": r.trials,
                }
                for k, r in rows
            ],
        }
        Path(args.json).write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
