"""The documented result of a run: what the driver stores and the report renders.

Like syzkaller's pkg/bisect Result: a typed value, built once at the end of a
run, stored in the journal as JSON, and the only thing the report and the exit
status read.  Its JSON form is described in docs/report.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bisect_driver.bisect.checks import Check, CheckStatus
from bisect_driver.bisect.confirm import Confirmation
from bisect_driver.plugin.errors import EXIT_AMBIGUOUS, EXIT_FOUND


@dataclass
class RunResult:
    candidates: list[str]
    """One commit, or the set the answer lies in when skipped commits border it."""
    terms: tuple[str, str]
    bisect_log: str
    wall_seconds: float
    checks: list[Check] = field(default_factory=list)
    confirmed: bool = False
    corrected: list[str] = field(default_factory=list)
    confirmation_rounds: list[list[Check]] = field(default_factory=list)
    confirm_errors: dict[str, float] = field(default_factory=dict)
    contradiction: str | None = None

    @classmethod
    def of(
        cls,
        candidates: list[str],
        terms: tuple[str, str],
        bisect_log: str,
        wall_seconds: float,
        confirmation: Confirmation | None,
        checks: list[Check],
    ) -> RunResult:
        conf = confirmation
        return cls(
            candidates=candidates,
            terms=terms,
            bisect_log=bisect_log,
            wall_seconds=wall_seconds,
            checks=(list(conf.checks) if conf else []) + checks,
            confirmed=bool(conf) and conf is not None and conf.confirmed,
            corrected=list(conf.corrected) if conf else [],
            confirmation_rounds=[list(r) for r in conf.rounds] if conf else [],
            confirm_errors=dict(conf.errors) if conf else {},
            contradiction=conf.contradiction if conf else None,
        )

    @property
    def found(self) -> bool:
        return len(self.candidates) == 1

    def exit_status(self) -> int:
        """0 for one candidate commit, 1 for a candidate set (README "Exit status")."""
        return EXIT_FOUND if self.found else EXIT_AMBIGUOUS

    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if c.status is CheckStatus.FAIL]

    def to_json(self) -> dict[str, Any]:
        return {
            "candidates": list(self.candidates),
            "terms": list(self.terms),
            "bisect_log": self.bisect_log,
            "wall_seconds": self.wall_seconds,
            "checks": [c.to_json() for c in self.checks],
            "confirmed": self.confirmed,
            "corrected": list(self.corrected),
            "confirmation_rounds": [[c.to_json() for c in r] for r in self.confirmation_rounds],
            "confirm_errors": dict(self.confirm_errors),
            "contradiction": self.contradiction,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunResult:
        terms = data.get("terms") or ["", ""]
        return cls(
            candidates=list(data.get("candidates", [])),
            terms=(terms[0], terms[1]),
            bisect_log=data.get("bisect_log", ""),
            wall_seconds=float(data.get("wall_seconds") or 0.0),
            checks=[Check.from_json(c) for c in data.get("checks", [])],
            confirmed=bool(data.get("confirmed")),
            corrected=list(data.get("corrected", [])),
            confirmation_rounds=[
                [Check.from_json(c) for c in r] for r in data.get("confirmation_rounds", [])
            ],
            confirm_errors=dict(data.get("confirm_errors", {})),
            contradiction=data.get("contradiction"),
        )
