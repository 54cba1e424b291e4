"""Which commits idle workers build before the bisect asks for them (pure).

While a step's commit is built or tested, the bisect's next commit is one of two: the
one git picks if this commit is judged old, or the one if it is judged new; below each,
two more, and so on.  :func:`lookahead` walks that tree breadth first, nearest levels
first, so k idle workers build the top levels that k builds can cover (mozregression
prefetches the two next builds; with 15 workers the four levels below the current step
are built at once).  The answer of "what would git pick" comes from an oracle: for a
real run, :func:`git_next_of` (``git rev-list --bisect``, exactly git's choice); the
replay bench (bench/cluster_replay.py) passes the same oracle over the same history.
"""

from __future__ import annotations

import functools
import subprocess
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

NextOf = Callable[[frozenset[str], str], str | None]
"""(commits marked old, the commit marked new) -> the commit git tests next, or None
when the bisect would be done."""

MAX_DEPTH = 6
"""Levels looked at below the current step (2 + 4 + ... + 64 commits): deeper guesses
are almost never visited and each costs a build."""


@dataclass(frozen=True)
class BisectState:
    olds: frozenset[str]
    new: str
    current: str | None
    """The commit the step is judging now (None between steps)."""


def lookahead(next_of: NextOf, state: BisectState, max_depth: int = MAX_DEPTH) -> Iterator[str]:
    """The commits the bisect may visit after the current one, nearest first, each
    once; the current commit itself is not among them."""
    start: list[tuple[frozenset[str], str, int]]
    if state.current is not None:
        start = [(state.olds | {state.current}, state.new, 1), (state.olds, state.current, 1)]
    else:
        start = [(state.olds, state.new, 1)]
    queue = deque(start)
    seen = {state.current} if state.current else set()
    while queue:
        olds, new, depth = queue.popleft()
        commit = next_of(olds, new)
        if commit is None or depth > max_depth:
            continue
        if commit not in seen:
            seen.add(commit)
            yield commit
        queue.append((olds | {commit}, new, depth + 1))
        queue.append((olds, commit, depth + 1))


def idle_slots(slots: int, running: int, idle_before: int) -> int:
    """Slots a speculative build may take now: those idle at this look and the one
    before (a slot free only between two batches of trials is not idle)."""
    return max(0, min(slots - running, idle_before))


def to_build(
    candidates: Iterator[str], done: Callable[[str], bool], in_flight: set[str], free: int
) -> list[str]:
    """The first ``free`` candidates that are neither built nor being built."""
    out: list[str] = []
    if free <= 0:
        return out
    for commit in candidates:
        if commit in in_flight or done(commit):
            continue
        out.append(commit)
        if len(out) >= free:
            break
    return out


def git_next_of(repo: Path, first_parent: bool = False) -> NextOf:
    """git's own choice (``git rev-list --bisect``), remembered per state."""

    @functools.cache
    def next_of(olds: frozenset[str], new: str) -> str | None:
        args = ["git", "rev-list", "--bisect"]
        if first_parent:
            args.append("--first-parent")
        res = subprocess.run(
            [*args, new, "--not", *sorted(olds)], cwd=repo, capture_output=True, text=True
        )
        sha = res.stdout.strip()
        return None if res.returncode or not sha or sha == new else sha

    return next_of


def bisect_state(checkout: Path, terms: tuple[str, str]) -> BisectState | None:
    """The tool-owned checkout's bisect, read from its refs (None: no bisect running)."""
    git_dir = subprocess.run(
        ["git", "rev-parse", "--git-dir"], cwd=checkout, capture_output=True, text=True
    ).stdout.strip()
    if not git_dir or not (checkout / git_dir / "BISECT_START").exists():
        return None
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname) %(objectname)", "refs/bisect/"],
        cwd=checkout,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    old_term, new_term = terms
    olds, new = set(), None
    for line in refs:
        if not line:
            continue
        name, sha = line.split()
        if name == f"refs/bisect/{new_term}":
            new = sha
        elif name.startswith(f"refs/bisect/{old_term}-"):
            olds.add(sha)
    if new is None or not olds:
        return None
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True
    ).stdout.strip()
    return BisectState(frozenset(olds), new, head or None)
