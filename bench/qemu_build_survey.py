"""Measure the qemu recipe over v1.0..v1.1.0: what builds, and how long it takes.

Produces the table in docs/qemu-builds.md.  For every surveyed commit C, in
first-parent order (so the persistent build directory moves forward the way a
bisect's later steps do):

* ``cold``   (only for --cold commits): empty build dir, empty cache dir (so
  empty ccache and no converted-script cache);
* ``jump``   build the neighbour N = C~3 (C^ for side-branch commits) in the
  persistent build dir, which holds the previous surveyed commit;
* ``incr``   build C in that dir right after N: the incremental time;
* ``fresh``  build C in an empty build dir with the shared, warm ccache: what a
  retry-from-clean costs.

Every build holds ``flock /tmp/bisect-heavy.lock`` (the machine is shared) and
the timer starts only once the lock is held.  After every build the checkout
is checked for changes (the recipe must leave it clean) and reset, as the
driver does.  Results are appended to WORK/survey.jsonl (a rerun skips what is
already measured) and rendered as Markdown with --render.

Usage:
    flock-free: the script takes the lock itself, per build
    .venv/bin/python bench/qemu_build_survey.py --repo /work/qemu/src \
        --work /work/qemu/survey [--cold v1.0 ...] [--render docs/qemu-builds.md]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qemu_checkout_build import build_commit, git  # noqa: E402

from build_recipes.qemu import QemuRecipe  # noqa: E402

LOCK = "/tmp/bisect-heavy.lock"
SIDE_BRANCH = ["262db3887", "9a542a482", "f1219091e"]
KNOWN_BROKEN = ["650ab98d1"]
DEFAULT_COLD = ["v1.0", "v1.1.0"]


def pick_commits(repo: Path, count: int) -> list[str]:
    """v1.0, v1.1.0, ``count`` first-parent commits evenly spread, side branches, broken."""
    fp = git(repo, "rev-list", "--first-parent", "--reverse", "v1.0..v1.1.0").split()
    step = len(fp) / (count + 1)
    spread = [fp[int(step * (i + 1))] for i in range(count)]
    resolved = [git(repo, "rev-parse", c) for c in SIDE_BRANCH + KNOWN_BROKEN]
    return ["v1.0", *spread, *resolved, "v1.1.0"]


def neighbour(repo: Path, commit: str) -> str:
    """C~3 on the first-parent line, C^ for a side-branch commit."""
    tip_fp = set(git(repo, "rev-list", "--first-parent", "v1.0^..v1.1.0").split())
    full = git(repo, "rev-parse", commit)
    if full in tip_fp:
        return git(repo, "rev-parse", f"{full}~3")
    return git(repo, "rev-parse", f"{full}^")


def build(
    recipe: QemuRecipe, checkout: Path, commit: str, build_dir: Path, cache: Path, logs: Path
) -> dict:
    full = git(checkout, "rev-parse", f"{commit}^{{commit}}")
    out = logs / f"out-{full[:12]}"
    log_path = logs / f"{full[:12]}-{int(time.time())}.log"
    with open(LOCK, "w") as lock:
        built = build_commit(
            recipe, checkout, full, build_dir, cache, out, log_path, timeout=1800,
            hold=_flock(lock),
        )  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)
    return {
        "commit": full,
        "status": str(built.result.status),
        "detail": built.result.detail,
        "fixups": built.result.fixups,
        "seconds": round(built.seconds, 1),
        "checkout_dirty": built.dirty,
        "log": str(log_path),
    }


@contextlib.contextmanager
def _flock(fh: IO[str]) -> Iterator[None]:
    """Hold the machine's heavy-work lock (released when ``fh`` closes)."""
    fcntl.flock(fh, fcntl.LOCK_EX)
    yield


def survey(args: argparse.Namespace) -> None:
    repo, work = args.repo.resolve(), args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    checkout = work / "checkout"
    if not checkout.exists():
        subprocess.run(
            ["git", "clone", "-q", "--shared", "--no-checkout", str(repo), str(checkout)],
            check=True,
        )
    results_path = work / "survey.jsonl"
    done = set()
    if results_path.exists():
        for line in results_path.read_text().splitlines():
            rec = json.loads(line)
            done.add((rec["ref"], rec["kind"]))
    recipe = QemuRecipe(make_jobs=2)
    commits = args.commits or pick_commits(repo, args.count)
    cold = set(args.cold if args.cold is not None else DEFAULT_COLD)
    logs = work / "logs"
    shared_cache = work / "cache"
    persistent = work / "build-persistent"

    def record(ref: str, kind: str, rec: dict) -> None:
        rec.update(ref=ref, kind=kind)
        with open(results_path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(f"{ref:>12} {kind:6} {rec['status']:8} {rec['seconds']:7.1f}s {rec['detail']}")
        sys.stdout.flush()

    for ref in commits:
        is_cold = any(ref == c or (len(c) >= 7 and ref.startswith(c)) for c in cold)
        if is_cold and (ref, "cold") not in done:
            cold_root = work / "cold"
            shutil.rmtree(cold_root, ignore_errors=True)
            (cold_root / "build").mkdir(parents=True)
            rec = build(recipe, checkout, ref, cold_root / "build", cold_root / "cache", logs)
            record(ref, "cold", rec)
            shutil.rmtree(cold_root, ignore_errors=True)
        if (ref, "incr") not in done:
            near = neighbour(repo, ref)
            persistent.mkdir(parents=True, exist_ok=True)
            rec = build(recipe, checkout, near, persistent, shared_cache, logs)
            record(ref, "jump", rec)
            rec = build(recipe, checkout, ref, persistent, shared_cache, logs)
            record(ref, "incr", rec)
        if (ref, "fresh") not in done:
            fresh = work / "build-fresh"
            shutil.rmtree(fresh, ignore_errors=True)
            fresh.mkdir()
            rec = build(recipe, checkout, ref, fresh, shared_cache, logs)
            record(ref, "fresh", rec)
            shutil.rmtree(fresh, ignore_errors=True)


def render(args: argparse.Namespace) -> str:
    """Markdown table from WORK/survey.jsonl."""
    repo, work = args.repo.resolve(), args.work.resolve()
    recs = [json.loads(x) for x in (work / "survey.jsonl").read_text().splitlines()]
    order: list[str] = []
    by: dict[tuple[str, str], dict] = {}
    for rec in recs:
        if rec["ref"] not in order:
            order.append(rec["ref"])
        by[(rec["ref"], rec["kind"])] = rec
    fp = set(git(repo, "rev-list", "--first-parent", "v1.0^..v1.1.0").split())
    rows = [
        "| commit | date | branch | VERSION | result (C) | cold | jump to C~3 / C^ | incremental"
        " (C after C~3 / C^) | empty dir, warm ccache | driver cache hit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(rec: dict | None) -> str:
        if rec is None:
            return "-"
        ok = rec["status"] == "ok"
        txt = f"{rec['seconds']:.0f} s" if ok else f"{rec['status']} ({rec['seconds']:.0f} s)"
        if ok and "incremental build had failed" in rec["detail"]:
            txt += " (after retry from clean)"
        if rec["checkout_dirty"]:
            txt += " DIRTY CHECKOUT"
        return txt

    for ref in list(order):
        main = by.get((ref, "incr")) or by.get((ref, "fresh")) or by.get((ref, "cold"))
        if main is None:  # only its neighbour was built: C itself is not measured
            order.remove(ref)
            continue
        full = main["commit"]
        date = git(repo, "log", "-1", "--format=%ad", "--date=short", full)
        version = git(repo, "show", f"{full}:VERSION")
        branch = "first-parent" if full in fp else "side branch"
        statuses = {by[(ref, k)]["status"] for k in ("cold", "incr", "fresh") if (ref, k) in by}
        if statuses == {"ok"}:
            result = "built"
        else:
            bad = next(
                by[(ref, k)]
                for k in ("cold", "incr", "fresh")
                if (ref, k) in by and by[(ref, k)]["status"] != "ok"
            )
            result = f"**{bad['status']}**: `{bad['detail']}`"
        label = ref if ref.startswith("v") else full[:9]
        rows.append(
            f"| {label} | {date} | {branch} | {version} | {result} | {cell(by.get((ref, 'cold')))}"
            f" | {cell(by.get((ref, 'jump')))} | {cell(by.get((ref, 'incr')))}"
            f" | {cell(by.get((ref, 'fresh')))} | (driver) |"
        )
    planned = args.commits or pick_commits(repo, args.count)
    missing = [c for c in planned if c not in order]
    if missing:
        short = [c if c.startswith("v") else c[:9] for c in missing]
        rows.append("")
        rows.append(f"Not measured yet ({len(missing)}): {' '.join(short)}")
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="QEMU clone with v1.0, v1.1.0")
    parser.add_argument("--work", type=Path, required=True, help="scratch dir (checkout, builds)")
    parser.add_argument("--count", type=int, default=19, help="first-parent commits to spread")
    parser.add_argument("--commits", nargs="*", help="survey these refs instead")
    parser.add_argument("--cold", nargs="*", help=f"refs measured cold (default {DEFAULT_COLD})")
    parser.add_argument("--render", action="store_true", help="print the Markdown table")
    args = parser.parse_args()
    if args.render:
        print(render(args), end="")
    else:
        survey(args)


if __name__ == "__main__":
    main()
