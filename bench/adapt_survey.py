"""How often the adaptation makes a candidate, over many real commits (no build, no probe).

    python bench/adapt_survey.py --repo /path/to/qemu-clone --onto v1.0 \
        --range v1.0..v1.1.0 [-n 40] [-- block.c block/qcow2.c ...]

For each of the latest ``-n`` non-merge commits of ``--range`` (touching the paths given
after ``--``, if any), runs the product's ``adapt()`` onto ``--onto`` in a throwaway clone
and prints one line per commit (candidates made, or why none), then the counts.  What is
tried, not what is right: candidates are not built or probed here (the run does that).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
from pathlib import Path

from bisect_driver.backport.adapt import adapt
from bisect_driver.backport.explain import missing_symbols
from bisect_driver.store.repo import Checkout


def survey(repo: Path, onto: str, commits: list[str]) -> collections.Counter[str]:
    """Run adapt() for each commit in a shared clone of ``repo``; print and count."""
    counts: collections.Counter[str] = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(
            ["git", "clone", "-q", "--shared", "--no-checkout", str(repo), str(clone)], check=True
        )
        onto_sha = subprocess.run(
            ["git", "rev-parse", f"{onto}^{{commit}}"],
            cwd=clone,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for sha in commits:
            checkout = Checkout(clone)
            symbols = missing_symbols(checkout.repo, onto_sha, sha)
            a = adapt(checkout, onto, onto_sha, sha, symbols)
            kind = (
                "candidates"
                if a.candidates
                else ("a name it lacks" if " uses " in a.detail else "no place")
            )
            counts[kind] += 1
            print(f"{sha[:12]} {a.status}: {a.detail}")
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, required=True)
    ap.add_argument("--onto", required=True)
    ap.add_argument("--range", required=True, help="OLD..NEW")
    ap.add_argument("-n", type=int, default=40)
    ap.add_argument("paths", nargs="*")
    args = ap.parse_args(argv)
    log = subprocess.run(
        [
            "git",
            "log",
            "--no-merges",
            "--format=%H",
            "-n",
            str(args.n),
            args.range,
            "--",
            *args.paths,
        ],
        cwd=args.repo,
        capture_output=True,
        text=True,
    )
    if log.returncode:
        print(f"git log {args.range}: {log.stderr.strip()}", file=sys.stderr)
        return 2
    counts = survey(args.repo, args.onto, log.stdout.split())
    print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
