"""Evidence: what the recorded trials of one commit say, counted for the statistics.

Only CLEAN and REPRODUCED trials count.  INCONCLUSIVE and ERROR never do; a
HANG counts as whatever the run's policy says (inconclusive by default: a hang
may be the harness, not the bug).

A reproduction counts only if it is *this* bug (docs/statistics.md,
"Signatures: what counts as the bug").  A commit that crashes for another
reason (another bug, a half-broken build) would otherwise be counted as
carrying this one and send the bisect the wrong way.  Such "other failures"
are recorded and shown, but counted as neither reproduced nor clean: they
say nothing about this bug either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bisect_driver.plugin.probe import Outcome
from bisect_driver.store.journal import TrialRecord


@dataclass(frozen=True)
class BugSignature:
    """Which failures count as the bug: the signatures seen at the reproducing end.

    The bug is defined by what the reproducing end shows, not by any failure:
    a reproduction elsewhere counts only if its signature is one of these.
    The probe's own verdict (``TrialResult.extra["bug"]``, the journal's
    ``is_bug``), where it gave one, always wins over the comparison: the user
    told the probe what the bug looks like (``--signature``).  A reproduction
    without a signature matches any bug, so probes that report none behave as
    before signatures existed.
    """

    signatures: frozenset[str] = frozenset()
    """Signatures that are the bug."""
    any_signature: bool = False
    """True when the reproducing end had a reproduction without a signature (or none at
    all): then nothing tells the bug from another failure, and every reproduction counts."""

    @classmethod
    def from_trials(cls, endpoint_trials: Iterable[TrialRecord]) -> BugSignature:
        """The bug as the reproducing end's reproductions show it.

        Only REPRODUCED trials the probe did not itself call another failure
        (``is_bug`` False) contribute; hangs never do (whether a hang is the
        bug is the hang policy's business, and a hang has no failure to name).
        """
        signatures: set[str] = set()
        any_signature = False
        seen = False
        for t in endpoint_trials:
            if t.outcome != Outcome.REPRODUCED or t.is_bug is False:
                continue
            seen = True
            if t.signature is None:
                any_signature = True
            else:
                signatures.add(t.signature)
        return cls(frozenset(signatures), any_signature or not seen)

    def matches(self, signature: str | None, is_bug: bool | None = None) -> bool:
        """Whether a reproduction with this signature (and probe verdict) is the bug."""
        if is_bug is not None:
            return is_bug
        return self.any_signature or signature is None or signature in self.signatures

    def to_json(self) -> dict[str, Any]:
        """For storing with a run (the signatures sorted, so equal bugs store equally)."""
        return {"signatures": sorted(self.signatures), "any_signature": self.any_signature}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BugSignature:
        return cls(
            frozenset(str(s) for s in data.get("signatures", ())),
            bool(data.get("any_signature", False)),
        )


def is_bug(trial: TrialRecord, bug: BugSignature | None) -> bool:
    """Whether a trial that would count as a reproduction is this bug.

    The probe's explicit verdict decides when it gave one (even with no
    ``bug`` known yet: a probe told what the bug looks like has said so);
    otherwise the signature is compared with ``bug``; with no ``bug`` every
    reproduction counts.
    """
    if trial.is_bug is not None:
        return trial.is_bug
    return bug is None or bug.matches(trial.signature)


@dataclass(frozen=True)
class Evidence:
    commit: str
    trials: int = 0
    """Every recorded trial, counted or not."""
    reproduced: int = 0
    """Reproductions of this bug (see :class:`BugSignature`)."""
    clean: int = 0
    inconclusive: int = 0
    hangs: int = 0
    errors: int = 0
    other: int = 0
    """Reproductions of another failure: recorded and shown, counted as neither."""
    other_signatures: tuple[str, ...] = ()
    """The other failures' distinct signatures, sorted (unnamed ones are left out)."""

    @property
    def counted(self) -> int:
        """Trials that count as evidence (clean + reproduced; never other failures)."""
        return self.reproduced + self.clean

    @classmethod
    def from_trials(
        cls,
        commit: str,
        trials: Iterable[TrialRecord],
        hang_as: str = "inconclusive",
        bug: BugSignature | None = None,
    ) -> Evidence:
        """Count ``trials``; reproductions that are not ``bug`` become ``other``.

        With ``bug`` None every reproduction counts unless the probe itself
        said it is not the bug (``is_bug`` False).  A hang counted as a
        reproduction (``hang_as="reproduced"``) is judged the same way; having
        no signature, it matches any bug.
        """
        counts = {o: 0 for o in Outcome}
        n = 0
        reproduced = 0
        other = 0
        other_signatures: set[str] = set()
        for t in trials:
            n += 1
            outcome = Outcome(t.outcome)
            counts[outcome] += 1
            if outcome == Outcome.REPRODUCED or (
                outcome == Outcome.HANG and hang_as == "reproduced"
            ):
                if is_bug(t, bug):
                    reproduced += 1
                else:
                    other += 1
                    if t.signature is not None:
                        other_signatures.add(t.signature)
        inconclusive = counts[Outcome.INCONCLUSIVE]
        if hang_as != "reproduced":
            inconclusive += counts[Outcome.HANG]
        return cls(
            commit=commit,
            trials=n,
            reproduced=reproduced,
            clean=counts[Outcome.CLEAN],
            inconclusive=inconclusive,
            hangs=counts[Outcome.HANG],
            errors=counts[Outcome.ERROR],
            other=other,
            other_signatures=tuple(sorted(other_signatures)),
        )
