"""The probe stage on a cluster: the same runner, with each trial sent to a worker.

Each trial is one Dask task.  The driver assigns its index and seed before it is
sent and records it when its answer comes back, so:

- a worker that dies mid-trial loses that trial: Dask runs the task again on another
  worker (same index, same seed), and it is recorded once, when it finishes;
- a task that kills every worker it is given (``distributed.scheduler.allowed-failures``,
  3 by default) ends as :class:`~bisect_driver.probe.trials.UnrunnableTrial`: the commit
  is a skip with the reason;
- the scheduler lost mid-run is a :class:`~bisect_driver.plugin.errors.ClusterError`:
  what was recorded stays, and rerunning the command resumes from the journal;
- a killed driver records nothing more: only the driver writes the journal, and its
  tasks are released with its connection.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections import defaultdict
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

from bisect_driver.cluster import tasks
from bisect_driver.cluster.connect import Cluster, one_line
from bisect_driver.cluster.payload import PayloadMissing, PayloadRef, Shipper
from bisect_driver.plugin.errors import ClusterError
from bisect_driver.plugin.options import options_to_json
from bisect_driver.plugin.probe import Outcome, TrialContext, TrialResult
from bisect_driver.probe.trials import TrialRunner, UnrunnableTrial, trial_seed
from bisect_driver.store.disk import check_free
from bisect_driver.store.journal import TrialRecord

PAYLOAD_EVENT = "payload"
"""Journal event: a payload (digest) unpacked into a worker's cache, and which worker."""
RESEND_MAX = 2
"""Times a trial the scheduler dropped while connected is sent again."""
TRIAL_PRIORITY = 10
"""Dask priority of trials: above builds, so the commit being judged never waits for a
speculative build that has not started (a running build is never interrupted)."""


def scheduler_gone(client: Any, exc: BaseException) -> bool:
    """Whether a dropped task means the scheduler is gone (not one task or worker)."""
    return client.status != "running" or "connection-lost" in str(exc)


def _killed_worker(futures: dict[Any, int]) -> Any:
    """A future of the batch that ended in KilledWorker, if any."""
    from distributed.scheduler import KilledWorker

    for fut in futures:
        if fut.status == "error" and isinstance(fut.exception(), KilledWorker):
            return fut
    return None


class ClusterTrialRunner(TrialRunner):
    """:class:`TrialRunner` whose trials run on the cluster's workers."""

    def __init__(self, *args: Any, cluster: Cluster, probe_name: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cluster = cluster
        self.jobs = cluster.slots
        self.probe_name = probe_name
        self.shipper = Shipper(cluster.client)
        self._kit: tuple[PayloadRef | None] | None = None

    def kit(self) -> PayloadRef | None:
        """The probe's kit (after prepare), shipped once per process."""
        if self._kit is None:
            files = self.probe.kit_files()
            if not files:
                self._kit = (None,)
            else:
                with tempfile.TemporaryDirectory(prefix="bq-kit-") as tmp:
                    for name, path in files.items():
                        shutil.copy2(Path(path).resolve(), Path(tmp) / name)
                    self._kit = (self.shipper.ship(Path(tmp)),)
        return self._kit[0]

    def run(self, commit: str, artifact_dir: Path, count: int) -> list[TrialRecord]:
        """Run ``count`` more trials on the workers and record each as it ends."""
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        existing = self.records(commit)
        first = max((t.idx for t in existing), default=-1) + 1
        check_free(self.evidence_dir.parent, self.min_free, "trials")
        client = self.cluster.client
        try:
            artifact = self.shipper.ship(artifact_dir)
            kit = self.kit()
            refs = [artifact] + ([kit] if kit is not None else [])
            workers = frozenset(client.scheduler_info(n_workers=-1)["workers"])
            everywhere = self.shipper.everywhere(refs, workers)
        except (OSError, TimeoutError, CancelledError) as exc:
            raise self._lost(exc) from None
        spec = {"probe": self.probe_name, "probe_options": self._probe_options()}

        def submit(index: int, with_data: bool) -> Any:
            ctx = {
                "commit": commit,
                "index": index,
                "timeout": self.trial_timeout,
                "seed": trial_seed(commit, index),
            }
            data = [self.shipper.data(r) if with_data else None for r in refs]
            return client.submit(
                tasks.run_trial,
                dict(spec, ctx=ctx),
                artifact,
                kit,
                *data,
                key=f"bq-trial-{commit[:12]}-{index}-{time.time_ns()}",
                pure=False,
                priority=TRIAL_PRIORITY,
            )

        futures: dict[Any, int] = {}
        resent: dict[int, int] = defaultdict(int)
        started = time.time()
        self._show(commit, batch=count, batch_since=started)
        recorded = []
        try:
            for index in range(first, first + count):
                futures[submit(index, not everywhere)] = index
            pending = as_completed(list(futures), loop=client.loop)  # type: ignore[no-untyped-call]
            for fut in pending:
                index = futures[fut]
                try:
                    answer = fut.result()
                except PayloadMissing:
                    again = submit(index, True)  # a worker that joined after the check
                    futures[again] = index
                    pending.add(again)  # type: ignore[no-untyped-call]
                    continue
                except KilledWorker as exc:
                    raise UnrunnableTrial(
                        f"trial {index} of {commit[:12]} killed every worker that ran it"
                        f" ({one_line(exc)})"
                    ) from None
                except (CancelledError, OSError, TimeoutError) as exc:
                    if scheduler_gone(client, exc):
                        raise self._lost(exc) from None
                    # Connected still: the scheduler dropped the task: its payload's only
                    # copy died with a worker ("lost dependencies"), or, after a sibling's
                    # KilledWorker, it forgot the batch's other tasks.  Send it again (the
                    # payload scattered anew), a bounded number of times.
                    killer = _killed_worker(futures)
                    if killer is not None:
                        raise UnrunnableTrial(
                            f"trial {futures[killer]} of {commit[:12]} killed every worker"
                            f" that ran it ({one_line(killer.exception())})"
                        ) from None
                    if resent[index] >= RESEND_MAX:
                        raise UnrunnableTrial(
                            f"trial {index} of {commit[:12]} was lost with its worker"
                            f" {resent[index] + 1} times ({one_line(exc)})"
                        ) from None
                    resent[index] += 1
                    again = submit(index, True)
                    futures[again] = index
                    pending.add(again)  # type: ignore[no-untyped-call]
                    continue
                recorded.append(self._record_answer(commit, index, answer, started))
        finally:
            left = [f for f in futures if not f.done()]
            if left:
                with contextlib.suppress(Exception):  # the connection may be gone already
                    client.cancel(left)
        self._show(commit, batch=0, batch_since=None)
        return sorted(recorded, key=lambda r: r.idx)

    def _probe_options(self) -> dict[str, Any]:
        options = self.probe.options
        return options_to_json(options) if options is not None else {}

    def _lost(self, exc: BaseException) -> ClusterError:
        return ClusterError(
            f"lost the Dask scheduler at {self.cluster.address} ({one_line(exc)});"
            " what was recorded is kept: rerun the same command to resume"
        )

    def _record_answer(
        self, commit: str, index: int, answer: dict[str, Any], started: float
    ) -> TrialRecord:
        ctx = TrialContext(
            commit=commit,
            artifact_dir=Path("."),
            index=index,
            work_dir=Path("."),
            evidence_dir=self.evidence_dir / commit[:12],
            timeout=self.trial_timeout,
            seed=trial_seed(commit, index),
        )
        out = answer["result"]
        if "guard_error" in out:
            result = TrialResult(Outcome.ERROR, detail=f"on {answer['host']}: {out['guard_error']}")
        else:
            result = TrialResult(
                Outcome(out["outcome"]),
                duration=float(out.get("duration") or 0.0),
                exit_status=out.get("exit_status"),
                signal=out.get("signal"),
                detail=str(out.get("detail") or ""),
                log_path=None,
                signature=out.get("signature"),
                is_bug=out.get("is_bug"),
                extra=dict(out.get("extra") or {}),
            )
        for digest in answer.get("fetched") or ():
            # what reached a worker's disk: once per digest and worker (docs/cluster.md)
            self.journal.event(None, PAYLOAD_EVENT, f"{digest} {answer.get('worker')}")
        kept = self._keep_evidence(commit, answer.get("evidence") or {}, out.get("log_path"))
        result.log_path = kept
        return self._record(ctx, result, started, answer.get("worker"), answer.get("host"))

    def _keep_evidence(self, commit: str, files: dict[str, bytes], log_path: Any) -> str | None:
        """Write the trial's kept logs into the run's evidence folder; the path of the one
        the probe named (its ``log_path``), as the driver would have kept it."""
        folder = self.evidence_dir / commit[:12]
        named = None
        for rel, data in files.items():
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            if log_path and Path(str(log_path)).name == Path(rel).name:
                named = str(target)
        return named
