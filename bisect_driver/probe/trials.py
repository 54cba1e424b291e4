"""Probe stage: run more trials of one commit and record each one as it ends.

Trial indices continue from what the journal holds, so a resumed run never
repeats a recorded trial; a trial that was running when the power went is
simply not recorded, and its index is used again.  Each trial gets a private
scratch dir (deleted after judgement) and a seed derived from commit and
index, so any trial can be re-run by hand.

Each reproduction is recorded with what it saw (the probe's
``extra["signature"]``) and the probe's own verdict (``extra["bug"]``), and
evidence is counted against the runner's :attr:`TrialRunner.bug`: the
failures that are this bug (docs/statistics.md, "Signatures: what counts as
the bug").
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path

from bisect_driver.plugin.probe import Outcome, Probe, TrialContext, TrialResult
from bisect_driver.probe.evidence import BugSignature, Evidence
from bisect_driver.store.disk import check_free
from bisect_driver.store.journal import Journal, TrialRecord
from bisect_driver.store.runstatus import TRIALS, StatusFile

SIGNATURE_MAX = 200
"""Signatures are one short line; a longer one from a plug-in is cut, not refused."""


def trial_seed(commit: str, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{commit}:{index}".encode()).digest()[:4], "big")


class TrialRunner:
    def __init__(
        self,
        journal: Journal,
        probe: Probe,
        recipe_key: str,
        evidence_dir: Path,
        jobs: int = 1,
        trial_timeout: float = 300.0,
        hang_as: str = "inconclusive",
        scratch_root: Path | None = None,
        min_free: int = 0,
        bug: BugSignature | None = None,
        status: StatusFile | None = None,
    ) -> None:
        self.journal = journal
        self.probe = probe
        self.probe_key = probe.key()
        self.recipe_key = recipe_key
        self.evidence_dir = evidence_dir
        self.jobs = max(1, jobs)
        self.trial_timeout = trial_timeout
        self.hang_as = hang_as
        self.scratch_root = scratch_root
        self.min_free = min_free
        self._bug = bug
        self.bug_end: str | None = None
        """The reproducing end: when set, the bug is whatever it has shown so far."""
        self.status = status
        """The run's shared status: trials on which commit, how many, how they went."""

    @property
    def bug(self) -> BugSignature | None:
        """Which reproductions count as the bug; None = every one the probe did not
        itself call another failure.

        The driver sets it once the reproducing end is known
        (``runner.bug = BugSignature.from_trials(runner.records(end))``); from
        then on :meth:`evidence` counts reproductions with another signature as
        ``other``, never as the bug.  It changes only how recorded trials are
        counted, never what is recorded, so it can be set, changed or cleared
        at any time.

        With :attr:`bug_end` set, the bug is recomputed from the reproducing end's
        trials at each use: a face of the bug the end shows later (the qcow2 crash
        as an abort, as a corrupt image, as lost data) is the bug everywhere from
        then on, not another failure because the end had not shown it yet.
        """
        if self.bug_end is not None:
            return BugSignature.from_trials(self.records(self.bug_end))
        return self._bug

    @bug.setter
    def bug(self, bug: BugSignature | None) -> None:
        if bug is not None and not isinstance(bug, BugSignature):
            raise TypeError(f"bug must be a BugSignature or None, not {type(bug).__name__}")
        self._bug = bug
        self.bug_end = None

    def records(self, commit: str) -> list[TrialRecord]:
        return self.journal.trials(commit, self.recipe_key, self.probe_key)

    def evidence(self, commit: str) -> Evidence:
        return Evidence.from_trials(commit, self.records(commit), self.hang_as, self.bug)

    def run(self, commit: str, artifact_dir: Path, count: int) -> list[TrialRecord]:
        """Run ``count`` more trials (``jobs`` at a time) and record them."""
        existing = self.records(commit)
        first = max((t.idx for t in existing), default=-1) + 1
        commit_evidence = self.evidence_dir / commit[:12]
        check_free(self.scratch_root or Path(tempfile.gettempdir()), self.min_free, "trials")
        if self.scratch_root is not None:
            self.scratch_root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="trials-", dir=self.scratch_root))
        contexts = []
        for index in range(first, first + count):
            work = scratch / f"trial-{index}"
            work.mkdir()
            contexts.append(
                TrialContext(
                    commit=commit,
                    artifact_dir=artifact_dir,
                    index=index,
                    work_dir=work,
                    evidence_dir=commit_evidence,
                    timeout=self.trial_timeout,
                    seed=trial_seed(commit, index),
                )
            )
        started = time.time()
        self._show(commit, batch=count, batch_since=started)
        try:
            results = self.probe.run_batch(contexts, self.jobs)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        recorded = []
        for ctx, result in zip(contexts, results, strict=True):
            rec = self._record(ctx, result, started)
            recorded.append(rec)
        self._show(commit, batch=0, batch_since=None)
        return recorded

    def _show(self, commit: str, **batch: object) -> None:
        """Tell the run's status about the trials on ``commit`` (counted as the run counts
        them: reproductions of another failure are "other")."""
        if self.status is None:
            return
        ev = self.evidence(commit)
        current = self.status.read()
        since = time.time()
        if current is not None and current.commit == commit and current.doing == TRIALS:
            since = current.doing_since or since  # one commit's batches are one activity
        self.status.update(
            commit=commit,
            doing=TRIALS,
            doing_since=since,
            trials_done=ev.trials,
            reproduced=ev.reproduced,
            other=ev.other,
            **batch,
        )

    def _record(self, ctx: TrialContext, result: TrialResult, started: float) -> TrialRecord:
        signature = result.extra.get("signature")
        verdict = result.extra.get("bug")
        rec = TrialRecord(
            commit=ctx.commit,
            idx=ctx.index,
            outcome=str(Outcome(result.outcome)),
            exit_status=result.exit_status,
            signal=result.signal,
            duration=result.duration,
            started=started,
            seed=ctx.seed,
            detail=result.detail[:500],
            log_path=result.log_path,
            signature=str(signature)[:SIGNATURE_MAX] if signature else None,
            is_bug=verdict if isinstance(verdict, bool) else None,
        )
        self.journal.record_trial(self.recipe_key, self.probe_key, rec)
        return rec
