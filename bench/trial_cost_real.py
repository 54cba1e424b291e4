"""Trials and wall of the real QEMU hunt with every build warm (issue 18's before/after).

    python bench/trial_cost_real.py --qemu /path/to/qemu-clone --warm-cache /path/to/cache \
        --work /tmp/tc-work [--tool bisect-qemu] [--label after] [--out docs/results/F.md]

Run by hand on an otherwise idle machine, with a QEMU clone that has the v1.0 and v1.1.0
tags and a cache dir of an earlier run of the same hunt (e.g. bench/real_run.py's), whose
builds are what this bench reuses: for each setting it copies that cache dir, deletes every
trial, verdict, run and event from the copy's journal (the builds stay), and runs the hunt
with /usr/bin/time -v, so every trial runs again on warm builds. The two settings:

1. **default**: ``--good v1.0 --bad v1.1.0``, the probe at its defaults;
2. **low rate**: the same with ``--writer-threads 4 --chunk-kib 4 --stride 1
   --cluster-kib 64`` (v1.0 reproduces ~15 %, the fix's parent ~5 %: real drift).

Each row: wall, CPU seconds, trials the run recorded (all of them, the ends, steps, strict
test and revert check), distinct commits tested, exit status, the answer, and the trials by
part (:func:`parts`): the ends and the steps until their verdicts, the confirmation after
them at the same commits, and the checks at commits the bisect never visited (the revert
check, the backport's trees). Nothing here
builds QEMU: a cache without the builds makes the runs build, and the wall then says so.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_run import Figure, measure  # noqa: E402

from bisect_driver.verdict.core import Reason  # noqa: E402

SETTINGS: dict[str, list[str]] = {
    "default": [],
    "low rate": [
        "--writer-threads",
        "4",
        "--chunk-kib",
        "4",
        "--stride",
        "1",
        "--cluster-kib",
        "64",
    ],
}


def warm_copy(warm: Path, dest: Path) -> None:
    """``warm`` copied to ``dest`` with its builds kept and everything tested forgotten."""
    shutil.copytree(
        warm, dest, symlinks=True, ignore=shutil.ignore_patterns("report", "live", "lock")
    )
    db = sqlite3.connect(dest / "journal.sqlite3")
    with db:
        for table in ("trials", "verdicts", "runs", "events"):
            db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
    db.execute("VACUUM")
    db.close()


def counts(cache: Path) -> tuple[int, int]:
    """(trials, distinct commits) the run recorded."""
    db = sqlite3.connect(cache / "journal.sqlite3")
    try:
        row = db.execute("SELECT COUNT(*), COUNT(DISTINCT commit_sha) FROM trials").fetchone()
    finally:
        db.close()
    return int(row[0]), int(row[1])


PARTS = ("ends", "steps", "confirmation", "checks")
"""Where a run's trials went, read from its journal (:func:`parts`)."""


def parts(cache: Path) -> dict[str, int]:
    """The run's trials by part: at the ends and the bisect's steps until their verdict
    ("ends", "steps"), at those commits after it ("confirmation": the answer's strict test,
    the bug-side neighbour, corrections), and at commits the bisect never visited
    ("checks": the revert check and the backport's trees).

    Split by time, not by count: a trial is the hunt's when it started before the commit's
    verdict in the hunt's own run (a run the ``runs`` table holds; the confirmation's
    verdicts go under a run id of their own, bisect.confirm.confirm_run_id), because a
    verdict's ``trials`` counts only the trials it counted, not every trial its batch ran."""
    db = sqlite3.connect(cache / "journal.sqlite3")
    try:
        hunt = {
            sha: (decided, reason)
            for sha, decided, reason in db.execute(
                "SELECT commit_sha, decided, reason FROM verdicts"
                " WHERE run_id IN (SELECT run_id FROM runs)"
            )
        }
        out = dict.fromkeys(PARTS, 0)
        for sha, started in db.execute("SELECT commit_sha, started FROM trials"):
            if sha not in hunt:
                out["checks"] += 1
                continue
            decided, reason = hunt[sha]
            if decided is not None and started is not None and started > decided:
                out["confirmation"] += 1
            else:
                out["ends" if Reason.of(reason or "") is Reason.ENDPOINT else "steps"] += 1
    finally:
        db.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qemu", type=Path, required=True, help="the QEMU clone (cwd of the runs)")
    ap.add_argument("--warm-cache", type=Path, required=True, help="a cache dir with the builds")
    ap.add_argument("--work", type=Path, required=True, help="must not exist yet")
    ap.add_argument("--tool", default=shutil.which("bisect-qemu") or "bisect-qemu")
    ap.add_argument("--label", default="", help="a column naming this version (before/after)")
    ap.add_argument("--only", choices=sorted(SETTINGS), help="run one setting")
    ap.add_argument("--out", type=Path, help="also append the table (markdown) here")
    args = ap.parse_args(argv)
    if args.work.exists():
        print(f"{args.work} exists: each run needs a fresh copy", file=sys.stderr)
        return 2
    if not (args.warm_cache / "journal.sqlite3").is_file():
        print(f"{args.warm_cache}: no journal.sqlite3, not a cache dir", file=sys.stderr)
        return 2
    rows = [
        "| version | setting | wall | user s | sys s | trials | commits | exit | answer"
        " | ends | steps | confirmation | checks |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    failed = False
    for name, extra in SETTINGS.items():
        if args.only and name != args.only:
            continue
        cache = args.work / name.replace(" ", "-")
        warm_copy(args.warm_cache, cache)
        command = [args.tool, "--good", "v1.0", "--bad", "v1.1.0", "--cache-dir", str(cache)]
        command += ["--report-dir", str(cache / "report"), *extra]
        print(f"{name}: {' '.join(command)}", file=sys.stderr, flush=True)
        f: Figure = measure(name, command, args.qemu, args.work / "logs")
        trials, commits = counts(cache)
        by_part = parts(cache)
        minutes, seconds = divmod(f.wall_s, 60)
        rows.append(
            f"| {args.label or '-'} | {name} | {int(minutes)} min {seconds:04.1f} s"
            f" | {f.user_s:.0f} | {f.sys_s:.0f} | {trials} | {commits} | {f.exit_status}"
            f" | {f.answer[:12] or '-'} | " + " | ".join(str(by_part[k]) for k in PARTS) + " |"
        )
        print(rows[-1], file=sys.stderr, flush=True)
        failed |= f.exit_status != 0
    text = "\n".join(rows)
    print(text)
    if args.out:
        with args.out.open("a") as out:
            out.write(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
