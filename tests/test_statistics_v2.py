"""Statistics v2 (issue 11): a confidence that holds when the flakiness is real.

Unit and property tests of the floor test, and end-to-end runs on generated repos
whose bug-carrying commits reproduce less often next to the change (drift), whose
later commits crash for another reason, and whose answer is checked by a revert.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from conftest import flaky_args, read_report
from hypothesis import given, settings
from hypothesis import strategies as st

from bisect_driver.plugin.errors import EXIT_ENDPOINTS, EXIT_FOUND, EXIT_UNCONFIRMED
from bisect_driver.verdict.core import ErrorBudget, floor_after_near, floor_of, near_settled
from bisect_driver.verdict.stats import (
    Reference,
    Verdict,
    decide_strict,
    default_floor,
    floor_p_value,
    lower_bound,
    strict_trials_needed,
    upper_bound,
)


@given(k=st.integers(1, 50), n=st.integers(1, 500), floor=st.floats(0.001, 0.9))
def test_a_reproduction_is_never_strictly_clean(k: int, n: int, floor: float) -> None:
    if k <= n:
        assert decide_strict(k, n, floor, 0.01).verdict == Verdict.BUG


@given(n=st.integers(0, 400), floor=st.floats(0.001, 0.9))
def test_floor_p_value_is_the_chance_a_floor_rate_bug_stays_hidden(n: int, floor: float) -> None:
    assert math.isclose(floor_p_value(0, n, floor), (1 - floor) ** n, rel_tol=1e-6, abs_tol=1e-12)


@given(floor=st.floats(0.001, 0.9), alpha=st.floats(1e-6, 0.2))
def test_strict_trials_needed_is_the_first_n_that_decides(floor: float, alpha: float) -> None:
    n = strict_trials_needed(floor, alpha)
    assert decide_strict(0, n, floor, alpha).verdict == Verdict.CLEAN
    if n > 1:
        assert decide_strict(0, n - 1, floor, alpha).verdict == Verdict.UNDECIDED


@given(rounds=st.integers(1, 60), delta=st.floats(1e-4, 0.2))
def test_correction_rounds_never_spend_more_than_delta(rounds: int, delta: float) -> None:
    assert sum(ErrorBudget(delta).round(t) for t in range(rounds)) <= delta


@given(k=st.integers(1, 200), extra=st.integers(0, 400))
def test_default_floor_is_a_sixth_of_the_pooled_rate(k: int, extra: int) -> None:
    """A sixth of K/M as counted, above a sixth of its 95 % lower bound (the floor before
    issue 18)."""
    n = k + extra
    floor = default_floor(Reference(k, n))
    assert math.isclose(floor, (k / n) / 6)
    assert lower_bound(k, n) / 6 <= floor


def _inverse_pool(rng: random.Random, p: float, commits: int, stop_at: int) -> Reference:
    """The trials of ``commits`` bug-carrying commits, each tested until ``stop_at``
    reproductions (as a hunt's steps and bug-side neighbour are)."""
    k = n = 0
    for _ in range(commits):
        seen = 0
        while seen < stop_at:
            n += 1
            seen += rng.random() < p
        k += seen
    return Reference(k, n)


@settings(max_examples=8, deadline=None)
@given(p=st.sampled_from([0.05, 0.1, 0.25, 0.5]), commits=st.integers(3, 6))
def test_the_floor_costs_the_strict_test_what_the_true_rate_would(p: float, commits: int) -> None:
    """Why the plain pooled rate (issue 18's third round): over pools of trials that stop at
    reproductions, the strict test at ``default_floor`` costs on average what it costs at a
    sixth of the true rate, within a few percent; the second round's floor (the median-
    unbiased lower estimate of Haldane's count) cost 1.1-1.3 times as much."""
    rng = random.Random(int(p * 1000) + commits)
    alpha = 0.008
    truth = strict_trials_needed(p / 6, alpha)
    pools = [_inverse_pool(rng, p, commits, 2) for _ in range(1500)]
    mean = sum(strict_trials_needed(default_floor(r), alpha) for r in pools) / len(pools)
    assert 0.96 <= mean / truth <= 1.04

    def second_round(r: Reference) -> float:
        return lower_bound(r.reproduced - 1, r.trials - 1, 0.5) / 6

    old = sum(strict_trials_needed(second_round(r), alpha) for r in pools) / len(pools)
    assert old / truth >= 1.08


def _run(cli, repo, tmp_path: Path, *extra: str):
    report = tmp_path / "r"
    r = cli(*flaky_args(repo, tmp_path / "c", "--report-dir", str(report), *extra))
    return r, (read_report(report) if (report / "report.json").exists() else None)


@pytest.mark.slow
def test_fix_whose_preceding_commits_reproduce_at_a_sixth(make_flaky, cli, tmp_path: Path) -> None:
    repo = make_flaky(commits=48, change_at=40, rate=0.6, near_rate=0.1, near_span=30, seed=3)
    r, data = _run(cli, repo, tmp_path)
    # The planted rates are timing shares of a real race: the measured near rate can land
    # right at the floor, where "inconclusive" (exit 8, no claim) is a correct outcome too,
    # and so is a failed revert check: the fix reverted on the new end brings the bug back
    # at the near rate, at the floor as well, and the check may then see it stay away (CI,
    # 2026-12-08: 0/56 against a floor of about 0.1). What may never happen is a wrong
    # commit, or a claim without confirmation.
    assert r.out.strip() == repo.answer, r.err
    assert data is not None
    if r.status == EXIT_UNCONFIRMED:
        assert data["confidence"] == 0.0
        # Name the reasons and checks, not the whole (truncated) report: CI once failed here
        # (2026-12-07, 1 of about 8 CI runs; 15 of 15 local runs passed) and showed neither.
        why = (
            data["basis"]["unconfirmed"],
            [(c["name"], c["status"], c["detail"]) for c in data["checks"]],
        )
        revert_stays_away = f"check failed: revert of {repo.answer[:12]}"
        assert all(
            w.startswith("inconclusive")
            or (w.startswith(revert_stays_away) and "the bug does not come back" in w)
            for w in data["basis"]["unconfirmed"]
        ), why
        return
    assert r.status == EXIT_FOUND, r.err
    assert data["confidence"] >= 0.99
    basis = data["basis"]
    assert basis["floor"] <= 0.1 and basis["far"][1] > 0 and basis["near"][1] > 0
    checks = {c["name"].split(" on ")[0]: c for c in data["checks"]}
    revert = next(c for name, c in checks.items() if name.startswith("revert"))
    assert revert["status"] == "PASS", revert


@pytest.mark.slow
def test_regression_whose_first_commits_reproduce_rarely(make_flaky, cli, tmp_path: Path) -> None:
    """Drift to a third next to the change (0.2 against 0.6): inside the floor's sixth.  At
    0.1 the test sat on the floor itself, and under CI's load the real race measured the
    neighbour at 5/98, below it: the run rightly claimed nothing (exit 8)."""
    repo = make_flaky(
        commits=40,
        change_at=12,
        rate=0.6,
        direction="regression",
        near_rate=0.2,
        near_span=10,
        seed=4,
    )
    r, data = _run(cli, repo, tmp_path)
    assert r.status == EXIT_FOUND, r.err
    assert r.out.strip() == repo.answer
    assert data is not None and data["direction"] == "regression"


@pytest.mark.slow
def test_an_unrelated_crash_after_the_fix_is_not_the_bug(make_flaky, cli, tmp_path: Path) -> None:
    """Commits 10..33 also abort (SIGABRT after an assertion); the bug is the SIGSEGV the old
    end shows, so they are clean and the answer is the fix (8), not the end of the abort
    range (34), where a tool that counts any crash as the bug ends up."""
    repo = make_flaky(commits=40, change_at=8, rate=0.4, other_crash=(10, 34), seed=5)
    r, data = _run(cli, repo, tmp_path)
    assert r.status == EXIT_FOUND, r.err
    assert r.out.strip() == repo.answer
    assert data is not None
    others = [e for e in data["evidence"] if e["other"]]
    assert others, "no commit showed the other failure"
    assert all("SIGABRT" in " ".join(e["other_signatures"]) for e in others)


@pytest.mark.slow
def test_both_ends_failing_differently_needs_the_bug_named(make_flaky, cli, tmp_path: Path) -> None:
    """The new end aborts too (another bug): which failure is hunted must be named.

    Both failures must be about as frequent, and the abort frequent enough for the clean
    end's anchor (stats.anchor_trials: a failure half as frequent as the bug shows with 0.9;
    its length goes with 1 / the bug's rate as first estimated) to see it.  At rate=0.6,
    other_rate=0.5 the old end reproduced 25 of 40 and the new end aborted 14 of 40 (probes
    run one at a time), the anchor was 4-7 trials, and 2 of 8 local runs missed the abort
    and hunted the SIGSEGV (rightly, by what they saw).  At rate=0.25, other_rate=0.45
    (19 of 60 each, one at a time) 5 of 9 runs failed: with the tool's two probes at once
    the race shifted (in the run read through, the old end showed 0 of 15 and the run hunted
    the abort).  At 0.5 / 0.5 (27 and 23 of 60):
    21 of 21 runs passed, 15 of them three at a time.  tests/test_anchors.py checks the same
    class with a scripted probe, without chance.

    The anchor misses a failure half as frequent as the bug with up to 0.1 by design, and a
    real race can hide the other one: CI once saw the old end quiet in its 6 anchor trials
    (about 3 % at its 27 of 60) against 3 aborts in 4 at the new end.  Then the run hunts
    the one failure it saw, and rightly: the abort's start, commit 14.  That outcome is
    accepted only as such: the end it judged clean showed no failure of either kind."""
    repo = make_flaky(
        commits=30, change_at=12, rate=0.5, other_crash=(14, 31), other_rate=0.5, seed=6
    )
    r, data = _run(cli, repo, tmp_path)
    if r.status != EXIT_ENDPOINTS and "regression hunt" in r.err:
        assert r.status in (EXIT_FOUND, EXIT_UNCONFIRMED), r.err
        assert r.out.strip() == repo.shas[14], r.err
        assert data is not None
        old_end = next(e for e in data["evidence"] if e["commit"] == repo.old)
        assert old_end["reproduced"] == 0 and old_end["other"] == 0, old_end
        return
    assert r.status == EXIT_ENDPOINTS, r.err
    assert "--signature" in r.err.strip().splitlines()[-1]
    r, data = _run(cli, repo, tmp_path, "--signature", "SIGSEGV")
    assert r.status == EXIT_FOUND, r.err
    assert r.out.strip() == repo.answer


# -- the steps' reference (issue 18) ----------------------------------------------------


class _Counts:
    """A trial runner as the tester reads it: each commit's (reproduced, counted)."""

    def __init__(self, counts: dict[str, tuple[int, int]]) -> None:
        self.counts = counts

    def evidence(self, commit: str):  # type: ignore[no-untyped-def]
        from bisect_driver.probe.evidence import Evidence

        k, n = self.counts.get(commit, (0, 0))
        return Evidence(commit, trials=n, reproduced=k, clean=n - k)


def _tester(tmp_path: Path, counts: dict[str, tuple[int, int]], steady: bool = False):  # type: ignore[no-untyped-def]
    from bisect_driver.store.journal import Journal
    from bisect_driver.verdict.core import Reason, run_policy
    from bisect_driver.verdict.judge import CommitTester

    policy = run_policy(0.99, alpha=0.1, max_trials=200, steady=steady)
    runner = _Counts(counts)
    tester = CommitTester("r", Journal(tmp_path / "j.sqlite3"), None, runner, policy)  # type: ignore[arg-type]
    tester.record(runner.evidence("end"), "bug", 0.0, Reason.ENDPOINT)
    return tester


def test_the_steps_reference_is_the_pool_of_every_bug_verdict(tmp_path: Path) -> None:
    """Not the end's 3 reproductions alone: the pool's (Haldane's count, one less)."""
    tester = _tester(tmp_path, {"end": (3, 40), "a": (1, 9), "b": (3, 30)})
    for c in ("a", "b"):
        tester.record(tester.runner.evidence(c), "bug", 0.0, "decided")
    assert tester.reference() == Reference(3 + 1 + 3 - 1, 40 + 9 + 30 - 1)
    assert tester.reference(exclude="b") == Reference(3 + 1 - 1, 40 + 9 - 1)
    # the far end's rate (report, drift flag) is still the end's own
    assert tester.far_reference() == Reference(3, 40)


def test_a_lower_rate_correction_joins_the_pool_and_is_not_the_far_end(tmp_path: Path) -> None:
    """A corrected commit's trials count in the steps' pool like any bug verdict's; it is no
    longer the reference on its own (core.reference_commit), nor the far end's rate."""
    from bisect_driver.verdict.core import Reason

    tester = _tester(tmp_path, {"end": (10, 20), "c": (1, 40)})
    tester.record(tester.runner.evidence("c"), "bug", 0.0, f"{Reason.CORRECTED} (was clean)")
    assert tester.reference() == Reference(10 + 1 - 1, 20 + 40 - 1)
    assert tester.far_reference() == Reference(10, 20)
    assert tester.reference_commit() == "end"


class _Growing(_Counts):
    """A runner whose batches are clean trials, and a builder that always builds."""

    jobs = 2

    def run(self, commit: str, artifact_dir: Path, count: int) -> None:
        k, n = self.counts.get(commit, (0, 0))
        self.counts[commit] = (k, n + count)

    def ensure(self, commit: str):  # type: ignore[no-untyped-def]
        from types import SimpleNamespace

        return SimpleNamespace(ok=True, artifact_dir=Path("."))


@pytest.mark.parametrize(
    ("step_trials", "steady", "looked_to"), [(0, False, 120), (30, False, 30), (30, True, 120)]
)
def test_the_look_for_a_background_counts_the_trials_after_the_step(
    tmp_path: Path, step_trials: int, steady: bool, looked_to: int
) -> None:
    """A commit the bisect cleared on 0/30 reproduced once in the strict test's next 10
    trials: were that a background, it would show about once in 10, so the clean end (20
    quiet trials) is tested to 3 x 10 = 30, not to 3 x 40 = 120 (core.background_look on
    the trials after the step, issue 18's fifth round).  Without a clean step there (no
    verdict of the bisect chose it), all 40 trials count, and under --steady-rate too: the
    look is that mode's only guard against a background the clean end hid."""
    from bisect_driver.bisect.confirm import Confirmer, confirm_run_id
    from bisect_driver.bisect.direction import Direction
    from bisect_driver.store.journal import Journal
    from bisect_driver.verdict.core import ErrorBudget, Reason, run_policy
    from bisect_driver.verdict.judge import CommitTester

    runner = _Growing({"end": (10, 20), "new": (0, 20), "w": (1, 40)})
    journal = Journal(tmp_path / "j.sqlite3")
    policy = run_policy(0.99, alpha=0.1, max_trials=200, steady=steady)
    tester = CommitTester("r", journal, runner, runner, policy)  # type: ignore[arg-type]
    tester.record(runner.evidence("end"), "bug", 0.0, Reason.ENDPOINT)
    tester.record(runner.evidence("new"), "clean", 0.0, Reason.ENDPOINT)
    if step_trials:
        step = _Counts({"w": (0, step_trials)}).evidence("w")
        tester.record(step, "clean", 0.1, Reason.DECIDED)
    strict = tester.with_alpha(confirm_run_id("r"), 0.008, floor=0.01)
    strict.record(runner.evidence("w"), "bug", 0.0, Reason.DECIDED)
    confirmer = Confirmer(
        "r",
        tester,
        None,  # type: ignore[arg-type]
        Direction.FIX,
        "end",
        None,  # type: ignore[arg-type]
        [],
        lambda _line: None,
        0.01,
        ErrorBudget(0.01),
        new_end="new",
    )
    assert confirmer.background_behind("w") is None  # the clean end stayed quiet
    assert runner.counts["new"] == (0, looked_to)


def test_the_rate_next_to_the_change_is_below_the_floor_only_below_its_lower_bound() -> None:
    """The default floor is a sixth of an estimate (here 10/100): a neighbour whose 95 %
    upper bound is below the floor but not below the floor's own lower bound is a drift of
    about a sixth, measured, and the strict test goes on at the neighbour's lower bound
    (issue 18's third round: before, every fifth hunt at a drift of a sixth ended "below the
    floor") when it is measured (three reproductions); one below the floor's lower bound is
    deeper drift, inconclusive as before, and so is anything below a --min-rate (no
    estimate: ``low`` is the floor)."""
    floor = floor_of(Reference(10, 100), None)
    assert floor.rate == pytest.approx(10 / 100 / 6)
    assert floor.low == pytest.approx(lower_bound(10, 100) / 6)
    between, below = (10, 1200), (10, 2000)
    assert floor.low < upper_bound(*between) < floor.rate
    assert upper_bound(*below) < floor.low

    went_on = floor_after_near(between, floor.rate, floor.low)
    assert went_on.inconclusive is None
    assert went_on.floor == pytest.approx(lower_bound(*between))
    assert floor_after_near(between, floor.rate).inconclusive  # the rule before
    assert floor_after_near(below, floor.rate, floor.low).inconclusive
    # A neighbour that reached its cap with fewer than three reproductions is not measured:
    # its lower bound is near 0, so against the floor itself, as before.
    unmeasured = (1, 400)
    assert floor.low < upper_bound(*unmeasured) < floor.rate
    assert floor_after_near(unmeasured, floor.rate, floor.low).inconclusive
    given = floor_of(Reference(10, 100), 0.0167)
    assert given.low == given.rate == 0.0167
    assert floor_after_near(between, given.rate, given.low).inconclusive


def test_the_neighbour_is_measured_until_it_is_clearly_above_or_below_the_floor() -> None:
    """core.near_settled: three reproductions that put the rate above the floor settle it;
    below the floor but not below its lower bound it is measured on (to ten reproductions)."""
    floor = floor_of(Reference(10, 100), None)
    assert near_settled(3, 20, floor.rate, floor.low)
    assert not near_settled(2, 10, floor.rate, floor.low)
    assert upper_bound(3, 600) < floor.rate and upper_bound(3, 600) > floor.low
    assert not near_settled(3, 600, floor.rate, floor.low)
    assert near_settled(3, 600, floor.rate)  # the rule before
    assert near_settled(10, 1000, floor.rate, floor.low)


# -- the steps' level and the levels that do not follow it (issue 18, fourth round) --------


LOOSER_STEPS = 0.2
"""A steps' level looser than the anchor's, as `where_trials_go.py --soft-alpha 0.2` runs."""


def test_the_clean_end_keeps_its_anchor_level_when_the_steps_are_cheaper() -> None:
    """With steps at a looser level than ANCHOR_ALPHA (0.1), the clean end's anchor keeps
    0.1: a failure half as frequent as the bug must still have shown there with 0.9."""
    from bisect_driver.verdict.core import EndsAction, ends_next, run_policy
    from bisect_driver.verdict.stats import ANCHOR_ALPHA, anchor_trials

    policy = run_policy(0.99, alpha=LOOSER_STEPS, max_trials=200)
    bug_end = (10, 100, 100)
    need = anchor_trials(Reference(10, 100), ANCHOR_ALPHA, 200)
    assert need == math.ceil(math.log(0.1) / math.log(1 - 0.05))
    assert anchor_trials(Reference(10, 100), LOOSER_STEPS, 200) < need
    short = ends_next(bug_end, (0, need - 1, need - 1), policy, clean_tests_left=3)
    assert short.action is EndsAction.TEST
    done = ends_next(bug_end, (0, need, need), policy, clean_tests_left=3)
    assert done.action is EndsAction.DECIDED and done.bug_side == "old"


def test_the_backport_checks_stay_ten_times_stricter_than_the_anchor(tmp_path: Path) -> None:
    """The backport checks' tester (no floor) decides at ANCHOR_ALPHA / 10 = 0.01 whatever
    the steps' level, not at a looser steps' level / 10."""
    from bisect_driver.bisect.confirm import CONFIRM_FACTOR, strict_tester
    from bisect_driver.store.journal import Journal
    from bisect_driver.verdict.core import run_policy
    from bisect_driver.verdict.judge import CommitTester
    from bisect_driver.verdict.stats import ANCHOR_ALPHA

    policy = run_policy(0.99, alpha=LOOSER_STEPS, max_trials=200)
    journal = Journal(tmp_path / "journal.sqlite3")
    tester = CommitTester("run", journal, None, None, policy)  # type: ignore[arg-type]
    checks = strict_tester(tester, "run")
    assert checks.policy.alpha == pytest.approx(ANCHOR_ALPHA / CONFIRM_FACTOR)
    assert checks.policy.alpha == pytest.approx(0.01)


def test_a_soft_bug_verdict_over_a_background_keeps_the_anchor_level() -> None:
    """Over a background (fp > 0) a step's BUG needs P(X >= k | n, fp) <= ANCHOR_ALPHA (0.1),
    even with steps at a looser level: a wrong CLEAN is repaired by the strict test, a wrong
    BUG (background flakes taken for the bug) is not."""
    from bisect_driver.verdict.core import Policy, verdict_of
    from bisect_driver.verdict.stats import ANCHOR_ALPHA, bug_p_value

    fp = 0.05
    p = bug_p_value(3, 30, fp)
    assert ANCHOR_ALPHA < p <= LOOSER_STEPS
    soft = Policy(alpha=LOOSER_STEPS, fp=fp)
    assert verdict_of(3, 30, Reference(20, 40), soft).verdict != Verdict.BUG
    assert verdict_of(4, 30, Reference(20, 40), soft).verdict == Verdict.BUG
    # and a soft CLEAN is at the steps' own level
    k0 = next(
        n for n in range(1, 500) if verdict_of(0, n, Reference(20, 40), soft).verdict == "clean"
    )
    strict = Policy(alpha=ANCHOR_ALPHA, fp=fp)
    assert verdict_of(0, k0, Reference(20, 40), strict).verdict == Verdict.UNDECIDED
