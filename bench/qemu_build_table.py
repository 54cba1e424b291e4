"""Build a spread of v1.0..v1.1.0 commits with `bisect-qemu build` and tabulate the result.

    .venv/bin/python bench/qemu_build_table.py --repo QEMU_CLONE --cache DIR [--count 20]

For each commit (v1.0, COUNT first-parent commits evenly spread over the
range, two commits on side branches based before v1.0, one upstream-broken
commit, v1.1.0), in that order, it runs the product's own command twice:

* `bisect-qemu build REF` in one persistent cache: the first build is cold
  (empty ccache, empty build dir), every later one is incremental in the
  recipe's persistent build dir, which holds the previous commit of the list
  (about 2713 / COUNT commits earlier: a far bisect step);
* `bisect-qemu build REF` again: the artifact-cache hit a bisect step gets.

It prints a Markdown table (result, failure class and first error line, the
fix-ups applied, build seconds, cached-request seconds).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDE_BRANCH = ["9a542a482", "f1219091e"]
KNOWN_BROKEN = ["650ab98d1"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def build(repo: Path, cache: Path, ref: str) -> tuple[float, int, str]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            str(ROOT / ".venv/bin/bisect-qemu"),
            "build",
            ref,
            "--repo",
            str(repo),
            "--cache-dir",
            str(cache),
        ],
        capture_output=True,
        text=True,
    )
    return time.monotonic() - t0, proc.returncode, proc.stdout + proc.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--count", type=int, default=20)
    a = ap.parse_args()
    fp = git(a.repo, "rev-list", "--first-parent", "--reverse", "v1.0..v1.1.0").split()
    step = len(fp) / (a.count + 1)
    spread = [fp[int(step * (i + 1))] for i in range(a.count)]
    refs = ["v1.0", *spread, *SIDE_BRANCH, *KNOWN_BROKEN, "v1.1.0"]
    shas = [git(a.repo, "rev-parse", f"{r}^{{commit}}") for r in refs]
    order = {
        s: i
        for i, s in enumerate(
            git(a.repo, "rev-list", "--topo-order", "--reverse", "v1.0..v1.1.0").split(), start=1
        )
    }
    rows = []
    for ref, sha in zip(refs, shas, strict=True):
        first, rc, out = build(a.repo, a.cache, sha)
        again, rc2, _ = build(a.repo, a.cache, sha)
        rows.append(
            {
                "ref": ref,
                "sha": sha,
                "wall": first,
                "rc": rc,
                "cached": again,
                "cached_rc": rc2,
                "out": out.strip().splitlines()[-1:],
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    db = sqlite3.connect(a.cache / "journal.sqlite3")
    print("| # | commit | position | date | result | fix-ups | build (s) | cached request (s) |")
    print("|---:|---|---:|---|---|---|---:|---:|")
    for i, r in enumerate(rows):
        rec = db.execute(
            "SELECT status, duration, fixups, detail FROM builds WHERE commit_sha=?", (r["sha"],)
        ).fetchone()
        status, duration, fixups, detail = rec if rec else ("?", None, "[]", "")
        date = git(a.repo, "log", "-1", "--format=%cs", r["sha"])
        result = "built" if status == "ok" else f"**{status}**: {detail}"
        kind = "cold" if i == 0 else "incremental"
        name = r["ref"] if r["ref"].startswith("v1") else r["sha"][:9]
        if r["ref"] in SIDE_BRANCH:
            name += " (side branch)"
        pos = 0 if r["ref"] == "v1.0" else order.get(r["sha"], "")
        fx = ", ".join(f.split(":")[0] for f in json.loads(fixups)) or "-"
        secs = f"{duration:.1f} ({kind})" if duration is not None else "-"
        print(f"| {i} | {name} | {pos} | {date} | {result} | {fx} | {secs} | {r['cached']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
