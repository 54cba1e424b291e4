"""Speculative builds: idle workers build the commits the bisect may visit next.

A thread of the driver (the process that lives for the whole run) looks at the
tool-owned checkout's bisect once a second.  When the run waits for a build and workers
have been idle for two looks, it sends them builds of the commits
:func:`~bisect_driver.cluster.plan.lookahead` names, nearest first, at a priority below
trials and below the builds a step waits for.
A finished build is recorded like any other, marked speculative, unless a step recorded
it first (the same Dask key: a step that needs a commit being built speculatively waits
for that build instead of starting another).  The journal says which builds were
speculative (``builds.speculative``, ``speculative-build`` events) and, when the bisect
ends, how many were used (a ``speculation`` event); builds still running then are
cancelled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bisect_driver.cluster import plan
from bisect_driver.cluster.builds import (
    SPECULATIVE_PRIORITY,
    BuildSubmitter,
    build_lock,
    take_answer,
)
from bisect_driver.cluster.connect import one_line
from bisect_driver.plugin.recipe import BuildStatus, Recipe, fingerprint
from bisect_driver.store.artifacts import ArtifactCache
from bisect_driver.store.journal import BuildRecord, Journal

SPECULATIVE_EVENT = "speculative-build"
SUMMARY_EVENT = "speculation"
POLL_S = 1.0


class Speculator:
    def __init__(
        self,
        journal: Journal,
        run_id: str,
        recipe: Recipe,
        submitter: BuildSubmitter,
        artifacts: ArtifactCache,
        cache_dir: Path,
        log_dir: Path,
        checkout: Path,
        terms: Callable[[], tuple[str, str] | None],
        first_parent: bool,
        say: Callable[[str], None],
        ends: tuple[str, str] | None = None,
        waiting_on_build: Callable[[], bool] = lambda: True,
    ) -> None:
        self.journal = journal
        self.run_id = run_id
        self.recipe = recipe
        self.key = recipe.key()
        self.submitter = submitter
        self.artifacts = artifacts
        self.cache_dir = cache_dir
        self.log_dir = log_dir
        self.checkout = checkout
        self.terms = terms
        self.next_of = plan.git_next_of(checkout, first_parent)
        self.say = say
        self.in_flight: dict[str, tuple[Any, float]] = {}
        self.started: list[str] = []
        self.built: list[str] = []
        self.cancelled: list[str] = []
        self.failed: set[str] = set()
        """Speculative builds that did not build: never tried ahead again (a step that
        needs one builds it itself, with the retry from clean)."""
        self._idle_before = 0
        self.before = plan.BisectState(frozenset({ends[0]}), ends[1], None) if ends else None
        """The bisect's first state, known before it starts: the first step and the
        levels below it are the same whichever end turns out to carry the bug, so idle
        workers build them while the ends are built and tested."""
        self._bisected = False
        self.waiting_on_build = waiting_on_build
        """True while the run waits for a build: the only time workers are idle for long.
        While trials run, every slot has a trial (a batch is as large as the cluster), and
        a build started in a gap between two trials would hold its slot for minutes."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="speculator", daemon=True)

    def start(self) -> Speculator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._collect()
        self._cancel_all()
        used = self._used()
        if self.started:
            self.journal.event(
                self.run_id,
                SUMMARY_EVENT,
                f"started {len(self.started)} built {len(self.built)} used {len(used)}"
                f" cancelled {len(self.cancelled)}",
            )
            self.say(
                f"speculative builds: {len(self.started)} started, {len(self.built)} built,"
                f" {len(used)} used by a step, {len(self.cancelled)} cancelled"
            )

    def _cancel_all(self) -> None:
        self._cancel(set(self.in_flight))

    def _cancel(self, commits: set[str]) -> None:
        for commit in sorted(commits):
            fut, _t = self.in_flight[commit]
            with contextlib.suppress(Exception):
                fut.cancel()
            del self.in_flight[commit]
            self.cancelled.append(commit)
            self.journal.event(self.run_id, SPECULATIVE_EVENT, f"{commit} cancelled")

    def _used(self) -> set[str]:
        visited = {v.commit for v in self.journal.verdicts(self.run_id)}
        return visited & set(self.built)

    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - speculation must never stop a run
                self.say(f"speculative builds paused: {one_line(exc)}")
                self._stop.wait(10 * POLL_S)

    def poll(self) -> None:
        self._collect()
        terms = self.terms()
        state = plan.bisect_state(self.checkout, terms) if terms else None
        if state is not None:
            self._bisected = True
        elif self._bisected:
            self._cancel_all()  # the bisect is over: nothing built now would be visited
        else:
            state = self.before
        client = self.submitter.cluster.client
        processing = {str(k) for keys in client.processing().values() for k in keys}
        waiting = self.waiting_on_build()
        queued = {c for c, (fut, _t) in self.in_flight.items() if str(fut.key) not in processing}
        if not waiting:
            # Builds ahead not started yet would take the slots the trials need now.
            self._cancel(queued)
            queued = set()
        running = len(processing) + len(queued)
        slots = self.submitter.cluster.slots
        free = plan.idle_slots(slots, running, self._idle_before)
        self._idle_before = max(0, slots - running)
        if state is None or free <= 0 or not waiting:
            return

        def done(commit: str) -> bool:
            return commit in self.failed or self.journal.build(commit, self.key) is not None

        for commit in plan.to_build(
            plan.lookahead(self.next_of, state), done, set(self.in_flight), free
        ):
            fut = self.submitter.submit(commit, 1, SPECULATIVE_PRIORITY)
            self.in_flight[commit] = (fut, time.monotonic())
            self.started.append(commit)
            self.say(f"speculative build of {commit[:12]} on an idle worker")

    def _collect(self) -> None:
        for commit, (fut, t0) in list(self.in_flight.items()):
            if not fut.done():
                continue
            del self.in_flight[commit]
            self._record(commit, fut, time.monotonic() - t0)

    def _record(self, commit: str, fut: Any, duration: float) -> None:
        """Record a finished speculative build, unless a step already did."""
        with build_lock(self.cache_dir, self.key, commit):
            existing = self.journal.build(commit, self.key)
            if existing is not None:
                if fut.status == "finished" and existing.finished >= time.time() - duration:
                    # A step asked for it while it ran, waited for this very task (same
                    # key) and recorded it: built ahead, and used.
                    self.journal.record_build(dataclasses.replace(existing, speculative=True))
                    self.built.append(commit)
                return
            try:
                answer = fut.result()
            except Exception as exc:  # noqa: BLE001 - the step will build it itself
                self.failed.add(commit)
                self.journal.event(self.run_id, SPECULATIVE_EVENT, f"{commit} lost {one_line(exc)}")
                return
            staging = self.artifacts.staging(commit)
            log_path = self.log_dir / f"build-{commit[:12]}.log"
            result = take_answer(answer, staging, log_path)
            main = self.recipe.main_binary()
            fp = fingerprint(staging / main) if main else None
            host = answer.get("host")
            self.journal.event(
                self.run_id,
                SPECULATIVE_EVENT,
                f"{commit} {result.status} {answer.get('duration', duration):.1f}s {host}",
            )
            if result.status != BuildStatus.OK or (main and fp is None):
                self.failed.add(commit)
                # Not recorded: the step that needs it builds it with the usual retry.
                import shutil

                shutil.rmtree(staging, ignore_errors=True)
                return
            self.artifacts.commit_staging(commit, staging)
            self.journal.record_build(
                BuildRecord(
                    commit=commit,
                    recipe_key=self.key,
                    status=str(result.status),
                    duration=float(answer.get("duration", duration)),
                    fixups=result.fixups,
                    detail=result.detail,
                    log_path=str(log_path),
                    fingerprint=fp,
                    finished=time.time(),
                    host=host,
                    speculative=True,
                )
            )
            self.built.append(commit)
