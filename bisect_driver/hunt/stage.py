"""The hunt: test the ends, bisect, confirm the answer; decisions from verdict.core.

One function, :func:`hunt`, strings the stage together over four parts it is given: a
tester (build -> probe -> verdict), a bisect engine (`git bisect` in a run), history (git)
and an event sink.  The driver gives it the real parts; bench/simulate.py gives it a
simulated line of commits, simulated builds and trial outcomes, and otherwise runs this
very code, so the calibration of the claimed confidence measures what a real hunt does.
What comes after (checks of the answer, backports, the report) is the driver's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bisect_driver.bisect.confirm import (
    Bisector,
    Confirmation,
    Confirmer,
    History,
    confirm_run_id,
    strict_tester,
)
from bisect_driver.bisect.direction import Direction, StepCode
from bisect_driver.bisect.endpoints import Endpoints, check_endpoints
from bisect_driver.bisect.gitbisect import BisectOutcome
from bisect_driver.hunt.events import HuntEvents
from bisect_driver.probe.evidence import BugSignature
from bisect_driver.store.journal import VerdictRecord
from bisect_driver.verdict.core import ErrorBudget, floor_of, with_background
from bisect_driver.verdict.judge import CommitTester
from bisect_driver.verdict.stats import Reference, Verdict, bisect_steps


class Engine(Bisector, Protocol):
    """The bisect engine: start on the two ends, then run / replay (bisect.confirm)."""

    def start(self, old: str, new: str, terms: tuple[str, str], first_parent: bool) -> None: ...


@dataclass(frozen=True)
class HuntConfig:
    """What the hunt needs to know of the run's settings."""

    old: str
    new: str
    range_size: int
    confidence: float
    min_rate: float | None = None
    confirm: bool = True
    first_parent: bool = False
    steady_rate: bool = False

    @property
    def budget(self) -> ErrorBudget:
        return ErrorBudget.of(self.confidence)


@dataclass
class HuntOutcome:
    ends: Endpoints
    outcome: BisectOutcome
    confirmation: Confirmation | None
    reference: Reference
    """The reproducing end's trials (or the lower-rate corrected commit's), final."""
    floor: float
    floor_source: str
    background_found: bool = False
    """A correction uncovered the background (``ends.background``): bisected again."""

    @property
    def far(self) -> tuple[int, int]:
        return self.reference.reproduced, self.reference.trials


def clean_tests_left(steps_left: int) -> float:
    """Soft CLEAN verdicts still to come, as the reference's calibration weighs them: about
    half of the steps left clear a commit."""
    return max(1.0, steps_left / 2)


def forget_verdicts(tester: CommitTester, keep: tuple[str, ...]) -> None:
    """Drop the run's verdicts (steps, corrections, strict tests) but those of ``keep``:
    they are judged again from their trials, which stay."""
    journal = tester.journal
    for run_id in (tester.run_id, confirm_run_id(tester.run_id)):
        for rec in journal.verdicts(run_id):
            kept = keep if run_id == tester.run_id else ()  # strict verdicts: all go
            if rec.commit not in kept:
                journal.delete_verdict(run_id, rec.commit)


def judge_visited(
    tester: CommitTester, direction: Direction, commit: str, steps_left: int
) -> tuple[VerdictRecord, StepCode]:
    """What the `git bisect run` step does with the commit git checked out: its verdict
    (recorded, or decided now) and the exit code git reads."""
    tester.clean_tests_left = clean_tests_left(steps_left)
    rec = tester.judge(commit)
    return rec, direction.step_code(Verdict(rec.verdict))


def hunt(
    config: HuntConfig,
    tester: CommitTester,
    engine: Engine,
    history: History,
    step: list[str],
    events: HuntEvents,
    define_bug: Callable[[str], BugSignature | None],
    before_trials: Callable[[], None] | None = None,
) -> HuntOutcome:
    """Ends, bisect steps (the engine calls ``step`` for each commit it visits), then the
    strict confirmation of the answer, one candidate or a candidate set.

    ``define_bug(end)`` makes the reproducing end's failures the bug from now on (the
    driver stores it for the step processes) and returns it."""
    events.phase("testing the ends")
    ends = check_endpoints(
        tester,
        config.old,
        config.new,
        clean_tests_left(bisect_steps(config.range_size) + 2),
        before_trials=before_trials,
    )
    if before_trials is not None:
        before_trials()  # again: a resumed run decides the ends from the journal, no trials
    events.ends_decided(ends)
    # The ends told apart by rate: later verdicts (the confirmation's too) beat the
    # background failure rate the clean end showed.
    tester.policy = with_background(tester.policy, ends.background)
    bug_end = ends.old if ends.direction is Direction.FIX else ends.new
    bug = define_bug(bug_end)
    if bug is not None and bug.signatures:
        events.say(f"the bug is what {bug_end[:12]} shows: {'; '.join(sorted(bug.signatures))}")
    old_term, new_term = ends.terms
    events.say(
        f"{ends.direction} hunt: old end {old_term}"
        f" ({ends.old_evidence.reproduced}/{ends.old_evidence.counted}),"
        f" new end {new_term} ({ends.new_evidence.reproduced}/{ends.new_evidence.counted})"
    )
    for attempt in range(2):
        events.phase("bisecting" if not attempt else "bisecting again, with the background")
        engine.start(config.old, config.new, ends.terms, config.first_parent)
        outcome = engine.run(step, ends.terms)
        reference = tester.far_reference()  # after the steps' calibration: final
        assumed = floor_of(tester.pooled_counts(), config.min_rate, config.steady_rate)
        floor, floor_source = assumed.rate, assumed.source
        confirmation = None
        if not config.confirm:
            break
        events.phase("confirming the answer")
        events.say(f"floor rate {floor:.3g} ({floor_source})")
        confirmation, outcome = Confirmer(
            tester.run_id,
            tester,
            history,
            ends.direction,
            ends.old,
            engine,
            step,
            events.say,
            floor,
            config.budget,
            floor_low=assumed.low,
            first_parent=config.first_parent,
            new_end=ends.new,
        ).confirm(outcome)
        if confirmation.background is None or attempt:
            break
        # A correction uncovered a background the ends' trials missed: every verdict so far
        # took one reproduction for proof, so they are all taken again, with it.
        ends.background = confirmation.background
        tester.adopt_background(ends.background)
        forget_verdicts(tester, (ends.old, ends.new))
    return HuntOutcome(
        ends, outcome, confirmation, reference, floor, floor_source, background_found=attempt > 0
    )


def checks_tester(config: HuntConfig, tester: CommitTester, done: HuntOutcome) -> CommitTester:
    """The tester the checks of a single answer judge with (the revert check, backports):
    the confirmation's verdicts, held to the run's anchor error and the final floor.  One
    place, so the driver and bench/simulate.py gate the answer alike."""
    return strict_tester(tester, tester.run_id, config.budget.anchor, done.floor)
