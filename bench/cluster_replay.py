"""Replay a recorded hunt on k simulated workers: the plan for a lab we cannot test here.

    python bench/cluster_replay.py --cache /work/rr-adapt-cold [--run-id ID] \
        [--repo /work/qemu] [--workers 1,2,4,8,16] [--out docs/results/F.md]

It reads the run's journal (every build's duration, every trial's duration, in the order
they ran) and its bisect log, and replays that work on k workers with a simulated
clock, through the tool's own scheduling code:

- the trials of a commit go out in batches of k, one per worker slot, and the next
  batch waits for the whole batch (``ClusterTrialRunner``: its ``jobs`` is the cluster's
  slots); a commit that took n trials here takes ``ceil(n / k) * k`` there, each extra
  trial as long as one of its recorded ones, in turn;
- with speculation, while the run waits for a build (the speculator's rule: then, and
  only then, are workers idle for long) and slots have been idle for two looks, the
  commits to build are chosen by
  ``bisect_driver.cluster.plan`` (``lookahead``, ``to_build``: the functions the
  speculator calls), asking git itself what it would test next (``git_next_of`` on the
  run's repository), from the bisect's state at that moment (read from the bisect log);
  a step whose commit was built ahead waits only for what is left of that build;
- trials go before builds that have not started (their Dask priority), and a running
  build is never interrupted.

What is modelled rather than run: Dask's placement of a task on a free worker (the
earliest free slot), and each worker being a host like this one (a build or trial takes
what it took here; a commit never built here takes the median build).  The verdicts are
the recorded ones: with more trials per batch a commit might be decided otherwise.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import sqlite3
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bisect_driver.cluster import plan  # noqa: E402
from bisect_driver.cluster.speculate import POLL_S  # noqa: E402

IDLE_S = 2 * POLL_S
"""A slot the speculator sees idle at two looks (plan.idle_slots)."""


@dataclass
class Visit:
    """Consecutive work on one commit, as it ran here."""

    commit: str
    build: float | None
    """Its build's duration, when this visit built it."""
    trials: list[float] = field(default_factory=list)


def load(cache: Path, run_id: str | None) -> tuple[str, dict, list[Visit], list[tuple[str, str]]]:  # type: ignore[type-arg]
    db = sqlite3.connect(cache / "journal.sqlite3")
    runs = db.execute("SELECT run_id, settings FROM runs ORDER BY created").fetchall()
    if run_id is None:
        run_id = runs[-1][0]
    settings = json.loads(dict(runs)[run_id])
    recipe_key, probe_key = settings["recipe_key"], settings["probe_key"]
    items: list[tuple[float, int, str, object]] = []
    for commit, duration, finished in db.execute(
        "SELECT commit_sha, duration, finished FROM builds WHERE recipe_key=? AND status='ok'",
        (recipe_key,),
    ):
        items.append((finished - duration, 0, commit, duration))
    for commit, started, idx, duration in db.execute(
        "SELECT commit_sha, started, idx, duration FROM trials WHERE recipe_key=? AND probe_key=?",
        (recipe_key, probe_key),
    ):
        items.append((started, 1 + idx, commit, duration or 0.0))
    items.sort(key=lambda x: (x[0], x[1]))
    visits: list[Visit] = []
    for _t, kind, commit, duration in items:
        if kind == 0:
            visits.append(Visit(commit, float(duration)))  # type: ignore[arg-type]
            continue
        if not visits or visits[-1].commit != commit:
            visits.append(Visit(commit, None))
        visits[-1].trials.append(float(duration))  # type: ignore[arg-type]
    marks = []
    log = cache / "runs" / run_id / "bisect.log"
    for line in log.read_text().splitlines() if log.exists() else []:
        words = line.split()
        if len(words) == 4 and words[:2] == ["git", "bisect"] and len(words[3]) == 40:
            marks.append((words[3], words[2]))
    return run_id, settings, visits, marks


@dataclass
class Sim:
    k: int
    speculate: bool
    next_of: plan.NextOf
    build_of: dict[str, float]
    median_build: float
    slots: list[float] = field(default_factory=list)
    """Each slot's free-at time (a heap)."""
    built_at: dict[str, float] = field(default_factory=dict)
    """Commit -> when its build ends (here or ahead)."""
    ahead: set[str] = field(default_factory=set)
    used: set[str] = field(default_factory=set)
    trials: int = 0
    builds: int = 0

    def __post_init__(self) -> None:
        self.slots = [0.0] * self.k
        heapq.heapify(self.slots)

    def build(self, commit: str, now: float) -> float:
        """Start ``commit``'s build on the earliest free slot; when it ends."""
        start = max(now, heapq.heappop(self.slots))
        end = start + self.build_of.get(commit, self.median_build)
        heapq.heappush(self.slots, end)
        self.built_at[commit] = end
        self.builds += 1
        return end

    def fill_idle(self, state: plan.BisectState | None, now: float) -> None:
        """The speculator's look: slots idle now take the next commits of the tree."""
        if not self.speculate or state is None:
            return
        idle = sum(1 for free in self.slots if free <= now)
        in_flight = {c for c, end in self.built_at.items() if end > now}
        for commit in plan.to_build(
            plan.lookahead(self.next_of, state), lambda c: c in self.built_at, in_flight, idle
        ):
            self.build(commit, now)
            self.ahead.add(commit)

    def trial_batches(self, durations: list[float], now: float) -> float:
        """Run ceil(n/k)*k trials in batches of k; when the last batch ends."""
        n = math.ceil(len(durations) / self.k) * self.k
        cycled = [durations[i % len(durations)] for i in range(n)]
        for b in range(0, n, self.k):
            ends = []
            for d in cycled[b : b + self.k]:
                start = max(now, heapq.heappop(self.slots))
                heapq.heappush(self.slots, start + d)
                ends.append(start + d)
            now = max(ends)
            self.trials += len(ends)
        return now


def replay(
    visits: list[Visit],
    marks: list[tuple[str, str]],
    terms: tuple[str, str],
    ends: tuple[str, str],
    k: int,
    speculate: bool,
    next_of: plan.NextOf,
) -> Sim:
    builds = {v.commit: v.build for v in visits if v.build is not None}
    sim = Sim(k, speculate, next_of, builds, statistics.median(builds.values()) if builds else 0)
    old_term, new_term = terms
    # the bisect's state at each of its steps, from its log
    states: dict[str, plan.BisectState] = {}
    olds, new = frozenset({ends[0]}), ends[1]
    for commit, mark in marks:
        states.setdefault(commit, plan.BisectState(olds, new, commit))
        if mark == old_term:
            olds = olds | {commit}
        elif mark == new_term:
            new = commit
    before = plan.BisectState(frozenset({ends[0]}), ends[1], None)
    steps_seen = False
    now = 0.0
    for v in visits:
        state = states.get(v.commit)
        if state is not None:
            steps_seen = True
        elif steps_seen:
            state = None  # after the bisect: confirmation, checks, backports
        else:
            state = before
        if v.build is not None:
            if v.commit in sim.built_at:
                if v.commit in sim.ahead:
                    sim.used.add(v.commit)
                ready = sim.built_at[v.commit]
            else:
                ready = sim.build(v.commit, now)
            if ready - now > IDLE_S:
                # the run waits for a build: slots idle for two looks take builds ahead
                sim.fill_idle(state, now + IDLE_S)
            now = max(now, ready)
        if v.trials:
            now = sim.trial_batches(v.trials, now)
    sim.slots = [max(now, s) for s in sim.slots]
    return sim


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cache", type=Path, required=True, help="the recorded run's cache dir")
    ap.add_argument("--run-id", help="which run (default: the latest)")
    ap.add_argument("--repo", type=Path, help="its repository (default: the run's own)")
    ap.add_argument("--workers", default="1,2,4,8,16", help="k values (default 1,2,4,8,16)")
    ap.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = ap.parse_args(argv)
    run_id, settings, visits, marks = load(args.cache, args.run_id)
    repo = args.repo or Path(settings["repo"])
    terms = ("broken", "fixed") if any(m == "broken" for _c, m in marks) else ("good", "bad")
    ends = (settings["good"], settings["bad"])
    next_of = plan.git_next_of(repo, bool(settings["settings"].get("first_parent")))
    recorded_trials = sum(len(v.trials) for v in visits)
    recorded_builds = sum(1 for v in visits if v.build is not None)
    lines = [
        f"Replay of run {run_id} ({settings['command_line']}): {recorded_builds} builds,"
        f" {recorded_trials} trials, {len(marks)} bisect marks.",
        "",
        "| workers | speculative builds | predicted wall | trials | builds (ahead, used) |",
        "|---:|---|---:|---:|---|",
    ]
    for k in [int(x) for x in args.workers.split(",")]:
        for speculate in (False, True):
            sim = replay(visits, marks, terms, ends, k, speculate, next_of)
            wall = max(sim.slots)
            lines.append(
                f"| {k} | {'yes' if speculate else 'no'} | {wall / 60:.1f} min | {sim.trials} |"
                f" {sim.builds} ({len(sim.ahead)}, {len(sim.used)}) |"
            )
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
