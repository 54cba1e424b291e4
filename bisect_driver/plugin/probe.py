"""What a probe is: one trial on one built commit, returning an :class:`Outcome`.

Modelled on autobisect's Evaluator: a small base class whose one job is to run
a trial and say what it saw.  Statistics, journalling and bisecting are the
driver's business, never the probe's.
"""

from __future__ import annotations

from abc import abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from .base import Plugin


class Outcome(StrEnum):
    """The result of one trial."""

    CLEAN = "clean"  # the bug was not seen
    REPRODUCED = "reproduced"  # the bug was seen
    INCONCLUSIVE = "inconclusive"  # this trial could not tell (e.g. guest never reached the writes)
    HANG = "hang"  # the trial hit its timeout
    ERROR = "error"  # the probe itself failed; recorded, never counted as evidence


@dataclass
class TrialContext:
    commit: str
    artifact_dir: Path
    """The commit's cached build artifacts (read-only)."""
    index: int
    """Trial number for this commit and probe configuration (0-based, unique once recorded)."""
    work_dir: Path
    """Private, empty scratch directory for this trial; deleted after judgement."""
    evidence_dir: Path
    """Where to keep logs worth reading later (e.g. the serial log of a reproduction)."""
    timeout: float
    seed: int
    """Seed for the trial's randomness (kill timing...), recorded so a trial can be re-run."""


@dataclass
class TrialResult:
    outcome: Outcome
    duration: float = 0.0
    exit_status: int | None = None
    signal: int | None = None
    detail: str = ""
    """One line for a person: what was seen."""
    log_path: str | None = None
    signature: str | None = None
    """What failed, for a reproduction: one short line that is the same for two runs of
    one failure and differs between failures (docs/statistics.md, "Signatures")."""
    is_bug: bool | None = None
    """The probe's own verdict, when the user told it what the bug looks like (the
    command probe's --signature): True = the bug, False = another failure; None = let the
    driver compare signatures."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else worth keeping for a person (timings...); never read by the driver.
    (``extra["signature"]`` and ``extra["bug"]`` are still read when the typed fields are
    unset, for plug-ins written before them.)"""


class Probe(Plugin):
    """Base class of probes; subclasses are plug-ins chosen by name (entry points)."""

    kind: ClassVar[str] = "probe"
    default_timeout: ClassVar[float] = 300.0
    """Seconds before a trial counts as a hang, unless --trial-timeout says otherwise."""

    def prepare(self, cache_dir: Path) -> None:
        """Once per run, before any trial (e.g. build the guest kit).  Default: nothing."""

    def kit_files(self) -> dict[str, Path]:
        """After :meth:`prepare`: the files a trial on another host needs besides the
        commit's artifacts (the qcow2 probe's guest kernel and initramfs), by the name
        :meth:`use_kit` finds them under.  Sent to each worker once, by content digest
        (docs/cluster.md).  Default: none."""
        return {}

    def use_kit(self, kit_dir: Path | None, cache_dir: Path) -> None:
        """On a worker, instead of :meth:`prepare`: take the kit from ``kit_dir`` (the
        files of :meth:`kit_files`; None when there are none) and settle what depends
        on the host (its accelerator) in the worker's ``cache_dir``.  Default:
        :meth:`prepare` there."""
        self.prepare(cache_dir)

    def build_guest_kit(self, cache_dir: Path, force: bool = False) -> Path | None:
        """`bisect-qemu guest build`: build what the probe boots, if it boots anything.

        Returns the kit's directory, or None for a probe that has no guest."""
        return None

    @abstractmethod
    def run_trial(self, ctx: TrialContext) -> TrialResult:
        """Run one trial.  Must return within ``ctx.timeout`` (plus clean-up) and
        leave no process behind (use :func:`bisect_driver.plugin.proc.run_group`)."""

    def run_batch(self, contexts: list[TrialContext], jobs: int) -> list[TrialResult]:
        """Run several trials of one commit, up to ``jobs`` at once.

        Probes whose verification is cheaper in bulk (one guestfs launch for
        many images) override this.
        """
        if jobs <= 1 or len(contexts) <= 1:
            return [self._safe_trial(c) for c in contexts]
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            return list(pool.map(self._safe_trial, contexts))

    def _safe_trial(self, ctx: TrialContext) -> TrialResult:
        """A probe that raises is a probe error, not a crash of the driver."""
        try:
            return self.run_trial(ctx)
        except Exception as exc:  # noqa: BLE001 - recorded as evidence of a probe error
            return TrialResult(Outcome.ERROR, detail=f"probe raised {type(exc).__name__}: {exc}")
