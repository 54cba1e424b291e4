"""bisect-qemu against git-bayesect 1.2 on the same generated flaky repos (issue 18).

    .venv/bin/python bench/bench_bayesect.py [--seeds 3] [--rates 0.08 0.25 0.5]
        [--commits 100] [--confidence 0.99] [--venv cache/bench-bayesect] [--json FILE]

git-bayesect (https://github.com/hauntsaninja/git_bayesect, PyPI ``git_bayesect``) is a
Bayesian bisection: it keeps a posterior over which commit changed the failure rate, picks
the commit to test by expected entropy, and stops when the most likely commit reaches
``--confidence``.  It is installed by this bench into a virtual environment of its own
(``--venv``, default cache/bench-bayesect: runtime data, git-ignored), never as a
dependency of the tool.

bisect-qemu runs twice, as by default and with ``--steady-rate`` (no drift assumed).  Both
tools get the same generated repo (bisect_driver.app.flaky_project: a real C program
with a real SIGTERM race, built with make), the same confidence and the same machine:

- bisect-qemu: the command a user types (bench_flaky.ours), fresh cache dir;
- git-bayesect: ``git bayesect start --old OLD --new NEW`` then ``git bayesect run
  --confidence C sh step.sh`` in a clone, where step.sh builds the checked-out commit
  (``make -s``) and runs the probe once (exit 1 = the crash reproduced: a "fail").

Printed per rate: trials, distinct commits tested (each one a build on a real project),
right / wrong answers and wall seconds for both, and the ratios; for bisect-qemu also its
trials without the backport check onto the old end (REF + series, built and probed after
the answer: a deliverable git-bayesect does not make), from the report's backports.
Nothing is timed against a threshold: the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_flaky import ours  # noqa: E402

from bisect_driver.app.flaky_project import FlakyRepo, FlakySpec, generate  # noqa: E402

VERSION = "1.2"

STEP = r"""#!/bin/sh
# One git-bayesect observation: build the checked-out commit, run the probe once.
make -s >/dev/null 2>&1 || exit 125
echo x >> {counter}
BISECT_SEED=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ') BISECT_WORK_DIR=$PWD ./probe.sh \
  >/dev/null 2>&1
[ $? -eq 1 ] && exit 1   # reproduced: a fail
exit 0
"""

ANSWER = r"""
import sys
from pathlib import Path
from git_bayesect import State, get_bisector
state = State.from_git_state(Path("."))
b = get_bisector(state)
rel = int(b.distribution.argmax())
index = state.commit_indices[state.new_sha] - rel
by_index = {i: c for c, i in state.commit_indices.items()}
print(by_index[index].decode(), len(state.results), len({c for c, _ in state.results}),
      float(b.distribution.max()))
"""


@dataclass
class Hunt:
    """One tool's hunt over one repo."""

    found: str | None
    trials: int
    commits: int
    """Distinct commits tested."""
    wall: float
    confidence: float | None
    backport_trials: int = 0
    """bisect-qemu's backport check onto the old end (git-bayesect makes no backport)."""


def install(venv: Path) -> Path:
    """git-bayesect VERSION in its own virtual environment; its ``git-bayesect`` script."""
    exe = venv / "bin" / "git-bayesect"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, f"git_bayesect=={VERSION}"], check=True)
    return exe


def bayesect(repo: FlakyRepo, work: Path, exe: Path, confidence: float) -> Hunt:
    clone = work / "bayesect-clone"
    subprocess.run(["git", "clone", "-q", str(repo.path), str(clone)], check=True)
    counter = work / "bayesect-trials"
    step = work / "bayesect-step.sh"
    step.write_text(STEP.format(counter=counter))
    step.chmod(0o755)
    t0 = time.monotonic()
    run = lambda *a: subprocess.run(  # noqa: E731
        [str(exe), *a], cwd=clone, check=True, capture_output=True, text=True
    )
    run("start", "--old", repo.old, "--new", repo.new)
    run("run", "--confidence", str(confidence), "sh", str(step))
    wall = time.monotonic() - t0
    out = subprocess.run(
        [str(exe.parent / "python"), "-c", ANSWER],
        cwd=clone,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return Hunt(out[0], int(out[1]), int(out[2]), wall, float(out[3]))


TOOLS = ("bisect-qemu", "bisect-qemu --steady-rate", "git-bayesect")


def ours_hunt(repo: FlakyRepo, work: Path, confidence: float, extra: tuple[str, ...] = ()) -> Hunt:
    r = ours(repo, work, confidence, extra)
    return Hunt(
        r["found"],
        r["trials"],
        r["commits_judged"],
        r["wall"],
        r["confidence"],
        r["backport_trials"],
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="repos per rate (default 3)")
    ap.add_argument("--rates", type=float, nargs="+", default=[0.08, 0.25, 0.5])
    ap.add_argument("--commits", type=int, default=100)
    ap.add_argument("--confidence", type=float, default=0.99)
    ap.add_argument("--venv", default=str(ROOT / "cache" / "bench-bayesect"))
    ap.add_argument("--json", help="also write every hunt's figures here")
    a = ap.parse_args()
    exe = install(Path(a.venv))
    rows = []
    for rate in a.rates:
        for seed in range(a.seeds):
            work = Path(tempfile.mkdtemp(prefix="bench-bayesect-"))
            try:
                change = 1 + (seed * 37 + 41) % (a.commits - 1)
                spec = FlakySpec(commits=a.commits, change_at=change, rate=rate, seed=seed)
                repo = generate(work / "repo", spec)
                row = {
                    "rate": rate,
                    "seed": seed,
                    "answer": repo.answer,
                    "bisect-qemu": asdict(ours_hunt(repo, work, a.confidence)),
                    "bisect-qemu --steady-rate": asdict(
                        ours_hunt(repo, work, a.confidence, ("--steady-rate",))
                    ),
                    "git-bayesect": asdict(bayesect(repo, work, exe, a.confidence)),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    print()
    print(
        f"{a.seeds} generated fix hunts per rate, {a.commits} commits, --confidence"
        f" {a.confidence}, git-bayesect {VERSION}\n"
    )
    print(
        "| planted rate | tool | trials | distinct commits tested | right / wrong / none |"
        " claimed | wall s | trials / bayesect's | commits / bayesect's |"
        " trials without the backport check | those / bayesect's |"
    )
    print("|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for rate in a.rates:
        mine = [r for r in rows if r["rate"] == rate]
        sums = {}
        for tool in (*TOOLS[2:], *TOOLS[:2]):
            hunts = [r[tool] for r in mine]
            sums[tool] = (sum(h["trials"] for h in hunts), sum(h["commits"] for h in hunts))
        for tool in TOOLS:
            hunts = [r[tool] for r in mine]
            right = sum(h["found"] == r["answer"] for h, r in zip(hunts, mine, strict=True))
            none = sum(h["found"] is None for h in hunts)
            claimed = sum(h["confidence"] is not None for h in hunts)
            base = sums["git-bayesect"]
            hunt_only = sums[tool][0] - sum(h.get("backport_trials", 0) for h in hunts)
            ratios = (
                " | | | |"
                if tool == "git-bayesect"
                else f" {sums[tool][0] / max(1, base[0]):.2f}x |"
                f" {sums[tool][1] / max(1, base[1]):.2f}x |"
                f" {hunt_only} | {hunt_only / max(1, base[0]):.2f}x |"
            )
            print(
                f"| {rate} | {tool} | {sums[tool][0]} | {sums[tool][1]} |"
                f" {right} / {len(hunts) - right - none} / {none} | {claimed} |"
                f" {sum(h['wall'] for h in hunts):.0f} |" + ratios
            )
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
