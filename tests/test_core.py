"""The decision core (bisect_driver/verdict/core.py): pure, and each decision's promise."""

from __future__ import annotations

import ast
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

import bisect_driver.verdict.core as core
from bisect_driver.plugin.errors import EXIT_AMBIGUOUS, EXIT_FOUND, EXIT_UNCONFIRMED
from bisect_driver.verdict.core import (
    FIRST_ROUND_SHARE,
    Apart,
    EndsAction,
    ErrorBudget,
    Judged,
    Next,
    Policy,
    answer,
    at_level,
    background_bounds,
    background_look,
    background_message,
    background_of,
    background_to_measure,
    ends_next,
    is_correction,
    judge_next,
    parse_background,
    reference_commit,
    signature_ambiguity,
    tell_apart,
    with_background,
)
from bisect_driver.verdict.stats import Reference, Verdict

ALLOWED = {"bisect_driver.verdict.stats", "bisect_driver.plugin.errors"}
STDLIB = {"__future__", "collections.abc", "dataclasses", "enum", "math"}


def test_the_core_is_pure() -> None:
    """No I/O, no git, no clock: it imports the statistics, exit codes and the stdlib's
    data types only (and nothing that opens a file, a process, a repository or a clock)."""
    tree = ast.parse(Path(core.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
        elif isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
    assert imported <= ALLOWED | STDLIB, imported - ALLOWED - STDLIB
    text = Path(core.__file__).read_text()
    for word in ("open(", "subprocess", "time.", "os.", "git.", "Path("):
        assert word not in text, word


@given(delta=st.floats(1e-6, 0.5), rounds=st.integers(1, 40))
def test_the_budget_is_never_overspent(delta: float, rounds: int) -> None:
    budget = ErrorBudget(delta)
    assert sum(budget.round(t) for t in range(rounds)) <= delta
    assert budget.anchor == budget.round(0) == delta * FIRST_ROUND_SHARE
    assert all(budget.round(t + 1) < budget.round(t) for t in range(rounds))
    assert abs(ErrorBudget.of(1 - delta).delta - delta) < 1e-12


@given(
    candidates=st.integers(0, 5),
    confirmed=st.booleans(),
    unconfirmed=st.lists(st.text(min_size=1), max_size=2),
    budget=st.one_of(st.none(), st.floats(1e-4, 0.2)),
)
def test_the_answer_claims_only_what_was_confirmed(
    candidates: int, confirmed: bool, unconfirmed: list[str], budget: float | None
) -> None:
    a = answer(candidates, confirmed, unconfirmed, budget)
    if a.confidence is not None:
        assert confirmed and not unconfirmed and budget is not None and candidates >= 1
        assert a.confidence == 1 - budget
    if candidates == 1:
        assert a.exit_status == (EXIT_UNCONFIRMED if unconfirmed else EXIT_FOUND)
    else:
        assert a.exit_status == EXIT_AMBIGUOUS


@given(
    ko=st.integers(0, 60),
    no=st.integers(1, 120),
    kn=st.integers(0, 60),
    nn=st.integers(1, 120),
)
def test_telling_the_ends_apart_does_not_depend_on_which_is_old(
    ko: int, no: int, kn: int, nn: int
) -> None:
    ko, kn = min(ko, no), min(kn, nn)
    a = tell_apart((ko, no), (kn, nn), 0.005, 200)
    b = tell_apart((kn, nn), (ko, no), 0.005, 200)
    swap = {Apart.OLD: Apart.NEW, Apart.NEW: Apart.OLD}
    assert b == swap.get(a, a)


def test_a_rare_flake_is_told_apart_with_more_trials() -> None:
    """1 in 30 against 9 in 30 is not yet significant at delta/2; more trials are."""
    assert tell_apart((9, 30), (1, 30), 0.005, 200) is Apart.PENDING
    assert tell_apart((27, 90), (3, 90), 0.005, 200) is Apart.OLD
    assert tell_apart((30, 60), (28, 60), 0.005, 200) is Apart.ALIKE


def test_a_few_trials_each_never_show_the_ends_alike() -> None:
    """1/2 against 1/2 says nothing of the rates: test on (it stopped hunts with "alike")."""
    assert tell_apart((1, 2), (1, 2), 0.005, 200) is Apart.PENDING
    assert tell_apart((1, 22), (1, 22), 0.005, 200) is Apart.PENDING
    assert tell_apart((9, 30), (9, 30), 0.005, 200) is Apart.ALIKE


@given(
    st.integers(1, 20),
    st.integers(1, 400),
    st.integers(0, 400),
    st.integers(10, 2000),
)
def test_a_correction_looks_for_a_background_it_would_see(
    k: int, extra: int, n0: int, cap: int
) -> None:
    """Without a known background the clean end is tested until a background at the rate
    seen at the corrected commit would have shown about three times, never past the cap;
    nothing once a background is known or the clean end has failed."""
    n = k + extra
    more = background_look(k, n, (0, n0), 0.0, cap)
    want = min(cap, -(-3 * n // k))
    assert more == max(0, want - n0)
    assert n0 + more <= max(cap, n0)
    assert background_look(k, n, (0, n0), 0.01, cap) == 0
    assert background_look(k, n, (1, n0), 0.0, cap) == 0


@given(st.integers(0, 3000), st.integers(0, 3000), st.integers(1, 3000))
def test_the_background_is_measured_as_well_as_the_undecided_neighbour(
    counted: int, n0: int, cap: int
) -> None:
    more = background_to_measure(counted, n0, cap)
    assert more >= 0
    assert n0 + more == max(n0, min(cap, counted))


def test_a_background_raises_what_a_bug_verdict_must_beat() -> None:
    assert background_of((3, 90)) == (3, 90) and background_of((0, 90)) == (0, 0)
    lo, hi = background_bounds((3, 90))
    assert 0 < lo < 3 / 90 < hi
    policy = with_background(Policy(alpha=0.05), (3, 90))
    assert policy.fp == hi and policy.background_lo == lo
    assert with_background(Policy(alpha=0.05), (0, 0)) == Policy(alpha=0.05)
    # More trials at the clean end narrow the bounds both ways (the fp may come down).
    sharper = with_background(policy, (30, 900))
    assert sharper.fp < hi and sharper.background_lo > lo
    assert parse_background(background_message((3, 90))) == (3, 90)


@given(st.integers(1, 50), st.integers(0, 500), st.sampled_from([0.05, 0.005, 0.0005]))
def test_a_strict_test_takes_the_background_at_its_own_level(k: int, extra: int, a: float) -> None:
    """The strict tester's bounds of the background are as wide as its error target: it
    never takes a 95 % bound (wrong 5 % of the time) for the truth."""
    soft = with_background(Policy(alpha=0.05), (k, k + extra))
    strict = at_level(Policy(alpha=a, background=soft.background, fp=soft.fp))
    if a == 0.05:
        assert (strict.fp, strict.background_lo) == (soft.fp, soft.background_lo)
    else:  # wider both ways (the upper bound of k = n is 1 at every level)
        assert strict.fp >= soft.fp and strict.background_lo < soft.background_lo
        assert strict.fp > soft.fp or soft.fp == 1.0


@given(k=st.integers(1, 30), n=st.integers(1, 300), ref_k=st.integers(1, 50))
def test_a_reproduction_is_never_clean_without_a_background(k: int, n: int, ref_k: int) -> None:
    k = min(k, n)
    step = judge_next(
        k, n, n, Reference(ref_k, 100), Policy(alpha=0.05), clean_tests_left=2, can_calibrate=True
    )
    assert step.action is Next.DECIDED and step.verdict == Verdict.BUG


def test_a_step_calibrates_the_reference_only_while_it_pays() -> None:
    policy = Policy(alpha=0.05)
    thin = judge_next(0, 2, 2, Reference(1, 4), policy, clean_tests_left=4, can_calibrate=True)
    assert thin.action is Next.CALIBRATE
    gone = judge_next(0, 2, 2, Reference(1, 4), policy, clean_tests_left=4, can_calibrate=False)
    assert gone.action is Next.TRIALS
    capped = judge_next(
        0, 400, 400, Reference(0, 400), policy, clean_tests_left=4, can_calibrate=True
    )
    assert capped.action is Next.DECIDED and capped.verdict == Verdict.SKIP


def test_the_ends_decide_direction_and_anchor() -> None:
    policy = Policy(alpha=0.05, anchor_alpha=0.005)
    nxt = ends_next((10, 20, 20), (0, 4, 4), policy, clean_tests_left=3)
    assert nxt.action is EndsAction.TEST and "new" in nxt.test
    done = ends_next((10, 20, 20), (0, 40, 40), policy, clean_tests_left=3)
    assert done.action is EndsAction.DECIDED and done.bug_side == "old"
    both = ends_next((10, 20, 20), (3, 20, 20), policy, clean_tests_left=3)
    assert both.action is EndsAction.FAIL
    with_bg = ends_next(
        (10, 20, 20), (1, 40, 40), policy, clean_tests_left=3, background=(0.001, 0.13)
    )
    assert with_bg.action is EndsAction.DECIDED and with_bg.bug_side == "old"


def test_a_corrected_commit_is_not_the_steps_reference() -> None:
    """The reproducing end is, however low a corrected commit's rate: that rate counted the
    clean run that made the bisect choose the commit, and Fisher's test against its one
    reproduction asked later steps for nine times its trials (core.reference_commit)."""
    judged = [
        Judged("a", "bug", f"{core.Reason.CORRECTED} (was clean)"),
        Judged("end", "bug", "endpoint"),
        Judged("other", "clean", "endpoint"),
        Judged("b", "bug", "decided"),
    ]
    assert reference_commit(judged) == "end"
    assert reference_commit([j for j in judged if j.commit != "end"]) is None


def test_an_end_is_never_corrected() -> None:
    assert is_correction(Judged("x", "clean", "decided"), "bug")
    assert not is_correction(Judged("x", "clean", "endpoint"), "bug")
    assert not is_correction(Judged("x", "bug", "decided"), "bug")
    assert not is_correction(None, "bug")


def test_an_answer_that_rests_on_a_face_is_undecidable() -> None:
    core_sigs = {"SIGSEGV"}
    only_face = signature_ambiguity({"Aborted": 3}, set(), core_sigs, {"Aborted"})
    assert only_face is not None and "Aborted" in only_face and "--signature" in only_face
    overlap = signature_ambiguity({"SIGSEGV": 2}, {"Aborted"}, core_sigs, {"Aborted"})
    assert overlap is not None and "Aborted" in overlap
    assert signature_ambiguity({"SIGSEGV": 2, "Aborted": 1}, set(), core_sigs, {"Aborted"}) is None
    unrelated = signature_ambiguity({"SIGSEGV": 2}, {"assertion"}, core_sigs, {"Aborted"})
    assert unrelated is None


def test_every_reason_written_is_read_back() -> None:
    """The reasons the decisions write are the ones they (and the checks) read back."""
    from bisect_driver.verdict.core import Reason

    assert Reason.of("endpoint") is Reason.ENDPOINT
    assert Reason.of("decided") is Reason.DECIDED
    assert Reason.of(f"{Reason.CORRECTED} (was clean)") is Reason.CORRECTED
    built = f"{Reason.BUILD}failed: error: x.c:1"
    assert Reason.of(built) is Reason.BUILD and Reason.BUILD.detail(built) == "failed: error: x.c:1"
    step = judge_next(
        0, 400, 400, Reference(0, 400), Policy(alpha=0.05), clean_tests_left=1, can_calibrate=False
    )
    assert Reason.of(step.reason) is Reason.UNDECIDED
    assert Reason.of("something else") is None


def test_corrections_onto_the_clean_end_are_not_claimed() -> None:
    """Only corrections that moved the answer so far that the clean end is its clean side."""
    assert core.walked_to_the_clean_end(2, ["c", "end"], "end")
    assert not core.walked_to_the_clean_end(0, ["end"], "end")  # a change at the last commit
    assert not core.walked_to_the_clean_end(3, ["c"], "end")
