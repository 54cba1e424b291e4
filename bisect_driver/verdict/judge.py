"""Judge one commit: build it, run trials until the statistics decide, record the verdict.

This is where build -> probe -> verdict meet.  A recorded verdict is final
for its run (replaying the bisect after a crash gets the same answer without a
single new trial); a build failure or the trial cap gives a SKIP.

What to do next at a commit (its verdict, more trials, a batch at the reference first,
a skip at the cap) is decided by verdict.core.judge_next; this class only fetches the
evidence, runs the batches it asks for and records the verdict.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from pathlib import Path

from bisect_driver.build.builder import Builder, BuildOutcome
from bisect_driver.probe.evidence import Evidence
from bisect_driver.probe.trials import TrialRunner, UnrunnableTrial
from bisect_driver.store.journal import Journal, VerdictRecord
from bisect_driver.verdict.core import (
    BACKGROUND_EVENT,
    Judged,
    Next,
    Policy,
    Reason,
    at_level,
    background_message,
    fresh_trials,
    haldane,
    judge_next,
    reference_commit,
    trial_cap,
    verdict_of,
    with_background,
)
from bisect_driver.verdict.stats import Decision, Reference, Verdict

__all__ = ["CommitTester", "Policy", "ProgressFn"]


def _pool(counts: dict[str, tuple[int, int]], skip: Collection[str | None]) -> Reference:
    """The summed (reproduced, counted) of the bug verdicts' commits not in ``skip``."""
    kept = [c for commit, c in counts.items() if commit not in skip]
    return Reference(sum(k for k, _n in kept), sum(n for _k, n in kept))


ProgressFn = Callable[[str, Evidence, str], None]


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
        """The reproducing end, whose trials start the steps' reference (core.reference_commit)."""
        return reference_commit(self._judged(self.journal.verdicts(self.reference_run)))

    @staticmethod
    def _judged(verdicts: list[VerdictRecord]) -> list[Judged]:
        return [Judged(v.commit, v.verdict, v.reason) for v in verdicts]

    def _bug_counts(self) -> tuple[list[Judged], dict[str, tuple[int, int]]]:
        """The run's verdicts, and (reproduced, counted) at each commit judged to carry the
        bug: one journal read for both the reference's choice and the pool (a step asks
        for its reference at every batch)."""
        verdicts = self.journal.verdicts(self.reference_run)
        counts = {}
        for v in verdicts:
            if v.verdict == Verdict.BUG:
                ev = self.runner.evidence(v.commit)
                counts[v.commit] = (ev.reproduced, ev.counted)
        return self._judged(verdicts), counts

    def reference(self, exclude: str | None = None) -> Reference:
        """The steps' reference for a soft CLEAN verdict: the pool of every commit judged to
        carry the bug (:meth:`pooled_reference`), corrected commits included; nothing
        before the reproducing end is decided (or while judging it).

        Why the pool and not the reproducing end alone (until issue 18): the end held
        about three reproductions in a low-rate hunt, and Fisher's test against three
        asks a clean step for about 1.15 times the end's trials, so the answer's own step
        cost 45-80 trials at 8 %.  The pool holds three times the reproductions at an
        unbiased rate (Haldane's estimate, :meth:`pooled_reference`); a soft verdict it
        makes wrong only costs trials, which the strict test and its corrections repair.
        (The pool of first reproductions as they stood biased the rate upwards and broke
        tests/test_statistics.py's bound on wrong soft verdicts, before Haldane's count.)
        Why not a corrected commit's own lower rate: core.reference_commit.
        """
        if self.policy.steady:
            return self.pooled_reference(exclude)
        judged, counts = self._bug_counts()
        end = reference_commit(judged)
        if end is None or end == exclude:
            return Reference(0, 0)
        return haldane(_pool(counts, {exclude}))

    def far_reference(self) -> Reference:
        """The reproducing end's trials: the rate the report calls the far end's and the
        drift flag compares the change's neighbour with (under --steady-rate the pool,
        which is that rate)."""
        if self.policy.steady:
            return self.pooled_reference()
        end = self.reference_commit()
        if end is None:
            return Reference(0, 0)
        ev = self.runner.evidence(end)
        return Reference(ev.reproduced, ev.counted)

    def pooled_reference(
        self, exclude: str | None = None, without: Collection[str] = ()
    ) -> Reference:
        """The bug's rate over every commit judged to carry it, as the steps' soft test
        and --steady-rate's strict test take it: :meth:`pooled_counts` by Haldane's count
        (core.haldane says why), growing as the hunt goes on."""
        return haldane(self.pooled_counts(exclude, without))

    def pooled_counts(self, exclude: str | None = None, without: Collection[str] = ()) -> Reference:
        """Reproductions and counted trials over every commit judged to carry the bug (but
        ``exclude`` and ``without``), as they stood: the default floor's estimate
        (stats.default_floor)."""
        _judged, counts = self._bug_counts()
        return _pool(counts, {exclude, *without})

    def calibrate_reference(self) -> bool:
        """Run a batch at the reference commit (core.judge_next asked for it); False when
        its build was evicted (rebuilding would move the bisect's checkout)."""
        commit = self.reference_commit()
        if commit is None:
            return False
        artifacts = self.builder.artifacts.lookup(commit)
        if artifacts is None:
            return False
        self.progress(commit, self.runner.evidence(commit), "calibrating")
        self.run_batch(commit, artifacts)
        return True

    def trial_cap(self, commit: str) -> int:
        """Counted trials after which an undecided commit is a skip (core.trial_cap)."""
        return trial_cap(self.policy, self.reference(exclude=commit))

    def decide(self, ev: Evidence, ref: Reference | None = None) -> Decision:
        ref = self.reference(exclude=ev.commit) if ref is None else ref
        return verdict_of(ev.reproduced, ev.counted, ref, self.policy)

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

    def adopt_background(self, counts: tuple[int, int]) -> None:
        """Decide from now on with the clean end's background ``counts`` (core.with_background)
        and store them with the run, so the step processes and a resumed run do too."""
        self.policy = with_background(self.policy, counts)
        self.journal.event(self.run_id, BACKGROUND_EVENT, background_message(counts))

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
            at_level(
                Policy(
                    alpha=alpha,
                    fp=self.policy.fp,
                    max_trials=max_trials or self.policy.max_trials * 2,
                    floor=floor,
                    background_lo=self.policy.background_lo,
                    background=self.policy.background,
                    fp_given=self.policy.fp_given,
                    steady=self.policy.steady,
                )
            ),
            self.progress,
        )
        other.reference_run = self.reference_run
        other.clean_tests_left = 1.0
        return other

    def chosen_by(self, commit: str) -> tuple[int, int]:
        """(reproduced, counted) of the trials that chose ``commit`` for a strict test:
        those of a step's CLEAN verdict there.  The strict test counts only the trials after
        them (core.fresh_trials says why); (0, 0) for the steps' own tester and for commits
        no step cleared (the revert check, backports)."""
        if self.policy.floor is None or self.run_id == self.reference_run:
            return 0, 0
        return self.cleared_by_step(commit)

    def cleared_by_step(self, commit: str) -> tuple[int, int]:
        """(reproduced, counted) of the step's CLEAN verdict at ``commit`` in the steps' run,
        the trials that made the bisect choose it (core.fresh_trials); (0, 0) when no step
        cleared it.  The strict test (:meth:`chosen_by`) and the look for a background
        after a correction (confirm.Confirmer.background_behind) leave them out."""
        step = self.journal.verdict(self.reference_run, commit)
        if step is None or step.verdict != Verdict.CLEAN:
            return 0, 0
        return fresh_trials(step.reproduced, step.trials)

    def judge(self, commit: str) -> VerdictRecord:
        """The verdict of ``commit`` for this run: recorded, or decided now."""
        existing = self.journal.verdict(self.run_id, commit)
        if existing is not None:
            return existing
        built = self.build(commit)
        ev = self.runner.evidence(commit)
        if not built.ok or built.artifact_dir is None:
            why = f"{Reason.BUILD}{built.record.status}: {built.record.detail}".strip()
            return self.record(ev, Verdict.SKIP, 1.0, why)
        can_calibrate = True
        k0, n0 = self.chosen_by(commit)
        while True:
            ref = self.reference(exclude=commit)
            step = judge_next(
                ev.reproduced - k0,
                ev.counted - n0,
                max(0, ev.trials - n0),
                ref,
                self.policy,
                clean_tests_left=self.clean_tests_left,
                can_calibrate=can_calibrate,
            )
            self.progress(commit, ev, step.verdict if step.action is Next.DECIDED else "undecided")
            if step.action is Next.DECIDED:
                return self.record(ev, step.verdict, step.error, step.reason)
            if step.action is Next.CALIBRATE:
                can_calibrate = self.calibrate_reference()
                continue
            try:
                ev = self.run_batch(commit, built.artifact_dir)
            except UnrunnableTrial as exc:
                return self.record(
                    self.runner.evidence(commit), Verdict.SKIP, 1.0, f"{Reason.UNRUNNABLE}{exc}"
                )
