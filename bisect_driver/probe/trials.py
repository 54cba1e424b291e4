"""Probe stage: run more trials of one commit and record each one as it ends.

Trial indices continue from what the journal holds, so a resumed run never
repeats a recorded trial; a trial that was running when the power went is
simply not recorded, and its index is used again.  Each trial gets a private
scratch dir (deleted after judgement) and a seed derived from commit and
index, so any trial can be re-run by hand.

Each reproduction is recorded with what it saw (the probe's
``TrialResult.signature``) and the probe's own verdict (``TrialResult.is_bug``), and
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

CLEAN_VERDICT = "clean"
"""The journal's word for a commit judged clean (``verdict.stats.Verdict.CLEAN``, spelled
here because the verdict layer sits above this one)."""


class UnrunnableTrial(Exception):
    """A trial of this commit cannot be run where trials run: on a cluster, it killed
    every worker it was given (docs/cluster.md, "Faults").  The commit is a skip with
    this reason, not an endless retry."""


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
        self.verdict_runs: tuple[str, ...] = ()
        """Runs whose recorded verdicts say which commits were judged (the run and its
        confirmation): with :attr:`bug_end` set, faces of the bug are looked for at their
        commits, and those judged clean are the clean side.  Empty: no faces."""
        self._bug_cache: tuple[object, BugSignature] | None = None
        self._named_cache: dict[str, tuple[int, list[TrialRecord]]] = {}
        self._evidence_cache: dict[str, tuple[object, Evidence]] = {}
        """(journal version and what defines the bug, the bug): see :attr:`bug`."""
        self.ends: tuple[str, str] | None = None
        """The run's two ends; the one that is not :attr:`bug_end` is the clean end,
        on the clean side before its own verdict is recorded."""
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
        then on, not another failure because the end had not shown it yet.  With
        :attr:`verdict_runs` set too, a face the end never showed counts once it
        was seen at a commit shown to carry the bug and never on the clean side
        (:func:`~bisect_driver.probe.evidence.find_faces`).  Both are read from
        the journal at each use (a few small indexed queries per judged commit),
        so every process of a run counts the same failures as the bug.
        """
        if self.bug_end is None:
            return self._bug
        key = (self.journal.version(), self.bug_end, self.ends, self.verdict_runs)
        if self._bug_cache is not None and self._bug_cache[0] == key:
            return self._bug_cache[1]
        bug = self._derive_bug(self.bug_end)
        self._bug_cache = (key, bug)
        return bug

    @bug.setter
    def bug(self, bug: BugSignature | None) -> None:
        if bug is not None and not isinstance(bug, BugSignature):
            raise TypeError(f"bug must be a BugSignature or None, not {type(bug).__name__}")
        self._bug = bug
        self.bug_end = None

    def _named(self, commit: str) -> list[TrialRecord]:
        """The commit's trials that can say anything about which failures are the bug
        (those with a signature, and reproductions), remembered per number of trials:
        between two derivations of the bug only the commit under test has new ones."""
        records = self.records(commit)
        seen = self._named_cache.get(commit)
        if seen is None or seen[0] != len(records):
            named = [t for t in records if t.signature is not None or t.outcome == "reproduced"]
            seen = (len(records), named)
            self._named_cache[commit] = seen
        return seen[1]

    def _derive_bug(self, bug_end: str) -> BugSignature:
        """The bug from the journal: the reproducing end's signatures and the faces."""
        core = BugSignature.from_trials(self._named(bug_end))
        if core.any_signature or not self.verdict_runs:
            return core
        clean: set[str] = set()
        judged: set[str] = set()
        for run in self.verdict_runs:
            for v in self.journal.verdicts(run):
                judged.add(v.commit)
                if v.verdict == CLEAN_VERDICT:
                    clean.add(v.commit)
        clean_end = self.clean_end
        if clean_end is not None:
            clean.add(clean_end)
            judged.add(clean_end)
        judged.discard(bug_end)
        return core.with_faces({c: self._named(c) for c in judged}, clean)

    @property
    def clean_end(self) -> str | None:
        """The end that is not :attr:`bug_end` (None while either is unknown)."""
        if self.ends is None or self.bug_end not in self.ends:
            return None
        old, new = self.ends
        return new if self.bug_end == old else old

    def records(self, commit: str) -> list[TrialRecord]:
        return self.journal.trials(commit, self.recipe_key, self.probe_key)

    def evidence(self, commit: str, bug: BugSignature | None = None) -> Evidence:
        """The commit's trials counted against :attr:`bug` (or ``bug``, when given: a
        caller counting many commits computes the bug once).  Remembered per commit while
        its trials and the bug stay the same (trials are only appended, so their number
        tells): the reference is counted at every decision of every step."""
        records = self.records(commit)
        counted_as = bug if bug is not None else self.bug
        key = (len(records), counted_as, self.hang_as)
        hit = self._evidence_cache.get(commit)
        if hit is not None and hit[0] == key:
            return hit[1]
        ev = Evidence.from_trials(commit, records, self.hang_as, counted_as)
        self._evidence_cache[commit] = (key, ev)
        return ev

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

    def _record(
        self,
        ctx: TrialContext,
        result: TrialResult,
        started: float,
        worker: str | None = None,
        host: str | None = None,
    ) -> TrialRecord:
        signature = result.signature or result.extra.get("signature")
        verdict = result.is_bug if result.is_bug is not None else result.extra.get("bug")
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
            worker=worker,
            host=host,
        )
        self.journal.record_trial(self.recipe_key, self.probe_key, rec)
        return rec
