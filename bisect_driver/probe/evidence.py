"""Evidence: what the recorded trials of one commit say, counted for the statistics.

Only CLEAN and REPRODUCED trials count.  INCONCLUSIVE and ERROR never do; a
HANG counts as whatever the run's policy says (inconclusive by default: a hang
may be the harness, not the bug).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bisect_driver.plugin.probe import Outcome
from bisect_driver.store.journal import TrialRecord


@dataclass(frozen=True)
class Evidence:
    commit: str
    trials: int = 0
    """Every recorded trial, counted or not."""
    reproduced: int = 0
    clean: int = 0
    inconclusive: int = 0
    hangs: int = 0
    errors: int = 0

    @property
    def counted(self) -> int:
        """Trials that count as evidence (clean + reproduced)."""
        return self.reproduced + self.clean

    @classmethod
    def from_trials(
        cls, commit: str, trials: Iterable[TrialRecord], hang_as: str = "inconclusive"
    ) -> Evidence:
        counts = {o: 0 for o in Outcome}
        n = 0
        for t in trials:
            n += 1
            counts[Outcome(t.outcome)] += 1
        reproduced = counts[Outcome.REPRODUCED]
        inconclusive = counts[Outcome.INCONCLUSIVE]
        if hang_as == "reproduced":
            reproduced += counts[Outcome.HANG]
        else:
            inconclusive += counts[Outcome.HANG]
        return cls(
            commit=commit,
            trials=n,
            reproduced=reproduced,
            clean=counts[Outcome.CLEAN],
            inconclusive=inconclusive,
            hangs=counts[Outcome.HANG],
            errors=counts[Outcome.ERROR],
        )
