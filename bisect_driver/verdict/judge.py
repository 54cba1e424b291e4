"""Judge one commit: build it, run trials until the statistics decide, record the verdict.

This is where build -> probe -> verdict meet.  A recorded verdict is final
for its run (replaying the bisect after a crash gets the same answer without a
single new trial); a build failure or the trial cap gives a SKIP.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bisect_driver.build.builder import Builder, BuildOutcome
from bisect_driver.probe.evidence import Evidence
from bisect_driver.probe.trials import TrialRunner
from bisect_driver.store.journal import Journal, VerdictRecord
from bisect_driver.verdict.stats import (
    Decision,
    Reference,
    Verdict,
    calibration_pays,
    clean_trials_needed,
    decide,
    decide_strict,
)


@dataclass
class Policy:
    alpha: float
    """Per-verdict error target."""
    fp: float = 0.0
    max_trials: int = 200
    """Counted trials after which an undecided commit is skipped."""
    floor: float | None = None
    """None: a bisect step's soft test against the reference.  A rate: the
    confirmation's strict test, CLEAN only if a bug at this rate would have shown."""
    strict_alpha: float | None = None
    """The confirmation's error target when its floor comes from the reference (calibrating
    the reference then also shortens the strict test); None when --min-rate fixes it."""
    anchor_alpha: float | None = None
    """Error target of the endpoints' verdicts, which anchor the whole hunt (None: ``alpha``);
    see stats.anchor_trials."""

    @property
    def max_attempts(self) -> int:
        """All trials, counted or not: stops a commit whose trials never conclude."""
        return self.max_trials * 2


ProgressFn = Callable[[str, Evidence, str], None]

MAX_CAP_FACTOR = 10
"""A step never runs more than this many times --max-trials."""

CORRECTED = "corrected by confirmation"
"""How a verdict the confirmation overturned starts its reason (bisect.confirm writes it)."""


class CommitTester:
    def __init__(
        self,
        run_id: str,
        journal: Journal,
        builder: Builder,
        runner: TrialRunner,
        policy: Policy,
        progress: ProgressFn | None = None,
    ) -> None:
        self.run_id = run_id
        self.reference_run = run_id
        """Run whose reproducing endpoint is the reference (confirmation uses the main run's)."""
        self.journal = journal
        self.builder = builder
        self.runner = runner
        self.policy = policy
        self.progress = progress or (lambda commit, ev, status: None)
        self.clean_tests_left = 2.0
        """Expected CLEAN verdicts still to come (set by the driver from the range size)."""

    def reference_commit(self) -> str | None:
        """The commit whose trials are the reference for a step's soft CLEAN verdict.

        The reproducing endpoint, until the confirmation corrects a step: a commit that
        looked clean but reproduced under the strict test carries the bug at a lower rate
        than the far end (the rate drifts toward the change).  From then on the
        lowest-rate such commit is the reference, so later steps near the change ask for
        as many clean trials as that rate needs: new evidence only lowers the reference.
        """
        endpoint = None
        lowest: tuple[float, str] | None = None
        for v in self.journal.verdicts(self.reference_run):
            if v.verdict == Verdict.BUG and v.reason == "endpoint":
                endpoint = v.commit
            elif v.verdict == Verdict.BUG and v.reason.startswith(CORRECTED):
                ev = self.runner.evidence(v.commit)
                if ev.counted and ev.reproduced:
                    rate = ev.reproduced / ev.counted
                    if lowest is None or rate < lowest[0]:
                        lowest = (rate, v.commit)
        if endpoint is not None and lowest is not None:
            ev = self.runner.evidence(endpoint)
            if ev.counted and lowest[0] < ev.reproduced / ev.counted:
                return lowest[1]
        return endpoint

    def reference(self, exclude: str | None = None) -> Reference:
        """The reproducing endpoint's trials.

        Only the endpoint: commits judged bug-present stop at their first
        reproduction, and pooling them would bias the rate upwards (measured:
        it pushed the wrong-verdict rate over its target; see
        tests/test_statistics.py).  The reference grows instead by topping up
        the endpoint while that pays (:meth:`top_up_reference`).
        """
        commit = self.reference_commit()
        if commit is None or commit == exclude:
            return Reference(0, 0)
        ev = self.runner.evidence(commit)
        return Reference(ev.reproduced, ev.counted)

    def top_up_reference(self, ref: Reference) -> bool:
        """Run a batch at the reference endpoint if that saves trials overall."""
        commit = self.reference_commit()
        if commit is None or not calibration_pays(
            ref, self.policy.alpha, self.clean_tests_left, strict_alpha=self.policy.strict_alpha
        ):
            return False
        artifacts = self.builder.artifacts.lookup(commit)
        if artifacts is None:  # evicted: rebuilding would move the bisect's checkout
            return False
        ev = self.runner.evidence(commit)
        if ev.counted >= self.policy.max_trials * 2:
            return False
        self.progress(commit, ev, "calibrating")
        self.run_batch(commit, artifacts)
        return True

    def trial_cap(self, commit: str) -> int:
        """Counted trials after which an undecided commit is a skip.

        --max-trials, or for a step, twice what its soft test needs against the current
        reference when that is more: after a correction lowered the reference (drift),
        steps near the change may spend more trials rather than turn into skips.
        """
        cap = self.policy.max_trials
        if self.policy.floor is None:
            ref = self.reference(exclude=commit)
            if ref.reproduced:
                need = clean_trials_needed(ref, self.policy.alpha, limit=MAX_CAP_FACTOR * cap)
                cap = max(cap, 2 * need)
        return cap

    def decide(self, ev: Evidence, ref: Reference | None = None) -> Decision:
        p = self.policy
        if p.floor is not None:
            return decide_strict(ev.reproduced, ev.counted, p.floor, p.alpha, p.fp)
        ref = self.reference(exclude=ev.commit) if ref is None else ref
        return decide(ev.reproduced, ev.counted, ref, self.policy.alpha, self.policy.fp)

    def record(self, ev: Evidence, verdict: str, error: float, reason: str) -> VerdictRecord:
        rec = VerdictRecord(
            commit=ev.commit,
            verdict=verdict,
            trials=ev.counted,
            reproduced=ev.reproduced,
            error=error,
            reason=reason,
            decided=time.time(),
        )
        self.journal.record_verdict(self.run_id, rec)
        return rec

    def build(self, commit: str) -> BuildOutcome:
        return self.builder.ensure(commit)

    def run_batch(self, commit: str, artifact_dir: Path, count: int | None = None) -> Evidence:
        self.runner.run(commit, artifact_dir, count or self.runner.jobs)
        return self.runner.evidence(commit)

    def with_alpha(
        self,
        run_id: str,
        alpha: float,
        floor: float | None = None,
        max_trials: int | None = None,
    ) -> CommitTester:
        """A tester for the same commits under another run id and error target
        (confirmation): trials are shared, verdicts are kept apart.  With ``floor`` its
        CLEAN verdicts are strict (see :class:`Policy`)."""
        other = CommitTester(
            run_id,
            self.journal,
            self.builder,
            self.runner,
            Policy(
                alpha=alpha,
                fp=self.policy.fp,
                max_trials=max_trials or self.policy.max_trials * 2,
                floor=floor,
            ),
            self.progress,
        )
        other.reference_run = self.reference_run
        other.clean_tests_left = 1.0
        return other

    def judge(self, commit: str) -> VerdictRecord:
        """The verdict of ``commit`` for this run: recorded, or decided now."""
        existing = self.journal.verdict(self.run_id, commit)
        if existing is not None:
            return existing
        built = self.build(commit)
        ev = self.runner.evidence(commit)
        if not built.ok or built.artifact_dir is None:
            why = f"build {built.record.status}: {built.record.detail}".strip()
            return self.record(ev, Verdict.SKIP, 1.0, why)
        while True:
            decision = self.decide(ev)
            self.progress(commit, ev, decision.verdict)
            if decision.verdict != Verdict.UNDECIDED:
                return self.record(ev, decision.verdict, decision.error, "decided")
            cap = self.trial_cap(commit)
            if ev.counted >= cap or ev.trials >= 2 * cap:
                reason = f"undecided after {ev.counted} counted of {ev.trials} trials"
                return self.record(ev, Verdict.SKIP, decision.error, reason)
            soft = self.policy.floor is None
            if (
                soft
                and ev.reproduced == 0
                and self.top_up_reference(self.reference(exclude=commit))
            ):
                continue
            ev = self.run_batch(commit, built.artifact_dir)
