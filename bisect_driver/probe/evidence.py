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

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bisect_driver.plugin.probe import Outcome
from bisect_driver.store.journal import TrialRecord


@dataclass(frozen=True)
class BugSignature:
    """Which failures count as the bug: the signatures seen at the reproducing end, and
    the further faces of the bug known from evidence (:func:`with_faces`).

    The bug is defined by what the reproducing end shows, not by any failure:
    a reproduction elsewhere counts only if its signature is one of these.
    The probe's own verdict (``TrialResult.is_bug``, the journal's
    ``is_bug``), where it gave one, always wins over the comparison: the user
    told the probe what the bug looks like (``--signature``).  A reproduction
    without a signature matches any bug, so probes that report none behave as
    before signatures existed.
    """

    signatures: frozenset[str] = frozenset()
    """The core: signatures the reproducing end showed."""
    any_signature: bool = False
    """True when the reproducing end had a reproduction without a signature (or none at
    all): then nothing tells the bug from another failure, and every reproduction counts."""
    faces: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Further faces of the bug: signature -> why it counts (seen at a commit that
    carries the bug, never on the clean side).  A bug with several faces (a crash that
    shows as SIGSEGV or as an assertion) is known by more than the end happened to show."""
    not_faces: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Signatures seen on the clean side, with why they are not the bug (and where they
    were seen, also when a commit that carries the bug showed them): for the report."""

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
        return self.why(signature, is_bug)[0]

    def why(self, signature: str | None, is_bug: bool | None = None) -> tuple[bool, str]:
        """Whether a reproduction with this signature (and probe verdict) is the bug, and
        why, in words for the report (the rules of docs/statistics.md, in their order)."""
        if is_bug is True:
            return True, "the probe's verdict: it is the bug (e.g. --signature matched)"
        if is_bug is False:
            return False, "the probe's verdict: another failure (e.g. --signature did not match)"
        if signature is None:
            return True, "no signature: nothing tells it from the bug"
        if self.any_signature:
            return True, (
                "the reproducing end showed a failure without a signature (or none yet):"
                " nothing tells the bug from another failure"
            )
        if signature in self.signatures:
            return True, "shown by the reproducing end"
        if signature in self.faces:
            return True, self.faces[signature]
        if signature in self.not_faces:
            return False, self.not_faces[signature]
        return False, (
            "another failure: not shown by the reproducing end, nor seen at a commit"
            " shown to carry the bug"
        )

    def to_json(self) -> dict[str, Any]:
        """For storing with a run (sorted, so equal bugs store equally)."""
        return {
            "signatures": sorted(self.signatures),
            "any_signature": self.any_signature,
            "faces": dict(sorted(self.faces.items())),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BugSignature:
        return cls(
            frozenset(str(s) for s in data.get("signatures", ())),
            bool(data.get("any_signature", False)),
            {str(k): str(v) for k, v in dict(data.get("faces", {})).items()},
        )

    def with_faces(
        self, trials_by_commit: Mapping[str, Sequence[TrialRecord]], clean: Collection[str]
    ) -> BugSignature:
        """This bug plus its faces known from evidence; see :func:`find_faces`."""
        return find_faces(self, trials_by_commit, clean)


def find_faces(
    bug: BugSignature,
    trials_by_commit: Mapping[str, Sequence[TrialRecord]],
    clean: Collection[str],
) -> BugSignature:
    """``bug`` with the faces the evidence shows: a signature F the reproducing end never
    showed is the bug too when

    - it was seen (a reproduction without the probe's own verdict) at a commit shown to
      carry the bug: one with a reproduction whose signature is one of ``bug``'s core
      signatures (not one the probe called another failure), and
    - it was never seen (in any trial) at a commit on the clean side: ``clean``, the
      commits judged clean in this run and the clean end.

    Why both: a failure that shows next to the bug at a bug-carrying commit may be
    another face of it (the qcow2 crash as SIGSEGV, an assertion or lost data); one
    also seen where the bug is absent cannot be the bug, whatever else it is.  The rule
    cannot tell a face from another failure that only lives on the bug side; such a
    failure counts at commits that carry the bug anyway, which is the verdict they get.
    Faces are found afresh from the journal at each use, so a face later seen on the
    clean side stops counting from then on (a verdict already given stays).

    ``trials_by_commit``: the trials of the commits to look at (those judged in the
    run, the ends).  Nothing changes when ``bug`` matches anything already.
    """
    if bug.any_signature or not bug.signatures:
        return bug
    carriers: dict[str, int] = {}
    seen_at: dict[str, set[str]] = {}
    on_clean_side: dict[str, str] = {}
    for commit in sorted(trials_by_commit):
        trials = trials_by_commit[commit]
        core = sum(
            1
            for t in trials
            if t.outcome == Outcome.REPRODUCED
            and t.is_bug is not False
            and t.signature in bug.signatures
        )
        if core:
            carriers[commit] = core
        for t in trials:
            sig = t.signature
            if sig is None or sig in bug.signatures:
                continue
            if commit in clean:
                on_clean_side.setdefault(sig, commit)
            if core and t.outcome == Outcome.REPRODUCED and t.is_bug is None:
                seen_at.setdefault(sig, set()).add(commit)
    faces = dict(bug.faces)
    not_faces = dict(bug.not_faces)
    for sig, commits in seen_at.items():
        where = max(commits, key=lambda c: (carriers[c], c))
        if sig in on_clean_side:
            not_faces[sig] = (
                f"another failure: seen at {where[:12]}, which carries the bug, but also on"
                f" the clean side (at {on_clean_side[sig][:12]})"
            )
        else:
            k = carriers[where]
            faces[sig] = (
                f"a face of the bug: seen at {where[:12]}, which carries the bug ({k}"
                f" reproduction{'s' if k != 1 else ''} of the reproducing end's signature),"
                " never on the clean side"
            )
    for sig, commit in on_clean_side.items():
        not_faces.setdefault(
            sig,
            f"another failure: not shown by the reproducing end, and seen on the clean side"
            f" (at {commit[:12]})",
        )
    return BugSignature(bug.signatures, bug.any_signature, faces, not_faces)


def is_bug(trial: TrialRecord, bug: BugSignature | None) -> bool:
    """Whether a trial that would count as a reproduction is this bug.

    The probe's explicit verdict decides when it gave one (even with no
    ``bug`` known yet: a probe told what the bug looks like has said so);
    otherwise the signature is compared with ``bug``; with no ``bug`` every
    reproduction counts.
    """
    return why_bug(trial, bug)[0]


def why_bug(trial: TrialRecord, bug: BugSignature | None) -> tuple[bool, str]:
    """:func:`is_bug` and why, in words (the report's signatures section)."""
    if bug is None and trial.is_bug is None:
        return True, "no bug defined yet (the reproducing end is not known): every failure counts"
    return (bug or BugSignature()).why(trial.signature, trial.is_bug)


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
        # Outcomes are compared as the strings the journal stores (Outcome is a StrEnum):
        # every decision counts its commit's trials afresh, so no enum per trial.
        counts = {str(o): 0 for o in Outcome}
        n = 0
        reproduced = 0
        other = 0
        other_signatures: set[str] = set()
        counts_bug = (
            (Outcome.REPRODUCED, Outcome.HANG) if hang_as == "reproduced" else (Outcome.REPRODUCED,)
        )
        for t in trials:
            n += 1
            outcome = t.outcome
            if outcome not in counts:
                raise ValueError(f"{outcome!r} is not an Outcome")
            counts[outcome] += 1
            if outcome in counts_bug:
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
