"""Overnight robustness: kill -9 at any moment, hangs, Ctrl-C, two runs at once.

Each test drives the real CLI in a process group of its own on a generated
flaky repo, injects the fault, then checks the journal: the answer is right
and every trial was recorded exactly once, and no process is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import flaky_args

from bisect_driver.plugin.errors import EXIT_ENDPOINTS, EXIT_FOUND, EXIT_INTERRUPTED, EXIT_LOCKED

pytestmark = pytest.mark.slow


def start(args: list[str], out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bisect_driver", *args],
        stdout=open(out, "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for(cond, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def marked_args(repo, cache: Path, marks: Path, *extra: str) -> list[str]:
    marks.mkdir(exist_ok=True)
    args = flaky_args(repo, cache, *extra)
    args[args.index("--build-cmd") + 1] = f"touch {marks}/build-$BISECT_COMMIT; sleep 0.3; make -s"
    args[args.index("--probe-cmd") + 1] = (
        f"touch {marks}/trial-$BISECT_COMMIT-$BISECT_TRIAL; ./probe.sh"
    )
    return args


def journal_rows(cache: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(cache / "journal.sqlite3")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def step_events(cache: Path) -> int:
    try:
        return journal_rows(cache, "SELECT COUNT(*) FROM events WHERE kind='step'")[0][0]
    except sqlite3.Error:  # not created yet
        return 0


def assert_journal_consistent(cache: Path) -> None:
    """Trial indices per commit are 0..n-1: nothing repeated, nothing lost in between."""
    per_commit: dict[str, list[int]] = {}
    for commit, idx in journal_rows(cache, "SELECT commit_sha, idx FROM trials"):
        per_commit.setdefault(commit, []).append(idx)
    assert per_commit
    for commit, idxs in per_commit.items():
        assert sorted(idxs) == list(range(len(idxs))), commit
    builds = journal_rows(cache, "SELECT commit_sha, COUNT(*) FROM builds GROUP BY commit_sha")
    assert all(n == 1 for _c, n in builds)


def leftovers(cache: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-af", str(cache)], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if "pgrep" not in ln]


def finish(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bisect_driver", *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("phase", ["build", "trials", "bookkeeping"])
def test_kill_9_then_rerun_resumes_without_losing_or_repeating(make_flaky, tmp_path, phase):
    repo = make_flaky(commits=30, change_at=17, rate=0.4)
    cache, marks = tmp_path / "cache", tmp_path / "marks"
    report = tmp_path / "report"
    args = marked_args(repo, cache, marks, "--report-dir", str(report))
    proc = start(args, tmp_path / "first.log")
    if phase == "build":  # the third build is the first bisect step's
        wait_for(lambda: len(list(marks.glob("build-*"))) >= 3)
    elif phase == "trials":
        wait_for(lambda: len(list(marks.glob("trial-*"))) >= 50)
    else:
        wait_for(lambda: step_events(cache) >= 2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    trials_before = journal_rows(cache, "SELECT COUNT(*) FROM trials")[0][0]
    done = finish(args, tmp_path)
    assert done.returncode == EXIT_FOUND, done.stderr
    assert done.stdout.strip() == repo.answer
    assert journal_rows(cache, "SELECT COUNT(*) FROM trials")[0][0] >= trials_before
    assert_journal_consistent(cache)
    data = json.loads((report / "report.json").read_text())
    assert data["candidate"]["commit"] == repo.answer
    assert leftovers(cache) == []


def test_probe_that_hangs_is_killed_and_recorded_as_hang(make_flaky, cli, tmp_path):
    repo = make_flaky(commits=6, change_at=3, rate=0.4)
    cache = tmp_path / "cache"
    args = flaky_args(repo, cache, "--trial-timeout", "1", "--max-trials", "2")
    args[args.index("--probe-cmd") + 1] = "sleep 1234; exit 0"
    r = cli(*args)
    assert r.status == EXIT_ENDPOINTS
    outcomes = {o for (o,) in journal_rows(cache, "SELECT outcome FROM trials")}
    assert outcomes == {"hang"}
    assert "neither end reproduced" in r.err
    assert subprocess.run(["pgrep", "-f", "sleep 1234"], capture_output=True).returncode == 1


def test_build_that_hangs_is_killed_and_classified(make_flaky, cli, tmp_path):
    repo = make_flaky(commits=6, change_at=3, rate=0.4)
    cache = tmp_path / "cache"
    args = flaky_args(repo, cache, "--build-timeout", "1")
    args[args.index("--build-cmd") + 1] = "sleep 1235 | cat"
    r = cli(*args)
    assert r.status == EXIT_ENDPOINTS
    assert "does not build (timeout" in r.err
    assert journal_rows(cache, "SELECT status FROM builds") == [("timeout",)]
    assert subprocess.run(["pgrep", "-f", "sleep 1235"], capture_output=True).returncode == 1


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(make_flaky, tmp_path):
    repo = make_flaky(commits=30, change_at=17, rate=0.4)
    cache, marks = tmp_path / "cache", tmp_path / "marks"
    args = marked_args(repo, cache, marks)
    proc = start(args, tmp_path / "first.log")
    wait_for(lambda: len(list(marks.glob("trial-*"))) >= 30)
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=60) == EXIT_INTERRUPTED
    log = (tmp_path / "first.log").read_text()
    assert "Resume with: bisect-qemu" in log
    assert "Traceback" not in log
    assert journal_rows(cache, "SELECT status FROM runs") == [("interrupted",)]
    assert leftovers(cache) == []
    done = finish(["resume", "--cache-dir", str(cache)], tmp_path)  # the same run, continued
    assert done.returncode == EXIT_FOUND, done.stderr
    assert done.stdout.strip() == repo.answer
    assert journal_rows(cache, "SELECT COUNT(*) FROM runs") == [(1,)]
    assert_journal_consistent(cache)


def test_two_runs_at_once(make_flaky, tmp_path):
    repo = make_flaky(commits=30, change_at=17, rate=0.4)
    cache, marks = tmp_path / "cache", tmp_path / "marks"
    args = marked_args(repo, cache, marks)
    first = start(args, tmp_path / "first.log")
    try:
        wait_for(lambda: len(list(marks.glob("trial-*"))) >= 4)
        second = finish(args, tmp_path)
        assert second.returncode == EXIT_LOCKED
        assert "another bisect-qemu" in second.stderr
        assert first.poll() is None  # the first run goes on undisturbed
    finally:
        os.killpg(first.pid, signal.SIGTERM)
        first.wait()
