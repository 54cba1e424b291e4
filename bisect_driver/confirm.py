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
from dataclasses import dataclass, field

from .endpoints import FIX
from .tester import SKIP, CommitTester
from .verdict import Verdict

CONFIRM_FACTOR = 10
MAX_CORRECTIONS = 5


@dataclass
class Check:
    name: str
    status: str  # "PASS" | "FAIL" | "not run"
    detail: str = ""


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


def confirm_run_id(run_id: str) -> str:
    return f"{run_id}:confirm"


def expected(direction: str, side: str) -> str:
    """The verdict the candidate ('new') or its parent ('old') must get."""
    bug_side = "old" if direction == FIX else "new"
    return Verdict.BUG if side == bug_side else Verdict.CLEAN


def retest(
    tester: CommitTester, direction: str, candidate: str, parents: list[str]
) -> tuple[Confirmation, str | None]:
    """Judge candidate and parents under the stricter confirmation tester.

    Returns the confirmation and the first commit whose verdict contradicts
    (None when everything agrees).
    """
    conf = Confirmation()
    bad = None
    for side, commits in (("old", parents), ("new", [candidate])):
        want = expected(direction, side)
        for sha in commits:
            rec = tester.judge(sha)
            conf.errors[sha] = rec.error
            label = (
                f"{'parent' if side == 'old' else 'candidate'} {sha[:12]}"
                f" {'reproduces' if want == Verdict.BUG else 'is clean'}"
            )
            if rec.verdict == want:
                conf.checks.append(
                    Check(label, "PASS", f"{rec.reproduced}/{rec.trials}, error <= {rec.error:.2g}")
                )
            elif rec.verdict == SKIP:
                conf.checks.append(Check(label, "not run", rec.reason))
            else:
                conf.checks.append(
                    Check(label, "FAIL", f"{rec.reproduced}/{rec.trials}: {rec.verdict}")
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
