"""Simulated hunts that run the shipped hunt: only builds, trial outcomes and history are fake.

    from simulate import Case, simulate
    out = simulate(Case(n=120, change=40, far_rate=0.25), seed=1)

A case is a line of commits 0..n (0 the old end, n the new end) whose bug appears or
disappears at ``change``.  :func:`simulate` runs bisect_driver.hunt.stage.hunt, the very
function the driver runs, with:

- a real journal (sqlite, in a temporary directory), a real TrialRunner, CommitTester,
  endpoints check, confirmation and RunResult (its confidence and exit status);
- :class:`SimProbe`, a probe plug-in whose trials reproduce with the case's rate at that
  commit and name what failed (the bug's faces, an unrelated crash, a background flake);
- :class:`SimBuilder`, builds that succeed except at the case's skips;
- :class:`SimLine`, the history and a bisect engine that chooses commits as `git bisect`
  does on a line (the middle of what is left; the nearest testable commit when skipped)
  and writes its log in git's format (the confirmation corrects and replays it).

Nothing here decides anything: a change to the decisions in bisect_driver (verdict.core,
the testers, the confirmation) changes what these simulations report.
"""

from __future__ import annotations

import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bisect_driver.bisect.checks import Check  # noqa: E402
from bisect_driver.bisect.confirm import confirm_run_id  # noqa: E402
from bisect_driver.bisect.direction import Direction, StepCode  # noqa: E402
from bisect_driver.bisect.gitbisect import BisectOutcome  # noqa: E402
from bisect_driver.bisect.revert import Revert, judge_revert  # noqa: E402
from bisect_driver.hunt.events import QuietEvents  # noqa: E402
from bisect_driver.hunt.stage import HuntConfig, checks_tester, hunt, judge_visited  # noqa: E402
from bisect_driver.plugin.errors import EndpointError  # noqa: E402
from bisect_driver.plugin.probe import Outcome, Probe, TrialContext, TrialResult  # noqa: E402
from bisect_driver.plugin.recipe import BuildStatus  # noqa: E402
from bisect_driver.probe.trials import TrialRunner  # noqa: E402
from bisect_driver.report.result import RunResult  # noqa: E402
from bisect_driver.store.journal import BuildRecord, Journal  # noqa: E402
from bisect_driver.verdict.core import run_policy  # noqa: E402
from bisect_driver.verdict.judge import CommitTester  # noqa: E402
from bisect_driver.verdict.stats import SOFT_ALPHA, Verdict, bisect_steps  # noqa: E402

BUG = "SIGSEGV: use after free in shutdown_writer"
BUG_FACE = "SIGABRT: qcow2_cache_destroy: Assertion `c->entries[i].ref == 0' failed."
OTHER = "SIGABRT: shutdown_writer: Assertion `!flushing' failed."


@dataclass(frozen=True)
class Case:
    """A simulated history.  Fix hunt: commits < change carry the bug; regression hunt:
    commits >= change do."""

    n: int
    change: int
    far_rate: float
    near_rate: float | None = None
    near_span: int = 0
    skips: frozenset[int] = frozenset()
    direction: str = "fix"
    other: tuple[int, int] | None = None
    """Commits [a, b) that also crash for an unrelated reason (``OTHER``)."""
    other_rate: float = 0.3
    background: float = 0.0
    """Every commit shows the bug's own failure at this rate, bug or not (a flake)."""
    faces: float = 0.0
    """Share of the bug's reproductions that show its second face (``BUG_FACE``) at the
    ``face_span`` bug-carrying commits next to the change (the far end shows one face
    only: the faces change along the range)."""
    face_span: int = 0
    hidden: int = 0
    """The clean end's first ``hidden`` trials show no background (as 0/34 did in the
    calibration run that named a wrong commit): only a later look there finds it."""

    def buggy(self, i: int) -> bool:
        return i < self.change if self.direction == "fix" else i >= self.change

    def rate(self, i: int) -> float:
        """Commit i's rate of the bug (0 where it does not carry it)."""
        if not self.buggy(i):
            return 0.0
        near = (
            self.change - self.near_span <= i < self.change
            if self.direction == "fix"
            else self.change <= i < self.change + self.near_span
        )
        return self.near_rate if self.near_rate is not None and near else self.far_rate

    def reverted_rate(self, candidate: int) -> float:
        """The bug's rate at the new end with ``candidate`` reverted: the fix taken out
        brings the bug back (at the far end's rate), the regression taken out removes it;
        reverting any other commit leaves the new end as it is."""
        if candidate != self.change:
            return self.rate(self.n)
        return self.far_rate if self.direction == "fix" else 0.0

    @property
    def answer(self) -> int:
        return self.change


REVERT = "e" * 8
"""How a simulated revert commit's id starts (the rest names the reverted commit)."""


def sha(i: int) -> str:
    return f"{i + 1:040x}"


def revert_sha(i: int) -> str:
    """The id of the new end with commit ``i`` reverted."""
    return REVERT + f"{i + 1:032x}"


def reverted(commit: str) -> int | None:
    """Which commit ``commit`` reverts on the new end (None: a commit of the line)."""
    return int(commit[len(REVERT) :], 16) - 1 if commit.startswith(REVERT) else None


def index(commit: str) -> int:
    return int(commit, 16) - 1


class SimProbe(Probe):
    """Trials drawn from a case: the unrelated crash first (it kills the program before the
    bug can), then the bug, then the background flake.

    Each commit draws from a stream of its own (seeded from ``rng`` and the commit), four
    numbers a trial: its n-th trial comes out the same whatever the hunt did elsewhere.  So
    two policies run on the same seed see the same trials at every commit they both test
    (common random numbers), and a paired comparison of them measures the policies, not the
    luck of a shared stream that one different decision shifts for every later trial."""

    name = "sim"
    DRAWS = 4
    """Uniforms a trial takes from its commit's stream, used or not."""

    def __init__(self, case: Case, rng: random.Random) -> None:
        super().__init__()
        self.case = case
        self.base = rng.randrange(1 << 62)
        self.streams: dict[str, random.Random] = {}
        self.at_clean_end = 0

    def settings(self) -> dict[str, Any]:
        return {}

    def _draws(self, commit: str) -> list[float]:
        stream = self.streams.get(commit)
        if stream is None:
            stream = self.streams[commit] = random.Random(f"{self.base}:{commit}")
        return [stream.random() for _ in range(self.DRAWS)]

    def run_trial(self, ctx: TrialContext) -> TrialResult:
        c, r = self.case, iter(self._draws(ctx.commit)).__next__
        undone = reverted(ctx.commit)
        i = c.n if undone is not None else index(ctx.commit)  # a revert is the new end's tree
        rate = c.reverted_rate(undone) if undone is not None else c.rate(i)
        if c.other is not None and c.other[0] <= i < c.other[1] and r() < c.other_rate:
            return TrialResult(Outcome.REPRODUCED, signature=OTHER)
        if r() < rate:
            near = abs(i - c.change) <= c.face_span
            face = BUG_FACE if near and c.faces and r() < c.faces else BUG
            return TrialResult(Outcome.REPRODUCED, signature=face)
        clean_end = undone is None and i == (c.n if c.direction == "fix" else 0)
        if clean_end:
            self.at_clean_end += 1
        hidden = clean_end and self.at_clean_end <= c.hidden
        if c.background and r() < c.background and not hidden:
            return TrialResult(Outcome.REPRODUCED, signature=BUG)
        return TrialResult(Outcome.CLEAN)

    def run_batch(self, contexts: list[TrialContext], jobs: int) -> list[TrialResult]:
        return [self.run_trial(ctx) for ctx in contexts]


class _Artifacts:
    def __init__(self, root: Path, skips: frozenset[int]) -> None:
        self.root, self.skips = root, skips

    def lookup(self, commit: str) -> Path | None:
        if reverted(commit) is not None:
            return self.root  # the revert check's tree builds
        return None if index(commit) in self.skips else self.root


@dataclass
class _Built:
    ok: bool
    artifact_dir: Path | None
    record: BuildRecord
    cached: bool = True


class SimBuilder:
    """Every commit builds, except the case's skips (a build that fails)."""

    def __init__(self, root: Path, case: Case) -> None:
        self.artifacts = _Artifacts(root, case.skips)
        self.built: set[str] = set()

    def ensure(self, commit: str) -> _Built:
        self.built.add(commit)
        ok = self.artifacts.lookup(commit) is not None
        status = BuildStatus.OK if ok else BuildStatus.FAILED
        record = BuildRecord(commit, "sim", str(status), 0.0, [], "", None, None, time.time())
        return _Built(ok, self.artifacts.root if ok else None, record)


class SimLine:
    """History and bisect engine of a line of commits, as `git bisect` treats one."""

    def __init__(self, case: Case, tester: CommitTester, perfect_steps: bool = False) -> None:
        self.case, self.tester = case, tester
        self.perfect_steps = perfect_steps
        """A counterfactual only a simulation has (where_trials_go.py --perfect-steps): a
        step's soft CLEAN at a commit that carries the bug is instead tested on to its next
        reproduction and recorded BUG, so no correction ever follows."""
        self.marks: dict[int, str] = {}
        self.terms: tuple[str, str] = ("", "")
        self.lines: list[str] = []

    # History
    def parents_in_range(self, commit: str, old: str) -> list[str]:
        i = index(commit)
        return [sha(i - 1)] if i > index(old) else []

    def is_ancestor(self, a: str, b: str) -> bool:
        return index(a) <= index(b)

    # Engine
    def start(self, old: str, new: str, terms: tuple[str, str], first_parent: bool) -> None:
        self.terms = terms
        self.marks = {index(old): terms[0], index(new): terms[1]}
        self.lines = [f"git bisect start '--term-old={terms[0]}' '--term-new={terms[1]}'"]
        self.lines += [f"git bisect {terms[1]} {new}", f"git bisect {terms[0]} {old}"]

    def _window(self) -> tuple[int, int]:
        old_term, new_term = self.terms
        lo = max(i for i, t in self.marks.items() if t == old_term)
        hi = min(i for i, t in self.marks.items() if t == new_term and i > lo)
        return lo, hi

    def _outcome(self) -> BisectOutcome | None:
        lo, hi = self._window()
        inside = [i for i in range(lo + 1, hi) if self.marks.get(i) != "skip"]
        if inside:
            return None
        if hi - lo == 1:
            return BisectOutcome([sha(hi)], self.log())
        return BisectOutcome([sha(i) for i in range(lo + 1, hi + 1)], self.log())

    def log(self) -> str:
        return "\n".join(self.lines) + "\n"

    def run(self, cmd: list[str], terms: tuple[str, str]) -> BisectOutcome:
        direction = Direction.FIX if terms == Direction.FIX.terms else Direction.REGRESSION
        while True:
            done = self._outcome()
            if done is not None:
                return done
            lo, hi = self._window()
            mid = (lo + hi) / 2
            inside = [i for i in range(lo + 1, hi) if self.marks.get(i) != "skip"]
            i = min(inside, key=lambda x: (abs(x - mid), x))
            left = len(inside)
            rec, code = judge_visited(self.tester, direction, sha(i), bisect_steps(left))
            if self.perfect_steps and rec.verdict == Verdict.CLEAN and self.case.buggy(i):
                code = self._to_a_reproduction(direction, sha(i))
            term = {StepCode.OLD: terms[0], StepCode.NEW: terms[1]}.get(code, "skip")
            self.marks[i] = term
            self.lines.append(f"git bisect {term} {sha(i)}")

    def _to_a_reproduction(self, direction: Direction, commit: str) -> StepCode:
        """The perfect step: trials at ``commit`` until it reproduces, then BUG."""
        t = self.tester
        ev = t.runner.evidence(commit)
        seen = ev.reproduced
        while ev.reproduced == seen:
            ev = t.run_batch(commit, t.builder.artifacts.root)
        t.journal.delete_verdict(t.run_id, commit)
        t.record(ev, Verdict.BUG, 0.0, "perfect step (simulation only)")
        return direction.step_code(Verdict.BUG)

    def replay(self, log_text: str, terms: tuple[str, str]) -> BisectOutcome | None:
        self.terms = terms
        self.marks = {}
        self.lines = []
        mark = re.compile(r"^git bisect (\S+) ([0-9a-f]{40})$")
        for line in log_text.splitlines():
            self.lines.append(line)
            m = mark.match(line)
            if m:
                self.marks[index(m.group(2))] = m.group(1)
        return self._outcome()


@dataclass
class Simulated:
    """What one simulated hunt did and claimed."""

    case: Case
    candidates: list[int] = field(default_factory=list)
    confidence: float | None = None
    exit_status: int = 0
    trials: int = 0
    commits: int = 0
    """Distinct commits that ran trials."""
    builds: int = 0
    error: str = ""
    """The endpoint error, when the hunt stopped there (exit 3)."""
    unconfirmed: list[str] = field(default_factory=list)
    """Why no confidence was claimed (RunResult.unconfirmed)."""
    corrected: int = 0
    """Verdicts the confirmation overturned."""
    revert: str = ""
    """The revert check's status ("" when it did not run: no single answer)."""
    alone: float | None = None
    """The confidence the hunt's decisions claim without the revert check."""
    background_found: bool = False
    """A correction uncovered a background the ends did not show (bisected again)."""
    per_commit: list[int] = field(default_factory=list)
    """Trials at each commit of the line, 0..n: where the trials went."""
    revert_trials: int = 0
    """Trials of the revert check (the new end with the answer reverted: not in ``trials``,
    which counts the line's commits)."""

    @property
    def claimed(self) -> bool:
        return self.confidence is not None

    @property
    def wrong(self) -> bool:
        """A claim that does not hold: a single answer that is not the change, or a set
        that does not contain it."""
        return self.claimed and self.case.answer not in self.candidates

    @property
    def wrong_alone(self) -> bool:
        """Whether the decisions alone (no revert check: it may not apply) claim wrongly."""
        return self.alone is not None and self.case.answer not in self.candidates


def simulate(
    case: Case,
    seed: int,
    *,
    confidence: float = 0.99,
    min_rate: float | None = None,
    max_trials: int = 200,
    jobs: int = 2,
    policy_alpha: float = SOFT_ALPHA,
    revert: bool = True,
    steady: bool = False,
    perfect_steps: bool = False,
) -> Simulated:
    """One hunt over ``case`` through bisect_driver.hunt.stage.hunt, then, for a single
    answer, the revert check as the driver runs it (``revert``).  ``perfect_steps``: the
    counterfactual of :class:`SimLine` (never a real hunt's)."""
    rng = random.Random(seed)
    root = Path(tempfile.mkdtemp(prefix="sim-", dir=_scratch_root()))
    try:
        journal = Journal(root / "journal.sqlite3")
        probe = SimProbe(case, rng)
        runner = TrialRunner(journal, probe, "sim", root / "evidence", jobs=jobs)
        runner.scratch_root = root / "scratch"
        builder = SimBuilder(root, case)
        policy = run_policy(
            confidence, alpha=policy_alpha, max_trials=max_trials, min_rate=min_rate, steady=steady
        )
        tester = CommitTester("sim", journal, builder, runner, policy)  # type: ignore[arg-type]
        line = SimLine(case, tester, perfect_steps)
        config = HuntConfig(
            sha(0), sha(case.n), case.n, confidence, min_rate=min_rate, steady_rate=steady
        )

        # As context.RunContext.runner wires it: faces of the bug from this run's verdicts.
        runner.verdict_runs = ("sim", confirm_run_id("sim"))
        runner.ends = (sha(0), sha(case.n))

        def define_bug(end: str) -> Any:
            runner.bug_end = end
            return runner.bug

        out = Simulated(case)
        try:
            done = hunt(config, tester, line, line, [], QuietEvents(), define_bug)
        except EndpointError as exc:
            out.error, out.exit_status = str(exc), 3
        else:
            checks = []
            if revert and len(done.outcome.candidates) == 1:
                # As the driver's _hunt_and_check: the answer taken out of the new end.
                cand, new_end = done.outcome.candidates[0], sha(case.n)
                made = Revert(revert_sha(index(cand)), new_end)
                strict = checks_tester(config, tester, done)
                checks.append(judge_revert(strict, done.ends.direction, cand, new_end, made))
                out.revert = str(checks[0].status)
                out.revert_trials = len(runner.records(made.sha))

            def result_of(checks: list[Check]) -> RunResult:
                return RunResult.of(
                    done.outcome.candidates,
                    done.ends.terms,
                    done.outcome.log,
                    0.0,
                    done.confirmation,
                    checks,
                    far=done.far,
                )

            result = result_of(checks)
            out.alone = result_of([]).confidence
            out.candidates = [index(c) for c in result.candidates]
            out.confidence = result.confidence
            out.exit_status = result.exit_status()
            out.unconfirmed = list(result.unconfirmed)
            out.corrected = len(result.corrected)
            out.background_found = done.background_found
        counts = [len(runner.records(sha(i))) for i in range(case.n + 1)]
        out.per_commit = counts
        out.trials = sum(counts)
        out.commits = sum(1 for c in counts if c)
        out.builds = len(builder.built)
        journal.close()
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _scratch_root() -> str | None:
    """Journals on tmpfs where there is one: every trial is an fsync'd sqlite write."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


def mean_se(values: Sequence[float]) -> float:
    """The standard error of ``values``' mean (0 for fewer than two): the benches print it
    because a target a few per cent away is met or missed only beyond the mean's own noise."""
    if len(values) < 2:
        return 0.0
    return statistics.stdev(values) / len(values) ** 0.5


def share_wrong(runs: Sequence[Simulated]) -> tuple[int, int]:
    """(claims, wrong claims) among ``runs``."""
    claims = [r for r in runs if r.claimed]
    return len(claims), sum(r.wrong for r in claims)
