"""Signature-matched reproductions: a crash for another reason is not this bug.

The command probe names what a reproduction saw, the journal keeps it (schema 3,
migrated from 1 and 2 without losing a record), the evidence counts only the
bug's failures, and the generated flaky project can crash for another reason
(docs/statistics.md, "Signatures: what counts as the bug").
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import flaky_args
from hypothesis import given, settings
from hypothesis import strategies as st

from bisect_driver.app.flaky_project import FlakySpec, program_source
from bisect_driver.plugin import Outcome, Probe, TrialContext, TrialResult, UserError
from bisect_driver.plugin.errors import JournalError
from bisect_driver.probe.evidence import BugSignature, Evidence
from bisect_driver.probe.trials import TrialRunner
from bisect_driver.store.journal import (
    SCHEMA_VERSION,
    BuildRecord,
    Journal,
    TrialRecord,
    VerdictRecord,
)
from probes.command import CommandProbe, default_signature, signature_extra

SEGV = "crashed: SIGSEGV"
ABRT = "crashed: SIGABRT"


# -- the command probe: what a reproduction saw -------------------------------------------


@pytest.mark.parametrize(
    ("output", "signature"),
    [
        ("crashed: SIGSEGV\n", "crashed: SIGSEGV"),
        ("pid 123 died\n", "pid N died"),
        ("starting 4 threads\npid 123 died after 45.6 s\n\n  \n", "pid N died after N.N s"),
        ("fault at 0x7ffd12ab in thread 2\n", "fault at N in thread N"),
        ("  indented 7  \n", "indented N"),
        ("", None),
        ("\n \n", None),
    ],
)
def test_default_signature_is_the_last_line_without_its_numbers(
    output: str, signature: str | None
) -> None:
    assert default_signature(output) == signature


def test_default_signature_is_one_short_line() -> None:
    sig = default_signature("x" * 1000)
    assert sig is not None and len(sig) == 200


def test_two_runs_of_one_failure_share_a_signature() -> None:
    """Why the numbers go: pids and addresses differ between runs of the same crash."""
    a = default_signature("worker 311 at 0xdeadbeef: SIGSEGV")
    b = default_signature("worker 9 at 0x1f: SIGSEGV")
    assert a == b == "worker N at N: SIGSEGV"


def test_signature_option_names_the_first_matching_line_and_says_bug() -> None:
    out = "ready\nflaky: flaky.c:46: Assertion `x' failed.\ncrashed: SIGSEGV 11\nlast 5\n"
    assert signature_extra(out, r"SIGSEGV") == {"signature": "crashed: SIGSEGV 11", "bug": True}
    assert signature_extra(out, r"Assert|SIGSEGV") == {
        "signature": "flaky: flaky.c:46: Assertion `x' failed.",
        "bug": True,
    }


def test_signature_option_without_a_match_says_not_the_bug_and_keeps_a_default() -> None:
    out = "Aborted\ncrashed: SIGABRT\n"
    assert signature_extra(out, r"SIGSEGV") == {"signature": ABRT, "bug": False}
    assert signature_extra("", r"SIGSEGV") == {"bug": False}


def test_without_the_option_the_probe_gives_no_verdict() -> None:
    assert signature_extra("pid 12 died\n", "") == {"signature": "pid N died"}


def _trial(tmp_path: Path, probe: CommandProbe, index: int = 0) -> TrialResult:
    work = tmp_path / f"w{index}"
    work.mkdir()
    ctx = TrialContext("c0ffee", tmp_path, index, work, tmp_path / "ev", 30.0, 7)
    return probe.run_trial(ctx)


@pytest.mark.parametrize(
    ("cmd", "signature", "extra"),
    [
        ("echo pid $$ died; exit 1", "", {"signature": "pid N died"}),
        (
            "echo Aborted; echo 'crashed: SIGABRT'; exit 1",
            "SIGSEGV",
            {"signature": ABRT, "bug": False},
        ),
        ("echo 'crashed: SIGSEGV'; echo done; exit 1", "SIGSEGV", {"signature": SEGV, "bug": True}),
        ("echo 'crashed: SIGSEGV'; exit 0", "SIGSEGV", {}),
        ("echo 'crashed: SIGSEGV'; exit 125", "SIGSEGV", {}),
    ],
)
def test_command_probe_trial_carries_the_signature(
    tmp_path: Path, cmd: str, signature: str, extra: dict[str, Any]
) -> None:
    """Only a reproduction (exit 1) names a failure; the verdict only with --signature."""
    result = _trial(tmp_path, CommandProbe(probe_cmd=cmd, signature=signature))
    assert result.extra == extra


def test_signature_option_changes_the_probe_key_and_only_when_given() -> None:
    plain = CommandProbe(probe_cmd="./probe.sh")
    assert plain.settings() == {"probe_cmd": "./probe.sh"}  # old trials stay reusable
    segv = CommandProbe(probe_cmd="./probe.sh", signature="SIGSEGV")
    abrt = CommandProbe(probe_cmd="./probe.sh", signature="SIGABRT")
    assert len({plain.key(), segv.key(), abrt.key()}) == 3


def test_signature_option_is_checked_as_a_regex() -> None:
    assert CommandProbe.from_stored({"probe_cmd": "x", "signature": "SIG(SEGV|BUS)"})
    with pytest.raises(UserError, match="--signature"):
        CommandProbe.from_stored({"probe_cmd": "x", "signature": "SIG(SEGV"})


# -- evidence: only the bug's failures count -----------------------------------------------


def rec(
    outcome: str, signature: str | None = None, is_bug: bool | None = None, idx: int = 0
) -> TrialRecord:
    return TrialRecord("c", idx, outcome, None, None, 0.1, 0.0, None, "", None, signature, is_bug)


R, C = str(Outcome.REPRODUCED), str(Outcome.CLEAN)


def test_other_failures_are_shown_but_never_counted() -> None:
    bug = BugSignature.from_trials([rec(R, SEGV), rec(C), rec(R, SEGV)])
    assert bug == BugSignature(frozenset({SEGV}))
    trials = [rec(R, ABRT), rec(R, SEGV), rec(C), rec(R, ABRT), rec(C), rec(R, "pid N died")]
    ev = Evidence.from_trials("c", trials, bug=bug)
    assert (ev.reproduced, ev.clean, ev.other, ev.counted, ev.trials) == (1, 2, 3, 3, 6)
    assert ev.other_signatures == (ABRT, "pid N died")
    today = Evidence.from_trials("c", trials)  # no bug known: every reproduction counts
    assert (today.reproduced, today.other, today.counted) == (4, 0, 6)


def test_a_reproduction_without_a_signature_matches_anything() -> None:
    """Probes that name no failure (and trials recorded before signatures) count as before."""
    assert BugSignature.from_trials([rec(R), rec(R, SEGV)]).matches(ABRT)
    assert BugSignature.from_trials([rec(C)]).matches(ABRT)  # nothing known about the bug
    ev = Evidence.from_trials("c", [rec(R), rec(R, ABRT)], bug=BugSignature(frozenset({SEGV})))
    assert (ev.reproduced, ev.other) == (1, 1)


def test_the_probe_verdict_wins_over_the_signature() -> None:
    bug = BugSignature(frozenset({SEGV}))
    trials = [rec(R, SEGV, False), rec(R, ABRT, True), rec(R, ABRT, False)]
    for b in (bug, None):
        ev = Evidence.from_trials("c", trials, bug=b)
        assert (ev.reproduced, ev.other, ev.other_signatures) == (1, 2, (ABRT, SEGV))
    # the end's trials the probe itself called another failure do not define the bug
    assert BugSignature.from_trials([rec(R, ABRT, False), rec(R, SEGV, True)]).signatures == {SEGV}


def test_hangs_follow_the_hang_policy() -> None:
    bug = BugSignature(frozenset({SEGV}))
    trials = [rec(str(Outcome.HANG)), rec(R, ABRT)]
    inc = Evidence.from_trials("c", trials, "inconclusive", bug)
    assert (inc.reproduced, inc.inconclusive, inc.other, inc.hangs) == (0, 1, 1, 1)
    rep = Evidence.from_trials("c", trials, "reproduced", bug)
    assert (rep.reproduced, rep.inconclusive, rep.other, rep.hangs) == (1, 0, 1, 1)
    assert BugSignature.from_trials([rec(str(Outcome.HANG)), rec(R, SEGV)]).signatures == {SEGV}


def test_bug_signature_round_trips_through_json() -> None:
    for bug in (BugSignature(frozenset({SEGV, ABRT})), BugSignature(frozenset(), True)):
        assert BugSignature.from_json(bug.to_json()) == bug
    assert BugSignature(frozenset({SEGV, ABRT})).to_json()["signatures"] == [ABRT, SEGV]


SIGS = st.sampled_from([None, SEGV, ABRT, "pid N died"])
TRIALS = st.lists(
    st.tuples(st.sampled_from(list(Outcome)), SIGS, st.sampled_from([None, True, False])),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(
    trials=TRIALS,
    end=st.lists(st.tuples(st.sampled_from([R, C]), SIGS), max_size=8),
    hang_as=st.sampled_from(["inconclusive", "reproduced"]),
)
def test_evidence_counts_match_a_plain_model(
    trials: list[tuple[Outcome, str | None, bool | None]],
    end: list[tuple[str, str | None]],
    hang_as: str,
) -> None:
    """Every trial lands in exactly one bin; other failures are never counted; the rule is
    the documented one (probe verdict, else no signature or a match with the end's)."""
    records = [rec(str(o), s, b, i) for i, (o, s, b) in enumerate(trials)]
    bug = BugSignature.from_trials(rec(o, s) for o, s in end)
    end_repro = [s for o, s in end if o == R]
    ev = Evidence.from_trials("c", records, hang_as, bug)

    def counts_as_repro(o: Outcome) -> bool:
        return o == Outcome.REPRODUCED or (o == Outcome.HANG and hang_as == "reproduced")

    def is_the_bug(s: str | None, b: bool | None) -> bool:
        if b is not None:
            return b
        return s is None or not end_repro or None in end_repro or s in end_repro

    want_bug = sum(1 for o, s, b in trials if counts_as_repro(o) and is_the_bug(s, b))
    want_other = sum(1 for o, s, b in trials if counts_as_repro(o) and not is_the_bug(s, b))
    assert (ev.reproduced, ev.other) == (want_bug, want_other)
    assert ev.counted == ev.reproduced + ev.clean == ev.counted
    assert ev.clean == sum(1 for o, _, _ in trials if o == Outcome.CLEAN)
    assert ev.reproduced + ev.other + ev.clean + ev.inconclusive + ev.errors == ev.trials
    assert set(ev.other_signatures) <= {s for _, s, _ in trials if s is not None}
    assert list(ev.other_signatures) == sorted(set(ev.other_signatures))
    # with no bug known, only the probe's own "not the bug" keeps a reproduction out
    today = Evidence.from_trials("c", records, hang_as)
    assert today.other == sum(1 for o, _, b in trials if counts_as_repro(o) and b is False)
    assert today.reproduced + today.other == ev.reproduced + ev.other
    # knowing more signatures of the bug never counts fewer reproductions
    wider = BugSignature(bug.signatures | {ABRT}, bug.any_signature)
    assert Evidence.from_trials("c", records, hang_as, wider).reproduced >= ev.reproduced


# -- the runner records signatures and counts with its bug --------------------------------


@dataclass(frozen=True)
class _Scripted:
    results: tuple[TrialResult, ...] = ()


class ScriptedProbe(Probe):
    """A probe that returns prepared results, one per trial index."""

    name = "scripted"
    Options = _Scripted
    options: _Scripted

    def settings(self) -> dict[str, Any]:
        return {}

    def run_trial(self, ctx: TrialContext) -> TrialResult:
        return self.options.results[ctx.index]


def test_runner_records_signature_and_verdict_and_counts_with_its_bug(tmp_path: Path) -> None:
    results = (
        TrialResult(Outcome.REPRODUCED, extra={"signature": SEGV}),
        TrialResult(Outcome.REPRODUCED, extra={"signature": ABRT}),
        TrialResult(Outcome.REPRODUCED, extra={"signature": "x" * 300, "bug": False}),
        TrialResult(Outcome.CLEAN),
        TrialResult(Outcome.REPRODUCED, extra={"bug": "yes"}),  # not a bool: no verdict
    )
    journal = Journal(tmp_path / "j.sqlite3")
    probe = ScriptedProbe(_Scripted(results))
    runner = TrialRunner(journal, probe, "rk", tmp_path / "ev", scratch_root=tmp_path / "s")
    runner.run("c", tmp_path, len(results))
    got = [(t.signature, t.is_bug) for t in runner.records("c")]
    assert got == [(SEGV, None), (ABRT, None), ("x" * 200, False), (None, None), (None, None)]
    assert (runner.evidence("c").reproduced, runner.evidence("c").other) == (3, 1)
    runner.bug = BugSignature(frozenset({SEGV}))
    assert (runner.evidence("c").reproduced, runner.evidence("c").other) == (2, 2)
    built_with = TrialRunner(journal, probe, "rk", tmp_path / "ev", bug=runner.bug)
    assert built_with.evidence("c") == runner.evidence("c")
    runner.bug = None
    assert runner.evidence("c").reproduced == 3
    with pytest.raises(TypeError):
        runner.bug = {SEGV}  # type: ignore[assignment]


# -- the journal: schema 3, migrated from 1 and 2 ------------------------------------------

_V1_BUILDS = """CREATE TABLE builds(
    commit_sha TEXT NOT NULL, recipe_key TEXT NOT NULL, status TEXT NOT NULL,
    duration REAL, fixups TEXT, detail TEXT, log_path TEXT, fingerprint TEXT,
    finished REAL, PRIMARY KEY(commit_sha, recipe_key));"""
_V2_BUILDS = _V1_BUILDS.replace(
    "finished REAL,", "finished REAL, attempts INTEGER DEFAULT 1, first_failure TEXT,"
)
_OLD_REST = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE runs(
    run_id TEXT PRIMARY KEY, settings TEXT NOT NULL, created REAL NOT NULL,
    status TEXT NOT NULL, direction TEXT, result TEXT);
CREATE TABLE trials(
    id INTEGER PRIMARY KEY, commit_sha TEXT NOT NULL, recipe_key TEXT NOT NULL,
    probe_key TEXT NOT NULL, idx INTEGER NOT NULL, outcome TEXT NOT NULL,
    exit_status INTEGER, signal INTEGER, duration REAL, started REAL, seed INTEGER,
    detail TEXT, log_path TEXT,
    UNIQUE(commit_sha, recipe_key, probe_key, idx));
CREATE TABLE verdicts(
    run_id TEXT NOT NULL, commit_sha TEXT NOT NULL, verdict TEXT NOT NULL,
    trials INTEGER, reproduced INTEGER, error REAL, reason TEXT, decided REAL,
    PRIMARY KEY(run_id, commit_sha));
CREATE TABLE events(
    id INTEGER PRIMARY KEY, run_id TEXT, time REAL NOT NULL, kind TEXT NOT NULL,
    message TEXT);
"""


def _old_journal(path: Path, version: int) -> None:
    """A journal as schema ``version`` wrote it, with one record of every kind."""
    db = sqlite3.connect(path)
    db.executescript((_V1_BUILDS if version == 1 else _V2_BUILDS) + _OLD_REST)
    db.execute("INSERT INTO meta VALUES('schema', ?)", (str(version),))
    db.execute("INSERT INTO runs VALUES('r1', '{\"a\": 1}', 1.0, 'done', 'fix', null)")
    db.execute(
        "INSERT INTO builds(commit_sha, recipe_key, status, duration, fixups, detail,"
        " log_path, fingerprint, finished) VALUES('c1', 'rk', 'ok', 2.0, '[]', '', null, 'fp', 3.0)"
    )
    for idx, outcome in enumerate([R, C, R]):
        db.execute(
            "INSERT INTO trials(commit_sha, recipe_key, probe_key, idx, outcome, exit_status,"
            " signal, duration, started, seed, detail, log_path)"
            " VALUES('c1', 'rk', 'pk', ?, ?, 1, null, 0.5, 4.0, 9, 'seen', null)",
            (idx, outcome),
        )
    db.execute("INSERT INTO verdicts VALUES('r1', 'c1', 'bug', 3, 2, 0.0, 'decided', 5.0)")
    db.execute("INSERT INTO events(run_id, time, kind, message) VALUES('r1', 6.0, 'k', 'm')")
    db.commit()
    db.close()


@pytest.mark.parametrize("version", [1, 2])
def test_old_journal_migrates_keeping_every_record(tmp_path: Path, version: int) -> None:
    path = tmp_path / "journal.sqlite3"
    _old_journal(path, version)
    j = Journal(path)
    assert j.run_settings("r1") == {"a": 1}
    build = j.build("c1", "rk")
    assert build is not None and (build.status, build.attempts, build.first_failure) == (
        "ok",
        1,
        None,
    )
    trials = j.trials("c1", "rk", "pk")
    assert [(t.idx, t.outcome, t.detail, t.signature, t.is_bug) for t in trials] == [
        (0, R, "seen", None, None),
        (1, C, "seen", None, None),
        (2, R, "seen", None, None),
    ]
    assert j.verdict("r1", "c1") == VerdictRecord("c1", "bug", 3, 2, 0.0, "decided", 5.0)
    assert j.events("r1") == [(6.0, "k", "m")]
    # old trials count exactly as before, whatever bug is known
    ev = Evidence.from_trials("c1", trials, bug=BugSignature(frozenset({SEGV})))
    assert (ev.reproduced, ev.clean, ev.other) == (2, 1, 0)
    # the new columns work
    j.record_trial("rk", "pk", rec(R, ABRT, False, idx=3))
    assert [(t.signature, t.is_bug) for t in j.trials("c", "rk", "pk")] == [(ABRT, False)]
    j.record_build(BuildRecord("c2", "rk", "failed", 1.0, [], "x", None, None, 7.0, 2, "why"))
    assert j.build("c2", "rk") == BuildRecord(
        "c2", "rk", "failed", 1.0, [], "x", None, None, 7.0, 2, "why"
    )
    j.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("3",)
    cols = {r[1] for r in db.execute("PRAGMA table_info(trials)")}
    assert {"signature", "is_bug"} <= cols
    assert db.execute("SELECT COUNT(*) FROM trials").fetchone() == (4,)
    db.close()
    Journal(path).close()  # reopening a migrated journal is a no-op


def test_schema_is_3_and_a_newer_journal_is_refused(tmp_path: Path) -> None:
    assert SCHEMA_VERSION == 3
    path = tmp_path / "journal.sqlite3"
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value='4' WHERE key='schema'")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="schema 4"):
        Journal(path)


# -- the generated project: another crash, and a drifting rate ------------------------------


def test_default_flaky_program_has_no_other_crash() -> None:
    spec = FlakySpec()
    for i in (0, 30, 59, 60, 99):
        src = program_source(spec, i < 60, False, i)
        assert src == program_source(spec, i < 60, False)
        assert "assert" not in src and "FLUSH_US" not in src


def test_other_crash_and_near_rate_select_commits() -> None:
    spec = FlakySpec(commits=20, change_at=10, other_crash=(3, 6), near_rate=0.6, near_span=2)
    assert [i for i in range(21) if spec.other_at(i)] == [3, 4, 5]
    assert [i for i in range(21) if spec.rate_at(i) == 0.6] == [8, 9]
    reg = FlakySpec(commits=20, change_at=10, direction="regression", near_rate=0.1, near_span=3)
    assert [i for i in range(21) if reg.rate_at(i) == 0.1] == [10, 11, 12]
    src = program_source(spec, True, False, 4)
    assert "assert(!flushing);" in src and "#define FLUSH_US 2000" in src
    assert "#define BUSY_US 1000" in src
    assert "#define BUSY_US 2400" in program_source(spec, True, False, 9)
    assert "assert" not in program_source(spec, True, False, 6)


@pytest.mark.slow
def test_probe_with_signature_does_not_count_the_other_crash(
    make_flaky: Any, cli: Any, tmp_path: Path
) -> None:
    """A real program that aborts half the time and never segfaults (the bug was fixed at
    commit 2, the other crash lives in 3..6): with --signature SIGSEGV, none of its aborts
    is a reproduction; without, they all are (today's behaviour, the reason for this)."""
    repo = make_flaky(commits=8, change_at=2, rate=0.25, other_crash=(3, 7), other_rate=0.5)
    sha = repo.shas[4]
    assert not repo.buggy(4)
    common = [a for a in flaky_args(repo, tmp_path / "c") if a not in ("--good", "--bad")]
    common = [a for a in common if a not in (repo.old, repo.new)]
    n = 16
    r = cli("probe", sha, "-n", n, *common, "--signature", "SIGSEGV")
    assert r.status == 0, r.err
    m = re.search(r": (\d+)/(\d+) reproduced .*; (\d+) not counted", r.out)
    assert m, r.out
    k, counted, not_counted = map(int, m.groups())
    journal = Journal(tmp_path / "c" / "journal.sqlite3")
    rows = journal._query(
        "SELECT outcome, signature, is_bug FROM trials WHERE commit_sha=?", (sha,)
    )
    aborts = [row for row in rows if row[0] == R]
    assert aborts, "no abort in 16 trials at rate 0.5: the other crash does not happen"
    assert set(aborts) == {(R, ABRT, 0)}
    cleans = sum(1 for row in rows if row[0] == C)
    assert (k, counted, not_counted) == (0, cleans, n - cleans)

    r = cli("probe", sha, "-n", n, *common)  # no --signature: another probe key, fresh trials
    assert r.status == 0, r.err
    m = re.search(r": (\d+)/(\d+) reproduced", r.out)
    assert m and int(m.group(1)) > 0 and int(m.group(2)) == n, r.out
    journal.close()
