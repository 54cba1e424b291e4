"""The documented result of a run: what the driver stores and the report renders.

Like syzkaller's pkg/bisect Result: a typed value, built once at the end of a
run, stored in the journal as JSON, and the only thing the report and the exit
status read.  Its JSON form is described in docs/report.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bisect_driver.backport.model import BackportResult
from bisect_driver.bisect.checks import Check, CheckStatus
from bisect_driver.bisect.confirm import Confirmation
from bisect_driver.verdict.core import answer, background_note
from bisect_driver.verdict.stats import lower_bound, upper_bound


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
    confidence: float | None = None
    """1 - the bound on a wrong answer, when the answer was confirmed and no check failed;
    None: no confidence is claimed (see ``unconfirmed``)."""
    error_bound: float | None = None
    """The strict test's bound on a wrong answer under the floor assumption (also when a
    check later failed)."""
    floor: float | None = None
    floor_source: str = ""
    near: tuple[int, int] = (0, 0)
    """(reproduced, counted) at the bug-carrying neighbour(s) of the answer."""
    far: tuple[int, int] = (0, 0)
    """(reproduced, counted) at the reproducing end."""
    drift: str | None = None
    background: str | None = None
    """A sentence when the hunt decided with a background failure rate at the clean end."""
    unconfirmed: list[str] = field(default_factory=list)
    """Why the answer is not claimed (exit 8): an inconclusive strict test, a rate below the
    floor, a contradiction, or a check that failed."""
    backports: list[BackportResult] = field(default_factory=list)
    """Fix hunts: the backport onto each REF (explained, series, verification)."""

    @classmethod
    def of(
        cls,
        candidates: list[str],
        terms: tuple[str, str],
        bisect_log: str,
        wall_seconds: float,
        confirmation: Confirmation | None,
        checks: list[Check],
        far: tuple[int, int] = (0, 0),
        floor_source: str = "",
        backports: list[BackportResult] | None = None,
        background: tuple[int, int] = (0, 0),
        background_found: bool = False,
    ) -> RunResult:
        conf = confirmation
        result = cls(
            candidates=candidates,
            terms=terms,
            bisect_log=bisect_log,
            wall_seconds=wall_seconds,
            checks=(list(conf.checks) if conf else []) + checks,
            confirmed=conf is not None and conf.confirmed,
            corrected=list(conf.corrected) if conf else [],
            confirmation_rounds=[list(r) for r in conf.rounds] if conf else [],
            confirm_errors=dict(conf.errors) if conf else {},
            contradiction=conf.contradiction if conf else None,
            far=far,
            floor_source=floor_source,
            backports=list(backports or []),
            background=background_note(background, background_found),
        )
        if conf is not None:
            result.floor, result.near = conf.floor, conf.near
            result.error_bound = conf.error
            result.drift = drift_note(conf.near, far)
            if conf.inconclusive:
                result.unconfirmed.append(f"inconclusive: {conf.inconclusive}")
            if conf.contradiction:
                result.unconfirmed.append(f"contradiction: {conf.contradiction}")
            failed = [c for c in conf.checks if c.status is CheckStatus.FAIL]
            if not conf.confirmed and not result.unconfirmed and failed:
                # The confirmation stopped on a contradiction it did not correct.
                result.unconfirmed.append(f"not confirmed: {failed[0].name}: {failed[0].detail}")
        result.unconfirmed += [
            f"check failed: {c.name}: {c.detail}"
            for c in checks
            if c.gates and c.status is CheckStatus.FAIL
        ]
        claim = answer(
            len(candidates),
            result.confirmed,
            result.unconfirmed,
            conf.budget if conf is not None else None,
        )
        result.confidence = claim.confidence
        return result

    @property
    def found(self) -> bool:
        return len(self.candidates) == 1

    def exit_status(self) -> int:
        """0: one candidate commit, confirmed; 8: one candidate, not confirmed (a check
        failed or the strict test could not decide); 1: a candidate set (README), confirmed
        or not (core.answer decides)."""
        return answer(len(self.candidates), self.confirmed, self.unconfirmed, None).exit_status

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
            "confidence": self.confidence,
            "error_bound": self.error_bound,
            "floor": self.floor,
            "floor_source": self.floor_source,
            "near": list(self.near),
            "far": list(self.far),
            "drift": self.drift,
            "background": self.background,
            "unconfirmed": list(self.unconfirmed),
            "backports": [b.to_json() for b in self.backports],
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
            confidence=data.get("confidence"),
            error_bound=data.get("error_bound"),
            floor=data.get("floor"),
            floor_source=data.get("floor_source", ""),
            near=_pair(data.get("near")),
            far=_pair(data.get("far")),
            drift=data.get("drift"),
            background=data.get("background"),
            unconfirmed=list(data.get("unconfirmed", [])),
            backports=[BackportResult.from_json(b) for b in data.get("backports", [])],
        )


def _pair(value: Any) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if value else (0, 0)


def drift_note(near: tuple[int, int], far: tuple[int, int]) -> str | None:
    """A sentence when the rate next to the change is clearly below the far end's.

    Clearly: the near rate's 95 % upper bound is below the far end's 95 % lower bound."""
    (k, n), (fk, fn) = near, far
    if not n or not fn:
        return None
    if upper_bound(k, n) >= lower_bound(fk, fn):
        return None
    return (
        f"the rate drifts: the bug-carrying commits next to the change reproduce {k}/{n}"
        f" ({k / n:.2f}, at most {upper_bound(k, n):.2f}), the far end {fk}/{fn}"
        f" ({fk / fn:.2f}, at least {lower_bound(fk, fn):.2f})"
    )
