"""The smallest series of commits from REF..fix that puts the fix onto REF.

Search: start with the fix and the commits that brought the symbols it uses; while some
commit of the series does not apply, explain why (explain.explain) and add the commits
that brought the missing context, in history order, up to MAX_SERIES commits and
MAX_ROUNDS rounds.  Then drop every prerequisite the series does not need: without it,
the series must still apply and still bring every symbol the fix uses.  Whether it then
builds and fixes is verify's business: nothing here trusts a clean apply.

Why these bounds: a backport that needs more than a handful of prerequisites is a
rewrite, not a cherry-pick, and is the maintainer's judgement (``--backport-patch``);
each round costs one apply attempt and a few `git blame` / `git log -S` calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import git

from bisect_driver.backport.apply import DoesNotApply, apply_commits
from bisect_driver.backport.explain import explain, missing_symbols, symbols_in
from bisect_driver.backport.model import Explanation, SeriesCommit, Symbol
from bisect_driver.store.repo import Checkout

MAX_SERIES = 8
"""Commits in a series, the fix included."""
MAX_ROUNDS = 4
"""Explain-and-extend rounds."""


@dataclass
class Series:
    status: str
    """applies | does not apply | too long"""
    commits: list[SeriesCommit] = field(default_factory=list)
    head: str | None = None
    """REF + the series, committed in the tool's checkout (when it applies)."""
    without_fix: str | None = None
    """REF + the prerequisites alone (when there are any and they apply)."""
    direct: bool = False
    symbols: list[Symbol] = field(default_factory=list)
    """What the fix uses that REF lacks, with the commit that introduced each."""
    explanations: list[Explanation] = field(default_factory=list)
    detail: str = ""


def _try(checkout: Checkout, onto: str, commits: list[str]) -> str | DoesNotApply:
    try:
        return apply_commits(checkout, onto, commits)
    except DoesNotApply as exc:
        return exc


def _brings_all(repo: git.Repo, head: str, symbols: list[Symbol]) -> bool:
    names = {s.name for s in symbols}
    return symbols_in(repo, head, names) == names


def find_series(checkout: Checkout, onto: str, fix: str) -> Series:
    repo = checkout.repo
    order = {
        sha: i
        for i, sha in enumerate(
            str(repo.git.rev_list("--topo-order", "--reverse", f"{onto}..{fix}")).split()
        )
    }

    def in_range(sha: str) -> bool:
        return sha in order and sha != fix

    first = _try(checkout, onto, [fix])
    result = Series("does not apply", direct=isinstance(first, str))
    symbols = result.symbols = missing_symbols(repo, onto, fix)
    why: dict[str, str] = {}
    for s in symbols:
        if s.commit and in_range(s.commit):
            why.setdefault(s.commit, f"brings {s.name}, which the fix uses")
    if symbols:
        result.explanations.append(Explanation(fix, [], symbols))

    outcome: str | DoesNotApply = first
    for _ in range(MAX_ROUNDS):
        series = sorted(why, key=order.__getitem__) + [fix]
        outcome = _try(checkout, onto, series)
        if isinstance(outcome, str):
            break
        failing = outcome.commit
        assert failing is not None
        expl = explain(repo, checkout, outcome.head, failing)
        result.explanations.append(expl)
        new = [p for p in expl.prerequisites() if in_range(p) and p not in why]
        if not new:
            result.detail = (
                f"{outcome}; no commit in {onto[:12]}..{fix[:12]} brings the lines it needs"
            )
            return result
        for p in new:
            lines = [b.line.strip() for h in expl.hunks for b in h.blames if b.commit == p]
            names = [s.name for s in expl.symbols if s.commit == p]
            what = f"brings {', '.join(names)}" if names else f"brings the context {lines[0]!r}"
            why[p] = f"{what} that {failing[:12]} needs"
        if len(why) + 1 > MAX_SERIES:
            result.status = "too long"
            named = ", ".join(p[:12] for p in sorted(why, key=order.__getitem__))
            result.detail = (
                f"more than {MAX_SERIES} commits would be needed (so far {named}, then"
                f" {failing[:12]}'s own prerequisites): a hand-made backport"
                " (--backport-patch) is the way"
            )
            return result
    if not isinstance(outcome, str):
        result.detail = f"{outcome} after {MAX_ROUNDS} rounds"
        return result

    # Drop what the series does not need, newest first: without it the series must still
    # apply, and the prerequisites alone (the fix's own lines do not count) must still
    # bring every symbol the fix uses.
    for p in sorted(why, key=order.__getitem__, reverse=True):
        rest = [x for x in sorted(why, key=order.__getitem__) if x != p]
        head = _try(checkout, onto, [*rest, fix])
        if not isinstance(head, str):
            continue
        base = _try(checkout, onto, rest) if rest else onto
        if isinstance(base, str) and _brings_all(repo, base, symbols):
            del why[p]
    series = sorted(why, key=order.__getitem__)
    head = _try(checkout, onto, [*series, fix])
    assert isinstance(head, str), "a series that applied stopped applying"
    result.status, result.head = "applies", head
    result.commits = [SeriesCommit(p, str(repo.commit(p).summary), why[p]) for p in series]
    result.commits.append(SeriesCommit(fix, str(repo.commit(fix).summary), "the fix"))
    if series:
        without = _try(checkout, onto, series)
        result.without_fix = without if isinstance(without, str) else None
    return result
