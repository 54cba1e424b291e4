"""The hunt's direction: it owns git's terms and the verdict -> `git bisect run` exit code.

A fix hunt is a bisect with old = broken and new = fixed; a regression hunt has
old = good and new = bad.  Whether a commit that shows the bug answers "old"
or "new" depends only on the direction, so this is the one place that says it
(the step script, the confirmation and the replay of a corrected log all ask
here).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

from bisect_driver.verdict.stats import Verdict


class StepCode(IntEnum):
    """Exit statuses of the ``step`` script, as `git bisect run` reads them."""

    OLD = 0
    NEW = 1
    SKIP = 125
    ABORT = 255


class Direction(StrEnum):
    FIX = "fix"
    REGRESSION = "regression"

    @property
    def terms(self) -> tuple[str, str]:
        """(old term, new term) for ``git bisect start --term-old --term-new``."""
        return ("broken", "fixed") if self is Direction.FIX else ("good", "bad")

    @property
    def bug_side(self) -> str:
        """Which end carries the bug: "old" in a fix hunt, "new" in a regression hunt."""
        return "old" if self is Direction.FIX else "new"

    def is_old(self, verdict: Verdict) -> bool:
        """Does a commit with this BUG/CLEAN verdict belong to the old side?"""
        if verdict not in (Verdict.BUG, Verdict.CLEAN):
            raise ValueError(f"{verdict} has no side")
        return (verdict is Verdict.BUG) == (self is Direction.FIX)

    def term(self, verdict: Verdict) -> str:
        return self.terms[0] if self.is_old(verdict) else self.terms[1]

    def step_code(self, verdict: Verdict) -> StepCode:
        """What the step script answers git for this verdict."""
        if verdict in (Verdict.SKIP, Verdict.UNDECIDED):
            return StepCode.SKIP
        return StepCode.OLD if self.is_old(verdict) else StepCode.NEW

    def expected(self, side: str) -> Verdict:
        """The verdict a commit on ``side`` ("old" or "new") of the change must get."""
        return Verdict.BUG if side == self.bug_side else Verdict.CLEAN

    @property
    def changed(self) -> str:
        """How the report words the answer: the bug was "fixed" or "introduced"."""
        return "fixed" if self is Direction.FIX else "introduced"
