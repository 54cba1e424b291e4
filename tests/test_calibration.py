"""The claimed confidence, calibrated as shipped: simulated hunts through hunt.stage.hunt.

bench/simulate.py fakes only builds, trial outcomes and history; the ends check, the
steps, the confirmation, corrections and the answer are bisect_driver's own.  So these
tests fail when a change to the shipped decisions breaks the promise (the looser strict
test below shows that they can), not when a copy of them drifts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import calibrate_confidence  # noqa: E402
import simulate  # noqa: E402

import bisect_driver.verdict.core as core  # noqa: E402
from bisect_driver.verdict.stats import Decision, decide_strict  # noqa: E402

RUNS = 140


def _claims(rows: list[tuple[str, simulate.Simulated]]) -> tuple[int, int]:
    return simulate.share_wrong([r for _kind, r in rows])


@pytest.mark.slow
def test_claimed_confidence_is_calibrated_in_every_kind() -> None:
    """Among simulated hunts that claim 0.99, at most 1 % are wrong (one allowed at this
    size), in every kind: drift, skips, unrelated crashes, a flaky clean end, two faces."""
    rows = calibrate_confidence.run(RUNS, seed=3, small=True)
    claims, wrong = _claims(rows)
    assert claims >= RUNS * 0.7, claims
    assert wrong <= max(1, 0.01 * claims), (wrong, claims)
    for kind in calibrate_confidence.KINDS:
        mine = [r for k, r in rows if k == kind]
        assert mine and sum(r.wrong for r in mine) <= 1, kind


@pytest.mark.slow
def test_a_looser_strict_test_fails_the_calibration(monkeypatch: pytest.MonkeyPatch) -> None:
    """The calibration has teeth: a strict test held to the far end's rate instead of the
    floor (no room for drift) makes the same simulated hunts claim wrong answers."""

    def looser(k: int, n: int, floor: float, alpha: float, fp: float = 0.0) -> Decision:
        return decide_strict(k, n, min(0.9, floor * 6), alpha, fp)

    monkeypatch.setattr(core, "decide_strict", looser)
    rows = calibrate_confidence.run(RUNS, seed=3, small=True)
    # The decisions alone: the revert check, which gates most of these, may not apply.
    alone = [r for _k, r in rows if r.alone is not None]
    wrong = sum(r.wrong_alone for r in alone)
    assert wrong > max(1, 0.01 * len(alone)), (wrong, len(alone))


def test_the_simulator_decides_nothing_itself() -> None:
    """bench/simulate.py imports the hunt and its testers, and no statistics of its own."""
    text = (Path(simulate.__file__)).read_text()
    for name in ("decide", "clean_p_value", "decide_strict", "calibration_pays", "Reference("):
        assert f"import {name}" not in text and f" {name}(" not in text, name
    assert "from bisect_driver.hunt.stage import" in text


def test_a_simulated_hunt_finds_a_plain_fix_and_a_plain_regression() -> None:
    for direction, change in (("fix", 40), ("regression", 17)):
        case = simulate.Case(80, change, 0.4, direction=direction)
        out = simulate.simulate(case, seed=1)
        assert out.candidates == [change] and out.confidence == 0.99 and out.exit_status == 0
        assert out.trials > 0 and 5 <= out.commits <= 12


def test_a_long_drifted_stretch_does_not_use_up_the_corrections() -> None:
    """150 of 400 commits after a regression carry the bug at a sixth of the end's rate:
    every step there may look clean, and each that did is corrected in its own round.  No
    hunt of eight gives up for want of rounds, and each claims the change; one (seed 3)
    takes 13 rounds, where the cap at 12 (issue 18's fifth round) gave up with the right
    commit named and no claim, as a CI run did on a real race."""
    case = simulate.Case(400, 100, 0.6, near_rate=0.1, near_span=150, direction="regression")
    rounds = []
    for seed in range(8):
        out = simulate.simulate(case, seed=seed)
        assert not any("still contradicting" in u for u in out.unconfirmed), (seed, out)
        assert out.candidates == [100] and out.confidence == 0.99, (seed, out.unconfirmed)
        rounds.append(out.corrected)
    assert max(rounds) > 12, rounds


@pytest.mark.slow
def test_a_background_the_ends_did_not_show_is_found_by_a_correction() -> None:
    """Every commit fails now and then with the bug's own failure, and the clean end's
    first 60 trials happen to show none (as 0/34 did when a wrong commit was named): the
    corrections point at it, the clean end is tested again, the hunt bisects again with the
    background, and no hunt names a wrong commit."""
    import random

    rng = random.Random(5)
    runs = []
    for _ in range(8):
        n = rng.randint(20, 120)
        rate = rng.uniform(0.15, 0.5)
        direction = rng.choice(["fix", "regression"])
        case = simulate.Case(
            n, rng.randint(1, n), rate, direction=direction, background=rate / 8, hidden=60
        )
        runs.append(simulate.simulate(case, seed=rng.randrange(1 << 30)))
    assert not any(r.wrong or r.wrong_alone for r in runs)
    assert sum(r.background_found for r in runs) >= 6
    assert sum(r.claimed for r in runs) >= 6


def test_the_revert_check_gates_a_wrong_answer_in_the_simulator() -> None:
    """The simulated revert commit behaves as its tree would: reverting the change brings
    a fixed bug back; reverting anything else leaves the new end as it is."""
    fix = simulate.Case(50, 20, 0.4)
    assert fix.reverted_rate(20) == 0.4 and fix.reverted_rate(19) == 0.0
    reg = simulate.Case(50, 20, 0.4, direction="regression")
    assert reg.reverted_rate(20) == 0.0 and reg.reverted_rate(30) == 0.4
    out = simulate.simulate(fix, seed=1)
    assert out.revert == "PASS" and out.claimed


def test_skips_next_to_the_answer_give_a_confirmed_set() -> None:
    """A candidate set (untestable commits border the answer) is confirmed like a single
    answer: its clean side passed the strict test, so the set claims 0.99, exit 1."""
    case = simulate.Case(60, 30, 0.5, skips=frozenset({29}))
    out = simulate.simulate(case, seed=2)
    assert 30 in out.candidates and len(out.candidates) == 2
    assert out.exit_status == 1 and out.confidence == 0.99


def _calibrate(*args: str) -> str:
    """bench/calibrate_confidence.py's output with ``args``."""
    import subprocess

    bench = Path(simulate.__file__).parent
    command = [sys.executable, str(bench / "calibrate_confidence.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_the_calibration_bench_prints_its_tables(tmp_path: Path) -> None:
    """bench/calibrate_confidence.py as documented (docs/statistics.md), at a small size."""
    import json

    json_path = str(tmp_path / "c.json")
    runs = len(calibrate_confidence.KINDS)
    out = _calibrate("--runs", str(runs), "--seed", "4", "--jobs", "2", "--json", json_path)
    assert "| claims confidence >= c |" in out and "| unrelated crash next to the change |" in out
    data = json.loads((tmp_path / "c.json").read_text())
    assert len(data["runs"]) == runs and {r["kind"] for r in data["runs"]} == set(
        calibrate_confidence.KINDS
    )


@pytest.mark.slow
def test_the_calibration_bench_takes_one_kind_and_the_steady_mode() -> None:
    """--kind and --steady-rate, as docs/statistics.md runs them."""
    out = _calibrate("--runs", "2", "--kind", "no drift", "--steady-rate")
    assert "2 simulated hunts with --steady-rate" in out
    rows = [
        line
        for line in out.splitlines()
        if any(line.startswith(f"| {kind} |") for kind in calibrate_confidence.KINDS)
    ]
    assert [r.split(" | ")[0] for r in rows] == ["| no drift"], out


@pytest.mark.parametrize(
    "extra",
    [[], ["--steady-rate"], ["--soft-alpha", "0.1"], ["--perfect-steps"], ["--regression"]],
    ids=["default", "steady-rate", "soft-alpha", "perfect-steps", "regression"],
)
def test_the_where_bench_prints_its_table(extra: list[str]) -> None:
    """bench/where_trials_go.py as documented, one small cell: the parts add up, and the
    steps' level is the one asked for (the shipped SOFT_ALPHA by default)."""
    import subprocess

    from bisect_driver.verdict.stats import SOFT_ALPHA

    bench = Path(simulate.__file__).parent
    cmd = [sys.executable, str(bench / "where_trials_go.py"), "--runs", "2", "--cells", "0.5:30"]
    out = subprocess.run(cmd + extra, capture_output=True, text=True, check=True).stdout
    level = extra[1] if extra[:1] == ["--soft-alpha"] else str(SOFT_ALPHA)
    assert f"steps at {level}," in out.splitlines()[0]
    hunts = "regression hunts" if "--regression" in extra else "fix hunts"
    assert hunts in out.splitlines()[0]
    row = next(line for line in out.splitlines() if line.startswith("| 0.5 | 30 |"))
    total, *parts = (float(x) for x in row.split("|")[3:9])
    assert total > 0 and abs(sum(parts) - total) <= 3  # each mean rounded
    spread = next(line for line in out.splitlines() if line.startswith("total, standard error"))
    assert f"0.5:30 {total:.0f} ± " in spread
    corrected, commits = row.split("|")[10:12]
    assert 0 <= float(corrected.strip().rstrip("%")) <= 100 and float(commits) >= 2
    if "--perfect-steps" in extra:  # what corrections cost: "mean +- se (share)"
        cost = row.split("|")[12].split()
        assert cost[1] == "+-" and float(cost[2]) >= 0 and cost[3].endswith("%)")
    else:
        assert len(row.split("|")) == 13


def test_a_commits_trials_do_not_depend_on_what_the_hunt_did_elsewhere() -> None:
    """The simulator's common random numbers: each commit's n-th trial comes out the same
    whichever commits ran trials before it, so two policies compared on one seed see the
    same trials wherever they both test (where_trials_go.py --perfect-steps pairs on that)."""
    import random

    from bisect_driver.plugin.probe import TrialContext

    case = simulate.Case(40, 20, 0.5, background=0.3)

    def outcomes(order: list[int]) -> dict[int, list[str]]:
        probe = simulate.SimProbe(case, random.Random(9))
        seen: dict[int, list[str]] = {}
        for i in order:
            done = seen.setdefault(i, [])
            ctx = TrialContext(simulate.sha(i), Path("."), len(done), Path("."), Path("."), 1.0, 0)
            done.append(str(probe.run_trial(ctx).outcome))
        return seen

    a = outcomes([3, 3, 30, 3, 30, 30, 3] * 5)
    b = outcomes([30] * 15 + [5] * 7 + [3] * 20)
    assert a[3] == b[3][: len(a[3])] and a[30] == b[30][: len(a[30])]
    assert "reproduced" in "".join(b[3]).lower() and "reproduced" in "".join(a[30]).lower()


def test_perfect_steps_leave_no_correction_and_the_same_answer() -> None:
    """The counterfactual behind where_trials_go.py --perfect-steps: a hunt that corrects a
    step as shipped has no correction with perfect steps, on the same trials, and names the
    same commit."""
    seen = 0
    for seed in range(40):
        case = simulate.Case(60, 30, 0.1)
        shipped = simulate.simulate(case, seed=seed)
        if not shipped.corrected:
            continue
        seen += 1
        ideal = simulate.simulate(case, seed=seed, perfect_steps=True)
        assert ideal.corrected == 0
        assert ideal.candidates == shipped.candidates == [30]
        if seen == 2:
            break
    assert seen == 2


def test_the_where_bench_refuses_a_level_outside_0_1() -> None:
    import subprocess

    bench = Path(simulate.__file__).parent
    cmd = [sys.executable, str(bench / "where_trials_go.py"), "--soft-alpha", "1.5"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2 and "--soft-alpha must be between 0 and 1" in r.stderr


@pytest.mark.slow
def test_the_cost_bench_prints_its_table(tmp_path: Path) -> None:
    """bench/bench_statistics.py as documented, one hunt a cell, through the shipped hunt."""
    import subprocess

    bench = Path(simulate.__file__).parent
    out = subprocess.run(
        [sys.executable, str(bench / "bench_statistics.py"), "--runs", "1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [
        line
        for line in out.splitlines()
        if line.startswith("| 100 |") or line.startswith("| 2713 |")
    ]
    assert len(rows) == 10, out
    # the default's ratio to the drift-aware bound carries its standard error
    assert all(" ± " in row for row in rows), out
