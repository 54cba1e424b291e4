"""The cluster benches: the replay runs the shipped planner on a recorded run's journal,
and the real-QEMU bench's journal reading works on a recorded run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import flaky_args

from bisect_driver.app.flaky_project import FlakySpec, generate

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import cluster_real  # noqa: E402
import cluster_replay  # noqa: E402


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished one-machine hunt of a generated project: (cache, repo)."""
    from bisect_driver.app.cli import main

    tmp = tmp_path_factory.mktemp("recorded")
    repo = generate(tmp / "repo", FlakySpec(commits=24, change_at=15, rate=0.5, seed=2))
    cache = tmp / "cache"
    assert main([str(a) for a in flaky_args(repo, cache, "--no-verify-backport")]) == 0
    return cache, repo.path


@pytest.mark.slow
def test_replay_on_one_worker_is_the_sum_of_the_recorded_work(recorded: tuple[Path, Path]) -> None:
    cache, repo = recorded
    run_id, settings, visits, marks = cluster_replay.load(cache, None)
    assert marks and visits
    next_of = cluster_replay.plan.git_next_of(repo)
    ends = (settings["good"], settings["bad"])
    one = cluster_replay.replay(visits, marks, ("broken", "fixed"), ends, 1, False, next_of)
    work = sum(v.build or 0 for v in visits) + sum(sum(v.trials) for v in visits)
    assert max(one.slots) == pytest.approx(work)
    assert one.trials == sum(len(v.trials) for v in visits)
    two = cluster_replay.replay(visits, marks, ("broken", "fixed"), ends, 2, False, next_of)
    assert max(two.slots) <= max(one.slots) + 1e-9
    assert two.trials >= one.trials  # batches of two: an odd count gets one more
    out = cache / "replay.md"
    assert cluster_replay.main(["--cache", str(cache), "--workers", "1,2", "--out", str(out)]) == 0
    assert out.read_text().count("| 1 |") == 2 and run_id in out.read_text()


@pytest.mark.slow
def test_real_bench_reads_a_recorded_journal(recorded: tuple[Path, Path]) -> None:
    cache, _repo = recorded
    facts = cluster_real.journal_facts(cache)
    assert facts["trials"] > 0 and facts["builds"] > 0
    assert facts["builds_on_workers"] == 0 and facts["speculative"] == "-"  # one machine
    before = cluster_real.busy_cpu_s()
    sum(i * i for i in range(200_000))
    assert cluster_real.busy_cpu_s() >= before


def test_replay_builds_ahead_while_the_run_waits_for_long_builds() -> None:
    """Synthetic history: 64 commits in a line, 100 s builds, 2 s trials.  On 4 workers the
    shipped planner builds the next steps during each step's build, and steps use them."""
    commits = [f"{i:040x}" for i in range(64)]

    def next_of(olds: frozenset[str], new: str) -> str | None:
        lo = max(commits.index(o) for o in olds) + 1
        hi = commits.index(new)
        return None if hi - lo < 1 else commits[lo + (hi - lo) // 2]

    marks, visits = [], [cluster_replay.Visit(c, 100.0, [2.0] * 4) for c in commits[::63]]
    olds, new = frozenset({commits[0]}), commits[-1]
    while (c := next_of(olds, new)) is not None:
        mark = "broken" if commits.index(c) < 40 else "fixed"
        marks.append((c, mark))
        visits.append(cluster_replay.Visit(c, 100.0, [2.0] * 4))
        olds, new = (olds | {c}, new) if mark == "broken" else (olds, c)
    ends = (commits[0], commits[-1])
    plain = cluster_replay.replay(visits, marks, ("broken", "fixed"), ends, 4, False, next_of)
    ahead = cluster_replay.replay(visits, marks, ("broken", "fixed"), ends, 4, True, next_of)
    assert ahead.used and ahead.ahead >= ahead.used
    assert max(ahead.slots) < max(plain.slots)
    assert plain.builds == len(visits) and not plain.ahead
