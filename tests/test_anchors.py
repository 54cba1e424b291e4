"""The hunt's anchors: the ends' verdicts, and the bisect log a correction replays.

Both came from CI failures: a fix hunt turned into a regression hunt because the new end's
other failure happened to show before the old end's bug did; and a correction whose replay
already named the answer was followed by `git bisect run`, which re-tested a finished
bisect and later made git refuse the log ("was both broken and fixed").
"""

from __future__ import annotations

import math
from pathlib import Path

import git
import pytest
from conftest import read_report, tool_args
from hypothesis import given
from hypothesis import strategies as st
from test_revert import commit_files, git_

from bisect_driver.bisect.confirm import corrected_log
from bisect_driver.bisect.gitbisect import GitBisect
from bisect_driver.plugin.errors import EXIT_ENDPOINTS, EXIT_FOUND
from bisect_driver.store.repo import checkout_for
from bisect_driver.verdict.stats import (
    ANCHOR_SHARE,
    Reference,
    Verdict,
    anchor_trials,
    decide_anchor,
)


@given(
    st.integers(1, 60),
    st.integers(0, 60),
    st.floats(1e-4, 0.2),
)
def test_anchor_trials_would_show_a_failure_half_as_frequent(k: int, extra: int, a: float) -> None:
    ref = Reference(k, k + extra)
    n = anchor_trials(ref, a, 10**9)
    q = ANCHOR_SHARE * ref.rate
    assert (1 - q) ** n <= a * (1 + 1e-9)
    assert n == 1 or (1 - q) ** (n - 1) > a  # and not one trial more than that


@given(st.integers(1, 30), st.integers(0, 30), st.integers(0, 400))
def test_the_clean_end_is_never_clean_before_its_anchor_trials(k: int, extra: int, n: int) -> None:
    ref = Reference(k, k + extra)
    d = decide_anchor(0, n, ref, 0.05, 0.005, cap=200)
    if d.verdict == Verdict.CLEAN:
        assert n >= anchor_trials(ref, 0.005, 200)


def test_anchor_trials_are_capped_by_max_trials() -> None:
    assert anchor_trials(Reference(1, 100), 0.005, 200) == 200
    assert anchor_trials(Reference(0, 10), 0.005, 200) == 200
    assert anchor_trials(Reference(10, 10), 0.005, 200) == math.ceil(
        math.log(0.005) / math.log(0.5)
    )


# -- the corrected bisect log -------------------------------------------------------------

LINEAR = [f"{i:040x}" for i in range(1, 11)]  # LINEAR[i] is an ancestor of LINEAR[j] iff i <= j


def linear_ancestor(a: str, b: str) -> bool:
    return LINEAR.index(a) <= LINEAR.index(b)


def log_of(marks: list[tuple[str, int]]) -> str:
    lines = [f"git bisect start '--term-old=broken' '--term-new=fixed' {LINEAR[9]} {LINEAR[0]}"]
    for term, i in marks:
        lines += [f"# {term}: [{LINEAR[i]}] change {i}", f"git bisect {term} {LINEAR[i]}"]
    return "\n".join(lines) + "\n"


def test_a_commit_corrected_to_broken_drops_fixed_marks_on_its_ancestors() -> None:
    log = log_of([("fixed", 5), ("broken", 2), ("fixed", 3), ("fixed", 7)])
    out, dropped = corrected_log(log, LINEAR[7], ("broken", "fixed"), True, linear_ancestor)
    assert dropped == [LINEAR[5], LINEAR[3]]
    marks = [line for line in out.splitlines() if line.startswith("git bisect ")]
    assert marks[1:] == [f"git bisect broken {LINEAR[2]}", f"git bisect broken {LINEAR[7]}"]


def test_a_commit_corrected_to_fixed_drops_broken_marks_on_its_descendants() -> None:
    log = log_of([("broken", 5), ("broken", 2), ("fixed", 8), ("broken", 6)])
    out, dropped = corrected_log(log, LINEAR[4], ("broken", "fixed"), False, linear_ancestor)
    assert dropped == [LINEAR[5], LINEAR[6]]
    assert f"git bisect fixed {LINEAR[8]}" in out and f"git bisect broken {LINEAR[2]}" in out


def test_a_consistent_correction_drops_nothing() -> None:
    log = log_of([("fixed", 5), ("broken", 2), ("fixed", 3)])
    out, dropped = corrected_log(log, LINEAR[3], ("broken", "fixed"), True, linear_ancestor)
    assert dropped == []
    assert f"git bisect broken {LINEAR[3]}" in out and f"git bisect fixed {LINEAR[5]}" in out


@pytest.fixture
def line_repo(tmp_path):
    path = tmp_path / "user"
    path.mkdir()
    git_(path, "init", "-q", "-b", "main")
    shas = [commit_files(path, {"f": f"{i}\n"}, f"c{i}", 1_600_000_000 + i) for i in range(8)]
    return shas, checkout_for(git.Repo(path), tmp_path / "cache")


def test_a_replay_that_names_the_answer_is_the_outcome(line_repo, tmp_path: Path) -> None:
    shas, checkout = line_repo
    terms = ("broken", "fixed")
    log = (
        f"git bisect start '--term-old=broken' '--term-new=fixed' {shas[7]} {shas[0]}\n"
        f"git bisect broken {shas[3]}\ngit bisect fixed {shas[4]}\n"
    )
    bisect = GitBisect(checkout, tmp_path / "bisect.log")
    try:
        outcome = bisect.replay(log, terms)
        assert outcome is not None and outcome.candidates == [shas[4]]
        # git left HEAD on a commit it tested earlier: a `run` now would test it again.
        assert "git bisect fixed" in outcome.log
    finally:
        checkout.bisect_reset()


def test_a_replay_that_leaves_work_returns_none(line_repo, tmp_path: Path) -> None:
    shas, checkout = line_repo
    log = f"git bisect start '--term-old=broken' '--term-new=fixed' {shas[7]} {shas[0]}\n"
    bisect = GitBisect(checkout, tmp_path / "bisect.log")
    try:
        assert bisect.replay(log, ("broken", "fixed")) is None
    finally:
        checkout.bisect_reset()


# -- both ends, deterministically: which failure shows first must not decide -------------


def scripted_repo(path: Path, probes: list[str]) -> list[str]:
    """One commit per probe script (artifact probe.sh; build: nothing)."""
    path.mkdir()
    git_(path, "init", "-q", "-b", "main")
    script = path / "probe.sh"
    shas = []
    for i, body in enumerate(probes):
        script.write_text("#!/bin/sh\n" + body)
        script.chmod(0o755)
        shas.append(commit_files(path, {"N": f"{i}\n"}, f"c{i}", 1_600_000_000 + i))
    return shas


def scripted_args(path: Path, shas: list[str], tmp_path: Path, *extra: str) -> list[str]:
    args = tool_args(path, shas[0], shas[-1], tmp_path / "cache", "true", ["probe.sh"])
    return [*args, "--report-dir", str(tmp_path / "report"), *extra]


SEGV_FROM_TRIAL_8 = '[ "$BISECT_TRIAL" -ge 8 ] && { echo "crashed: SIGSEGV"; exit 1; }\nexit 0\n'
ABRT_EVERY_OTHER = (
    '[ $((BISECT_TRIAL % 2)) -eq 0 ] && { echo "crashed: SIGABRT"; exit 1; }\nexit 0\n'
)
SEGV_ALWAYS = 'echo "crashed: SIGSEGV"; exit 1\n'
CLEAN = "exit 0\n"
ABRT_ONCE = '[ "$BISECT_TRIAL" -eq 1 ] && { echo "crashed: SIGABRT"; exit 1; }\nexit 0\n'


def test_the_new_end_failing_first_does_not_turn_the_hunt_around(cli, tmp_path: Path) -> None:
    """The old end's SIGSEGV shows only from its 9th trial, the new end aborts at once: the
    previous endpoint test called the old end clean after a handful of trials and hunted
    the SIGABRT as a regression.  Both fail, at like rates: the bug must be named."""
    path = tmp_path / "user"
    shas = scripted_repo(path, [SEGV_FROM_TRIAL_8, CLEAN, CLEAN, ABRT_EVERY_OTHER])
    r = cli(*scripted_args(path, shas, tmp_path))
    assert r.status == EXIT_ENDPOINTS, r.err
    last = r.err.strip().splitlines()[-1]
    assert "both ends fail, differently" in last and "--signature" in last


@pytest.mark.slow
def test_a_rare_other_failure_at_the_fixed_end_does_not_stop_the_hunt(cli, tmp_path: Path) -> None:
    """The fixed end aborts once in its anchor trials (its second; the anchor at a rate of
    1.0 is four trials); the old end fails every time: the
    SIGSEGV is the bug, the abort an other failure, and the fix is found."""
    path = tmp_path / "user"
    shas = scripted_repo(path, [SEGV_ALWAYS, SEGV_ALWAYS, SEGV_ALWAYS, CLEAN, CLEAN, ABRT_ONCE])
    r = cli(*scripted_args(path, shas, tmp_path))
    assert r.status == EXIT_FOUND, r.err
    assert r.out.strip() == shas[3]
    data = read_report(tmp_path / "report")
    new_row = next(e for e in data["evidence"] if e["commit"] == shas[-1])
    assert new_row["reproduced"] == 0 and new_row["other"] == 1, new_row
