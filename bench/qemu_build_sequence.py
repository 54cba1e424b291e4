"""Replay the builds of a real run, in order, in one build dir with an empty ccache.

Why: a whole cold run's wall time mixes builds with trials, and a flaky bisect can take
another path on the next run, so two runs do not compare two recipes.  This replays a
fixed build sequence (by default the 13 builds of the cold run in docs/results/README.md,
the ends first) exactly as the driver does them: one persistent build dir, one
checkout, ``git reset --hard`` after each build, ccache under the cache dir.  The recipe
is whatever ``build_recipes`` is importable, so two versions compare with PYTHONPATH:

    PYTHONPATH=/snapshot/of/old python bench/qemu_build_sequence.py --qemu /work/qemu \
        --work /tmp/seq-old
    PYTHONPATH=/snapshot/of/new python bench/qemu_build_sequence.py --qemu /work/qemu \
        --work /tmp/seq-new

``--work`` is emptied first (a cold start: no build dir, no ccache, no converted
scripts).  Each build prints one line (seconds, the recipe's detail); the last line is
the total.  Run paired and alternated (old, new, old, new) on a machine that does
nothing else: the machine's speed drifts by 20 % in an hour here.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from qemu_checkout_build import build_commit, git, tool_clone

from bisect_driver.plugin import BuildStatus
from build_recipes.qemu import QemuRecipe

COLD_RUN = [
    "v1.0",
    "v1.1.0",
    "7c51c1aa03a5",
    "8e01f355db4c",
    "2ff0f668512b",
    "53878a132aaa",
    "d7dd65bae3fc",
    "1042ec94b19e",
    "29926112a2fd",
    "8dc0a5e7a06c",
    "8ff9ae00da14",
    "aafcdcc9ebd7",
    "7094f12f868f",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--qemu", type=Path, required=True, help="a QEMU clone with v1.0, v1.1.0")
    parser.add_argument("--work", type=Path, required=True, help="emptied first")
    parser.add_argument("commits", nargs="*", default=COLD_RUN, help="the sequence")
    args = parser.parse_args()
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    src, build_dir, cache = work / "src", work / "build", work / "cache"
    build_dir.mkdir(parents=True)
    tool_clone(args.qemu, src)
    recipe = QemuRecipe(make_jobs=2)
    total = 0.0
    failed = 0
    for n, ref in enumerate(args.commits):
        commit = git(src, "rev-parse", f"{ref}^{{commit}}")
        log_path = work / "logs" / f"{n:02d}-{commit[:12]}.log"
        built = build_commit(recipe, src, commit, build_dir, cache, work / "out", log_path)
        total += built.seconds
        failed += built.result.status is not BuildStatus.OK
        detail = f"{built.result.status}: {built.result.detail[:90]}"
        print(f"{ref:>14} {built.seconds:6.1f} s  {detail}", flush=True)
    print(f"total {total:.1f} s for {len(args.commits)} builds, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
