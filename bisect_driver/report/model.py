"""The report as a typed value: what report.json, report.md and report.html all show.

Why a model: the report used to be one untyped dict that ``collect`` filled
and two renderers indexed by string keys, so a renamed key broke a renderer
only at run time, at the end of an overnight run.  Now ``collect`` builds a
:class:`Report` once, the renderers read its typed fields, and
:meth:`Report.to_json` is the one place that spells report.json's keys
(schema in docs/report.md; bump :data:`SCHEMA_VERSION` when it changes).

The values are frozen: a renderer cannot change what another one shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bisect_driver.backport.model import BackportResult
from bisect_driver.bisect.checks import Check
from bisect_driver.bisect.direction import Direction
from bisect_driver.bisect.history import CommitInfo
from bisect_driver.report.where import ClusterInfo
from bisect_driver.verdict.stats import Verdict

SCHEMA_VERSION = 5
"""report.json's ``schema``; docs/report.md describes this version."""


@dataclass(frozen=True)
class CandidateInfo:
    """The answer commit as a backporter needs it: who, when, what, and how it got in."""

    commit: str
    """Full SHA."""
    subject: str
    author: str
    date: str
    message: str
    diffstat: str
    first_tag: str | None
    """First release tag containing the commit, or None when none does yet."""
    parents: tuple[str, ...]
    merged_by: str | None = None
    """The merge on the new end's first-parent line that brought the commit in."""
    brings_in: tuple[str, ...] = ()
    """For a merge answer (--first-parent): the commits it brought in."""

    @classmethod
    def of(cls, info: CommitInfo) -> CandidateInfo:
        """From history's description of the commit (bisect.history.describe)."""
        return cls(
            commit=info.sha,
            subject=info.subject,
            author=info.author,
            date=info.date,
            message=info.message,
            diffstat=info.diffstat,
            first_tag=info.first_tag,
            parents=tuple(info.parents),
            merged_by=info.merged_by,
            brings_in=tuple(info.brings_in),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "subject": self.subject,
            "author": self.author,
            "date": self.date,
            "message": self.message,
            "diffstat": self.diffstat,
            "first_tag": self.first_tag,
            "parents": list(self.parents),
            "merged_by": self.merged_by,
            "brings_in": list(self.brings_in),
        }


@dataclass(frozen=True)
class EvidenceRow:
    """One tested commit: its trials, its verdicts and its build, for the evidence table.

    ``verdict`` is None for a commit judged only by the confirmation (e.g. a
    backport commit), which then has ``confirm_verdict`` instead.
    """

    commit: str
    subject: str
    position: int | None
    """Position in the range in topological order, 0 = the old end; None when outside it."""
    trials: int
    counted: int
    reproduced: int
    inconclusive: int
    hangs: int
    errors: int
    rate: float | None
    """reproduced / counted, None before any counted trial."""
    rate_ci95: tuple[float, float]
    """95 % Clopper-Pearson interval of the rate ((0, 1) without trials)."""
    verdict: Verdict | None = None
    error_bound: float | None = None
    reason: str = ""
    confirm_verdict: Verdict | None = None
    confirm_error_bound: float | None = None
    build: str | None = None
    """The build's status, None when the commit was never built with this recipe."""
    build_detail: str | None = None
    build_seconds: float | None = None
    fingerprint: str | None = None
    other: int = 0
    """Reproductions whose signature is not the bug's ("other failures"): never counted."""
    other_signatures: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "subject": self.subject,
            "position": self.position,
            "trials": self.trials,
            "counted": self.counted,
            "reproduced": self.reproduced,
            "inconclusive": self.inconclusive,
            "hangs": self.hangs,
            "errors": self.errors,
            "rate": self.rate,
            "rate_ci95": list(self.rate_ci95),
            "verdict": _opt_str(self.verdict),
            "error_bound": self.error_bound,
            "reason": self.reason,
            "confirm_verdict": _opt_str(self.confirm_verdict),
            "confirm_error_bound": self.confirm_error_bound,
            "build": self.build,
            "build_detail": self.build_detail,
            "build_seconds": self.build_seconds,
            "fingerprint": self.fingerprint,
            "other": self.other,
            "other_signatures": list(self.other_signatures),
        }


@dataclass(frozen=True)
class SignatureRow:
    """One failure seen at one commit: what it was, how often, and whether it counted.

    A reader checks here that the run hunted the right failure: every signature
    the reproductions named, per commit, and the rule that made it the bug or
    another failure (docs/statistics.md, "Signatures: what counts as the bug").
    """

    commit: str
    signature: str | None
    """The reproductions' signature; None for those that named nothing."""
    count: int
    """Reproductions at ``commit`` with this signature (and this verdict)."""
    is_bug: bool
    """Whether they counted as the bug."""
    why: str
    """Why: shown by the reproducing end, a face of the bug (seen at a commit that carries
    it, never on the clean side), another failure (and where it was seen), or the probe's
    own verdict (``--signature``)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "signature": self.signature,
            "count": self.count,
            "is_bug": self.is_bug,
            "why": self.why,
        }


@dataclass(frozen=True)
class PluginInfo:
    """A recipe or probe as it ran: enough to rebuild the same one."""

    name: str
    key: str
    """The key its evidence is stored under in the journal."""
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key, "settings": self.settings}


@dataclass(frozen=True)
class Statistics:
    """The statistics settings the confidence depends on (from the run's Settings)."""

    confidence: float
    false_positive_rate: float
    max_trials: int
    jobs: int
    hang_as: str
    trial_timeout: float | None
    build_timeout: float

    def to_json(self) -> dict[str, Any]:
        return {
            "confidence": self.confidence,
            "false_positive_rate": self.false_positive_rate,
            "max_trials": self.max_trials,
            "jobs": self.jobs,
            "hang_as": self.hang_as,
            "trial_timeout": self.trial_timeout,
            "build_timeout": self.build_timeout,
        }


@dataclass(frozen=True)
class Toolchain:
    """Host tools and machine, each as one line: a reader reproducing the run compares them."""

    cc: str
    git: str
    python: str
    kernel: str
    machine: str

    def to_json(self) -> dict[str, Any]:
        return {
            "cc": self.cc,
            "git": self.git,
            "python": self.python,
            "kernel": self.kernel,
            "machine": self.machine,
        }


@dataclass(frozen=True)
class Environment:
    """Where and how the run happened: plug-ins, fix-ups, statistics, host."""

    recipe: PluginInfo
    fixups_applied_to_candidate: tuple[str, ...]
    probe: PluginInfo
    statistics: Statistics
    toolchain: Toolchain

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.to_json(),
            "fixups_applied_to_candidate": list(self.fixups_applied_to_candidate),
            "probe": self.probe.to_json(),
            "statistics": self.statistics.to_json(),
            "toolchain": self.toolchain.to_json(),
        }


@dataclass(frozen=True)
class ConfidenceBasis:
    """What the answer's confidence assumes and what the run measured to check it."""

    floor: float | None
    """The lowest rate a bug-carrying commit is assumed to reach; below it, no claim."""
    floor_source: str
    near: tuple[int, int]
    """(reproduced, counted) at the bug-carrying neighbour(s) of the answer."""
    far: tuple[int, int]
    """(reproduced, counted) at the reproducing end."""
    drift: str | None
    background: str | None
    """A sentence when the hunt decided with a background failure rate at the clean end."""
    error_bound: float | None
    unconfirmed: tuple[str, ...]
    """Why no confidence is claimed (exit 8); empty when the answer is confirmed."""

    def to_json(self) -> dict[str, Any]:
        return {
            "floor": self.floor,
            "floor_source": self.floor_source,
            "near": list(self.near),
            "far": list(self.far),
            "drift": self.drift,
            "background": self.background,
            "error_bound": self.error_bound,
            "unconfirmed": list(self.unconfirmed),
        }


@dataclass(frozen=True)
class Report:
    """Everything one run's report says; built by report.collect, read by the renderers.

    Fields follow report.json's keys (docs/report.md).  Values a run does not
    have yet (an interrupted or still running run) are None or empty, so a
    report can be written at any moment.
    """

    run_id: str
    status: str | None
    """The journal's run status: running, done, interrupted, failed."""
    candidate: CandidateInfo | None
    """The answer when there is exactly one candidate."""
    candidates: tuple[str, ...]
    direction: Direction | None
    terms: tuple[str, str] | None
    """git's (old, new) terms; None before the run stored a result."""
    confidence: float
    confidence_method: str
    basis: ConfidenceBasis | None
    """The floor, the rates next to the answer and at the far end, drift, and why an
    answer is not confirmed; None for a run without a result yet."""
    confirmed: bool
    corrected: tuple[str, ...]
    contradiction: str | None
    checks: tuple[Check, ...]
    confirmation_rounds: tuple[tuple[Check, ...], ...]
    alpha_per_verdict: float
    steps: int
    """Commits judged besides the two ends."""
    trials: int
    good: str
    bad: str
    good_ref: str
    bad_ref: str
    range_size: int
    evidence: tuple[EvidenceRow, ...]
    bisect_log: str
    command: str
    """The command line that started the run; rerunning it resumes."""
    wall_seconds: float | None
    environment: Environment
    generated: str
    """When the report was written (local time, for a person)."""
    backports: tuple[BackportResult, ...] = ()
    """Fix hunts: the backport onto each REF."""
    signatures: tuple[SignatureRow, ...] = ()
    """Every failure the reproductions named, per commit (in ``evidence``'s order), and
    whether it counted as the bug and why."""
    cluster: ClusterInfo | None = None
    """Where trials and builds ran, with --scheduler (report.where); None: this machine."""

    @property
    def resume_command(self) -> str:
        """Same as :attr:`command`: a run resumes by being started again."""
        return self.command

    def to_json(self) -> dict[str, Any]:
        """report.json's content, key for key as documented in docs/report.md."""
        return {
            "schema": SCHEMA_VERSION,
            "run_id": self.run_id,
            "status": self.status,
            "candidate": self.candidate.to_json() if self.candidate else None,
            "candidates": list(self.candidates),
            "direction": _opt_str(self.direction),
            "terms": list(self.terms) if self.terms is not None else None,
            "confidence": self.confidence,
            "confidence_method": self.confidence_method,
            "basis": self.basis.to_json() if self.basis else None,
            "confirmed": self.confirmed,
            "corrected": list(self.corrected),
            "contradiction": self.contradiction,
            "checks": [c.to_json() for c in self.checks],
            "confirmation_rounds": [[c.to_json() for c in r] for r in self.confirmation_rounds],
            "alpha_per_verdict": self.alpha_per_verdict,
            "steps": self.steps,
            "trials": self.trials,
            "good": self.good,
            "bad": self.bad,
            "good_ref": self.good_ref,
            "bad_ref": self.bad_ref,
            "range_size": self.range_size,
            "evidence": [e.to_json() for e in self.evidence],
            "bisect_log": self.bisect_log,
            "command": self.command,
            "resume_command": self.resume_command,
            "wall_seconds": self.wall_seconds,
            "environment": self.environment.to_json(),
            "generated": self.generated,
            "backports": [b.to_json() for b in self.backports],
            "signatures": [s.to_json() for s in self.signatures],
            "cluster": self.cluster.to_json() if self.cluster else None,
        }


def render_json(report: Report) -> str:
    """report.json's text: indented for people who open it, newline-terminated."""
    return json.dumps(report.to_json(), indent=2) + "\n"


def _opt_str(value: str | None) -> str | None:
    """An enum value as the plain string JSON stores (None stays None)."""
    return None if value is None else str(value)
