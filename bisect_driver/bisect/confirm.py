"""Confirmation: retest the answer at a higher confidence, and repair the bisect if it was misled.

`git bisect` trusts every verdict.  With fp = 0 a "bug" verdict is proof (a
reproduction was seen), so the only verdicts that can be wrong are "clean"
ones - and a wrong one always lands right next to the answer: in a fix hunt
the misjudged commit *becomes* the candidate (everything before it still
reproduces), in a regression hunt it becomes the candidate's parent.  So
retesting the candidate and its parent(s) at ``alpha / CONFIRM_FACTOR`` catches
the verdict that misled the search.  When it contradicts, that verdict is
corrected in the journal and in the bisect log, the log is replayed with
`git bisect replay`, and `git bisect run` goes on (every other commit answers
from the journal at once).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import git

from bisect_driver.bisect.checks import Check, CheckStatus
from bisect_driver.bisect.direction import Direction
from bisect_driver.bisect.gitbisect import BisectOutcome, GitBisect
from bisect_driver.bisect.history import parents_in_range
from bisect_driver.store.journal import VerdictRecord
from bisect_driver.verdict.judge import CommitTester
from bisect_driver.verdict.stats import Verdict

CONFIRM_FACTOR = 10
MAX_CORRECTIONS = 5


@dataclass
class Confirmation:
    checks: list[Check] = field(default_factory=list)
    corrected: list[str] = field(default_factory=list)
    """Commits whose verdict confirmation overturned."""
    errors: dict[str, float] = field(default_factory=dict)
    """Error bound of each confirmation verdict (commit -> p-value)."""
    contradiction: str | None = None
    """Set when a contradiction could not be repaired (e.g. non-monotonic history)."""
    rounds: list[list[Check]] = field(default_factory=list)
    """The checks of every confirmation round (a FAIL round led to a correction)."""

    @property
    def confirmed(self) -> bool:
        return not self.contradiction and all(c.status is CheckStatus.PASS for c in self.checks)


def confirm_run_id(run_id: str) -> str:
    return f"{run_id}:confirm"


def strict_tester(tester: CommitTester, run_id: str) -> CommitTester:
    """The confirmation's tester: same trials, its own verdicts, ten times stricter."""
    return tester.with_alpha(confirm_run_id(run_id), tester.policy.alpha / CONFIRM_FACTOR)


def retest(
    tester: CommitTester, direction: Direction, candidate: str, parents: list[str]
) -> tuple[Confirmation, str | None]:
    """Judge candidate and parents under the stricter confirmation tester.

    Returns the confirmation and the first commit whose verdict contradicts
    (None when everything agrees).
    """
    conf = Confirmation()
    bad = None
    for side, commits in (("old", parents), ("new", [candidate])):
        want = direction.expected(side)
        for sha in commits:
            rec = tester.judge(sha)
            conf.errors[sha] = rec.error
            label = (
                f"{'parent' if side == 'old' else 'candidate'} {sha[:12]}"
                f" {'reproduces' if want == Verdict.BUG else 'is clean'}"
            )
            if rec.verdict == want:
                conf.checks.append(
                    Check(
                        label,
                        CheckStatus.PASS,
                        f"{rec.reproduced}/{rec.trials}, error <= {rec.error:.2g}",
                    )
                )
            elif rec.verdict == Verdict.SKIP:
                conf.checks.append(Check(label, CheckStatus.NOT_RUN, rec.reason))
            else:
                conf.checks.append(
                    Check(label, CheckStatus.FAIL, f"{rec.reproduced}/{rec.trials}: {rec.verdict}")
                )
                bad = bad or sha
    return conf, bad


def corrected_log(log: str, commit: str, terms: tuple[str, str], new_verdict_is_old: bool) -> str:
    """The bisect log with ``commit``'s mark flipped to the corrected term."""
    term = terms[0] if new_verdict_is_old else terms[1]
    out = []
    pattern = re.compile(rf"^git bisect ({re.escape(terms[0])}|{re.escape(terms[1])}) {commit}$")
    for line in log.splitlines():
        if pattern.match(line):
            line = f"git bisect {term} {commit}"
        out.append(line)
    return "\n".join(out) + "\n"


def confirm_answer(
    run_id: str,
    tester: CommitTester,
    repo: git.Repo,
    direction: Direction,
    old_end: str,
    bisect: GitBisect,
    step: list[str],
    outcome: BisectOutcome,
    say: Callable[[str], None],
) -> tuple[Confirmation, BisectOutcome]:
    """Retest candidate and parents strictly; correct a misleading verdict and replay."""
    journal = tester.journal
    strict = strict_tester(tester, run_id)
    rounds: list[list[Check]] = []
    corrected: list[str] = []
    conf = Confirmation()
    for _attempt in range(MAX_CORRECTIONS + 1):
        cand = outcome.candidates[0]
        parents = parents_in_range(repo, cand, old_end)
        say(
            f"confirming {cand[:12]} (parents {', '.join(x[:12] for x in parents)})"
            f" at error <= {strict.policy.alpha:.2g}"
        )
        conf, wrong = retest(strict, direction, cand, parents)
        rounds.append(conf.checks)
        conf.rounds, conf.corrected = rounds, corrected
        if wrong is None:
            return conf, outcome
        main = journal.verdict(run_id, wrong)
        fresh = journal.verdict(strict.run_id, wrong)
        if main is None or fresh is None or main.verdict == fresh.verdict:
            conf.contradiction = (
                f"{wrong[:12]} behaves unlike its place in the history (not a misjudged"
                " verdict): the bug may have come and gone more than once"
            )
            say(conf.contradiction)
            return conf, outcome
        say(
            f"confirmation overturns {wrong[:12]}: {main.verdict} -> {fresh.verdict};"
            " replaying the bisect with the corrected verdict"
        )
        journal.record_verdict(
            run_id,
            VerdictRecord(
                wrong,
                fresh.verdict,
                fresh.trials,
                fresh.reproduced,
                fresh.error,
                f"corrected by confirmation (was {main.verdict})",
                time.time(),
            ),
        )
        journal.event(run_id, "corrected", f"{wrong} {main.verdict} -> {fresh.verdict}")
        is_old = direction.is_old(Verdict(fresh.verdict))
        bisect.replay(corrected_log(outcome.log, wrong, direction.terms, is_old))
        outcome = bisect.run(step, direction.terms)
        corrected.append(wrong)
        if len(outcome.candidates) != 1:
            return conf, outcome
    conf.contradiction = f"still contradicting after {MAX_CORRECTIONS} corrections"
    return conf, outcome
