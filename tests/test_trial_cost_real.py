"""bench/trial_cost_real.py's own logic (the QEMU runs themselves need a QEMU clone: by hand).

The bench's figures are only honest if its copy keeps every build and forgets everything
tested: a copy that kept a trial would run fewer trials than a user's run.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import trial_cost_real  # noqa: E402

from bisect_driver.store.journal import Journal


def test_the_warm_copy_keeps_builds_and_forgets_what_was_tested(tmp_path: Path) -> None:
    warm = tmp_path / "warm"
    warm.mkdir()
    Journal(warm / "journal.sqlite3").close()
    (warm / "artifacts").mkdir()
    (warm / "artifacts" / "qemu").write_text("built")
    (warm / "report").mkdir()
    db = sqlite3.connect(warm / "journal.sqlite3")
    with db:
        db.execute("INSERT INTO builds(commit_sha, recipe_key, status) VALUES ('a', 'r', 'ok')")
        db.execute(
            "INSERT INTO trials(commit_sha, recipe_key, probe_key, idx, outcome)"
            " VALUES ('a', 'r', 'p', 0, 'reproduced')"
        )
        db.execute("INSERT INTO verdicts(run_id, commit_sha, verdict) VALUES ('run', 'a', 'bug')")
        db.execute("INSERT INTO events(run_id, time, kind) VALUES ('run', 0, 'x')")
    db.close()
    assert trial_cost_real.counts(warm) == (1, 1)

    copy = tmp_path / "copy"
    trial_cost_real.warm_copy(warm, copy)
    assert (copy / "artifacts" / "qemu").read_text() == "built"
    assert not (copy / "report").exists()
    assert trial_cost_real.counts(copy) == (0, 0)
    db = sqlite3.connect(copy / "journal.sqlite3")
    try:
        assert db.execute("SELECT COUNT(*) FROM builds").fetchone() == (1,)
        for table in ("verdicts", "events", "runs"):
            assert db.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,)  # noqa: S608
    finally:
        db.close()
    assert trial_cost_real.counts(warm) == (1, 1)  # the warm cache itself is untouched


def test_the_bench_refuses_a_work_dir_that_exists(tmp_path: Path) -> None:
    status = trial_cost_real.main(
        ["--qemu", str(tmp_path), "--warm-cache", str(tmp_path), "--work", str(tmp_path)]
    )
    assert status == 2


def test_the_parts_split_a_run_by_when_each_trial_started(tmp_path: Path) -> None:
    """A trial belongs to the hunt's verdict when it started before it; later trials at the
    same commit are the confirmation's, trials at commits the hunt never judged the checks'."""
    cache = tmp_path / "cache"
    cache.mkdir()
    Journal(cache / "journal.sqlite3").close()
    db = sqlite3.connect(cache / "journal.sqlite3")
    verdicts = [
        ("run", "end", "bug", 10.0, "endpoint"),
        ("run", "step", "clean", 20.0, "decided"),
        ("run:confirm", "step", "clean", 30.0, "decided"),
        ("run:confirm", "revert", "bug", 40.0, "decided"),
    ]
    trials = [("end", 1.0), ("end", 2.0), ("step", 11.0), ("step", 25.0), ("step", 26.0)]
    trials += [("revert", 35.0), ("end", 36.0)]
    with db:
        db.execute(
            "INSERT INTO runs(run_id, settings, created, status) VALUES ('run', '{}', 0, 'done')"
        )
        db.executemany(
            "INSERT INTO verdicts(run_id, commit_sha, verdict, decided, reason)"
            " VALUES (?, ?, ?, ?, ?)",
            verdicts,
        )
        db.executemany(
            "INSERT INTO trials(commit_sha, recipe_key, probe_key, idx, outcome, started)"
            " VALUES (?, 'r', 'p', ?, 'clean', ?)",
            [(sha, i, started) for i, (sha, started) in enumerate(trials)],
        )
    db.close()
    assert trial_cost_real.parts(cache) == {
        "ends": 2,
        "steps": 1,
        "confirmation": 3,
        "checks": 1,
    }
    assert sum(trial_cost_real.parts(cache).values()) == trial_cost_real.counts(cache)[0]
