"""The revert check: the new end with the answer reverted must show the bug again (fix hunt)
or lose it (regression hunt); a revert that conflicts or does not build is said so.

The fast tests drive revert_check with a stand-in tester on tiny repos (git only: what is
reverted, how verdicts map to PASS/FAIL, what state is left behind); the slow ones run a
real bisect on a generated flaky project first and judge the revert with the run's own
strict tester, exactly the pieces the driver hands it.

A revert that conflicts is tried harder before it is given up (a check that is "not run"
whenever a ChangeLog conflicts gates nothing): the partial revert that keeps conflicted
files the build does not read, then the newest commit before the new end where it applies.
An answer none of whose independent checks could run says so in its summary.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import git
import pytest
from conftest import flaky_args

from bisect_driver.app.flaky_project import FIXED_SHUTDOWN, FlakyRepo, FlakySpec
from bisect_driver.bisect.checks import FINGERPRINT, Check, CheckStatus, no_independent_check
from bisect_driver.bisect.confirm import confirm_run_id, strict_tester
from bisect_driver.bisect.direction import Direction
from bisect_driver.bisect.revert import NOT_BUILT, not_built, revert_check
from bisect_driver.context import context_for_run
from bisect_driver.report.html import render_html
from bisect_driver.report.markdown import render_md
from bisect_driver.store.journal import Journal, VerdictRecord
from bisect_driver.store.repo import Checkout, checkout_for
from bisect_driver.verdict.stats import Verdict

FIX, REGRESSION = Direction.FIX, Direction.REGRESSION
REVERT_SHA = re.compile(r"; revert commit ([0-9a-f]{12})$")


def git_(path: Path, *args: str, stamp: int = 1_700_000_000) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="Later Dev",
        GIT_AUTHOR_EMAIL="later@example.invalid",
        GIT_COMMITTER_NAME="Later Dev",
        GIT_COMMITTER_EMAIL="later@example.invalid",
        GIT_AUTHOR_DATE=f"{stamp} +0000",
        GIT_COMMITTER_DATE=f"{stamp} +0000",
    )
    return subprocess.run(
        ["git", *args], cwd=path, check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


def commit_files(path: Path, files: dict[str, str], msg: str, stamp: int) -> str:
    for name, text in files.items():
        (path / name).write_text(text)
    git_(path, "add", "-A", stamp=stamp)
    git_(path, "commit", "-q", "-m", msg, stamp=stamp)
    return git_(path, "rev-parse", "HEAD")


def assert_checkout_clean(checkout: Checkout) -> None:
    """No bisect, no revert or merge in progress, no changed tracked file."""
    git_dir = Path(checkout.repo.git_dir)
    assert not checkout.bisect_in_progress()
    leftovers = ["BISECT_LOG", "REVERT_HEAD", "MERGE_HEAD", "MERGE_MSG", "sequencer"]
    assert [n for n in leftovers if (git_dir / n).exists()] == []
    assert git_(checkout.path, "status", "--porcelain") == ""


def revert_commit(checkout: Checkout, check: Check) -> str:
    """The full sha of the revert commit the check's detail names (it is in the checkout)."""
    m = REVERT_SHA.search(check.detail)
    assert m, check.detail
    return git_(checkout.path, "rev-parse", "--verify", m.group(1) + "^{commit}")


# -- fast: a stand-in tester on tiny repos --------------------------------------------------


class StubTester:
    """Answers judge() with a fixed verdict and remembers what it was asked to judge."""

    def __init__(self, verdict: Verdict, reproduced: int = 0, reason: str = "decided") -> None:
        self.verdict, self.reproduced, self.reason = verdict, reproduced, reason
        self.judged: list[str] = []

    def judge(self, commit: str) -> VerdictRecord:
        self.judged.append(commit)
        return VerdictRecord(commit, str(self.verdict), 20, self.reproduced, 1e-4, self.reason, 0.0)


@pytest.fixture
def tiny(tmp_path):
    """A user repo (f: lines a..e; a, c and e each changed by a commit) and the tool's checkout."""
    path = tmp_path / "user"
    path.mkdir()
    git_(path, "init", "-q", "-b", "main")
    shas = [commit_files(path, {"f": "a\nb\nc\nd\ne\n"}, "root", 1_600_000_000)]
    for i, text in enumerate(["A\nb\nc\nd\ne\n", "A\nb\nC\nd\ne\n", "A\nb\nC\nd\nE\n"], 1):
        shas.append(commit_files(path, {"f": text}, f"change {i}", 1_600_000_000 + i))
    checkout = checkout_for(git.Repo(path), tmp_path / "cache")
    return path, shas, checkout


CASES = [
    (FIX, Verdict.BUG, 3, "decided", CheckStatus.PASS, "the bug comes back: 3/20 reproduced"),
    (
        FIX,
        Verdict.CLEAN,
        0,
        "decided",
        CheckStatus.FAIL,
        "the bug does not come back: 0/20, error <= 0.0001",
    ),
    (
        REGRESSION,
        Verdict.CLEAN,
        0,
        "decided",
        CheckStatus.PASS,
        "the bug goes away: 0/20, error <= 0.0001",
    ),
    (REGRESSION, Verdict.BUG, 2, "decided", CheckStatus.FAIL, "the bug stays: 2/20 reproduced"),
    (
        FIX,
        Verdict.SKIP,
        0,
        "undecided after 200 counted of 210 trials",
        CheckStatus.NOT_RUN,
        "undecided after 200 counted of 210 trials",
    ),
    (
        REGRESSION,
        Verdict.SKIP,
        0,
        "build compile: flaky.c:3: error: x undeclared",
        CheckStatus.NOT_RUN,
        "does not build: compile: flaky.c:3: error: x undeclared",
    ),
]


@pytest.mark.parametrize("direction,verdict,k,reason,status,detail", CASES)
def test_verdict_of_the_reverted_tree_decides_the_check(
    tiny, direction, verdict, k, reason, status, detail
):
    path, shas, checkout = tiny
    tester = StubTester(verdict, k, reason)
    check = revert_check(checkout, tester, direction, shas[2], shas[3])
    assert check.name == f"revert of {shas[2][:12]} on the new end {shas[3][:12]}"
    assert (check.status, check.detail.split("; revert commit")[0]) == (
        status,
        f"{detail}; revert applies cleanly",
    )
    assert check.gates
    reverted = revert_commit(checkout, check)
    assert tester.judged == [reverted]
    # the judged commit is the new end minus change 2: its parent is the new end, c is back
    assert git_(checkout.path, "rev-parse", f"{reverted}^") == shas[3]
    assert git_(checkout.path, "show", f"{reverted}:f") == "A\nb\nc\nd\nE"
    assert_checkout_clean(checkout)


def test_the_revert_commit_is_reproducible(tiny):
    """Same revert, same id: a resumed run finds its build and verdict in the journal."""
    path, shas, checkout = tiny
    first = revert_check(checkout, StubTester(Verdict.BUG, 1), FIX, shas[1], shas[3])
    second = revert_check(checkout, StubTester(Verdict.BUG, 1), FIX, shas[1], shas[3])
    assert first.status is CheckStatus.PASS
    assert revert_commit(checkout, first) == revert_commit(checkout, second)


def test_a_revert_that_conflicts_everywhere_is_not_run_and_leaves_no_state(tiny):
    """The candidate's own line is rewritten by its very next commit: no commit between it
    and the new end takes the revert, and the reason is the new end's conflict."""
    path, shas, checkout = tiny
    git_(path, "checkout", "-q", "-b", "rewrite", shas[1])
    commits = [commit_files(path, {"f": "AA\nb\nc\nd\ne\n"}, "rewrite change 1", 1_600_000_010)]
    for i in range(1, 5):
        commits.append(commit_files(path, {f"g{i}": f"{i}\n"}, f"other {i}", 1_600_000_010 + i))
    later = commits[-1]
    git_(checkout.path, "bisect", "start")  # a bisect left over from a crash is reset first
    tester = StubTester(Verdict.BUG, 1)
    check = revert_check(checkout, tester, FIX, shas[1], later)
    assert check.status is CheckStatus.NOT_RUN
    # bisection over the 4 commits before the new end: the middle one, then the first
    assert check.detail == (
        "does not apply: conflicts in f;"
        " nor on 2 tried of the 4 commits between the candidate and the new end"
    )
    assert check.name == f"revert of {shas[1][:12]} on the new end {later[:12]}"
    assert check.gates
    assert tester.judged == []
    assert_checkout_clean(checkout)


def test_a_revert_that_conflicts_with_the_new_ends_parent_alone_says_only_why(tiny):
    """No commit between the candidate and the new end: the reason is the conflict."""
    path, shas, checkout = tiny
    git_(path, "checkout", "-q", "-b", "rewrite", shas[1])
    later = commit_files(path, {"f": "AA\nb\nc\nd\ne\n"}, "rewrite change 1", 1_600_000_010)
    tester = StubTester(Verdict.BUG, 1)
    check = revert_check(checkout, tester, FIX, shas[1], later)
    assert (check.status, check.detail) == (CheckStatus.NOT_RUN, "does not apply: conflicts in f")
    assert tester.judged == []
    assert_checkout_clean(checkout)


@pytest.fixture
def rewritten(tmp_path):
    """src.c's first line is changed by the candidate (commit 1) and rewritten again by
    commit 12; commits 2-11 and 13-20 touch other files.  The new end is commit 20."""
    path = tmp_path / "user"
    path.mkdir()
    git_(path, "init", "-q", "-b", "main")
    code = "one\ntwo\nthree\nfour\nfive\n"
    shas = [commit_files(path, {"src.c": code}, "root", 1_600_000_000)]
    shas.append(commit_files(path, {"src.c": "ONE" + code[3:]}, "candidate", 1_600_000_001))
    for i in range(2, 21):
        files = {"src.c": "ONE!" + code[3:]} if i == 12 else {f"other{i}.c": f"{i}\n"}
        shas.append(commit_files(path, files, f"commit {i}", 1_600_000_000 + i))
    checkout = checkout_for(git.Repo(path), tmp_path / "cache")
    return path, shas, checkout


@pytest.mark.parametrize(
    "verdict,status", [(Verdict.BUG, CheckStatus.PASS), (Verdict.CLEAN, CheckStatus.FAIL)]
)
def test_a_revert_that_conflicts_near_the_new_end_is_made_on_the_newest_commit_where_it_applies(
    rewritten, verdict, status
):
    path, shas, checkout = rewritten
    cand, new_end, where = shas[1], shas[20], shas[11]
    tester = StubTester(verdict, 2)
    check = revert_check(checkout, tester, FIX, cand, new_end)
    assert check.status is status and check.gates  # it gates: a FAIL leaves the answer unconfirmed
    assert check.name == (
        f"revert of {cand[:12]} on {where[:12]}, 9 commits before the new end {new_end[:12]}"
    )
    how = f"reverted on {where[:12]} (9 commits before the new end), where it applies"
    assert check.detail.split("; ")[1:-1] == [how], check.detail
    reverted = revert_commit(checkout, check)
    assert tester.judged == [reverted]
    assert git_(checkout.path, "rev-parse", f"{reverted}^") == where
    assert git_(checkout.path, "show", f"{reverted}:src.c").startswith("one\n")
    assert_checkout_clean(checkout)
    # the same revert again gets the same commit: a resumed run finds its verdict
    again = revert_check(checkout, StubTester(verdict, 2), FIX, cand, new_end)
    assert revert_commit(checkout, again) == reverted


def test_the_search_for_a_commit_where_it_applies_is_bounded(rewritten):
    """One try only: the middle of the 19 commits before the new end takes the revert, so
    that is what is probed, not the newest such commit (which needs about log2(19) tries)."""
    path, shas, checkout = rewritten
    check = revert_check(checkout, StubTester(Verdict.BUG, 1), FIX, shas[1], shas[20], max_tries=1)
    assert check.status is CheckStatus.PASS
    assert git_(checkout.path, "rev-parse", f"{revert_commit(checkout, check)}^") == shas[10]
    assert "(10 commits before the new end)" in check.detail
    assert_checkout_clean(checkout)


@pytest.fixture
def changelog(tmp_path):
    """Every commit adds an entry at the top of ChangeLog (as GNU projects do); the
    candidate (commit 2) also changes line 1 of src.c.  The new end is commit 5."""
    path = tmp_path / "user"
    path.mkdir()
    git_(path, "init", "-q", "-b", "main")
    log = ""
    shas: list[str] = []
    code = "one\ntwo\nthree\nfour\nfive\n"
    for i in range(6):
        log = f"entry {i}\n" + log
        files = {"ChangeLog": log}
        if i == 0:
            files["src.c"] = code
        if i == 2:
            files["src.c"] = "ONE" + code[3:]
        if i == 4:
            files["src.c"] = "ONE" + code[3:].replace("five", "FIVE")
        shas.append(commit_files(path, files, f"commit {i}", 1_600_000_000 + i))
    checkout = checkout_for(git.Repo(path), tmp_path / "cache")
    return path, shas, checkout


@pytest.mark.parametrize(
    "direction,verdict,status",
    [(FIX, Verdict.BUG, CheckStatus.PASS), (FIX, Verdict.CLEAN, CheckStatus.FAIL),
     (REGRESSION, Verdict.CLEAN, CheckStatus.PASS), (REGRESSION, Verdict.BUG, CheckStatus.FAIL)],
)  # fmt: skip
def test_a_revert_that_conflicts_only_in_a_changelog_keeps_the_new_ends_changelog(
    changelog, direction, verdict, status
):
    path, shas, checkout = changelog
    tester = StubTester(verdict, 1)
    check = revert_check(checkout, tester, direction, shas[2], shas[5])
    assert (check.status, check.gates) == (status, True)
    assert check.name == f"revert of {shas[2][:12]} on the new end {shas[5][:12]}"
    parts = check.detail.split("; ")
    assert parts[1:-1] == ["partial revert: kept the new end's ChangeLog (not built)"]
    reverted = revert_commit(checkout, check)
    assert tester.judged == [reverted]
    assert git_(checkout.path, "rev-parse", f"{reverted}^") == shas[5]
    # src.c reverted (the new end's FIVE stays), ChangeLog as the new end has it
    assert git_(checkout.path, "show", f"{reverted}:src.c") == "one\ntwo\nthree\nfour\nFIVE"
    assert git_(checkout.path, "diff", shas[5], reverted, "--name-only") == "src.c"
    message = git_(checkout.path, "log", "-1", "--format=%B", reverted)
    assert message.startswith(f'Revert "commit 2"\n\nThis reverts commit {shas[2]}.')
    assert "#" not in message and "ChangeLog kept as in" in message
    assert_checkout_clean(checkout)
    again = revert_check(checkout, StubTester(verdict, 1), direction, shas[2], shas[5])
    assert revert_commit(checkout, again) == reverted  # fixed identity, date and message


def test_a_partial_revert_is_not_made_when_a_conflicted_file_is_built(changelog):
    """src.c is rewritten on the candidate's line at commit 4: src.c and ChangeLog conflict
    on the new end, so the partial revert (ChangeLog kept) is made on commit 3."""
    path, shas, checkout = changelog
    later = commit_files(
        path,
        {"src.c": "ONE!\ntwo\nthree\nfour\nFIVE\n", "ChangeLog": "entry 6\n"},
        "6",
        1_600_000_006,
    )
    check = revert_check(checkout, StubTester(Verdict.BUG, 1), FIX, shas[2], later)
    assert check.status is CheckStatus.PASS
    assert check.detail.split("; ")[1:-1] == [
        f"reverted on {shas[5][:12]} (1 commit before the new end), where it applies",
        f"partial revert: kept {shas[5][:12]}'s ChangeLog (not built)",
    ]
    assert_checkout_clean(checkout)


def test_a_partial_revert_that_reverts_nothing_built_is_not_made(changelog):
    """A candidate that changed only docs: keeping its conflicted ChangeLog would leave a
    revert of a README, which tests nothing."""
    path, shas, checkout = changelog
    cand = commit_files(
        path, {"README": "read me\n", "ChangeLog": "entry 6\n"}, "docs", 1_600_000_006
    )
    later = commit_files(path, {"ChangeLog": "entry 7\n"}, "7", 1_600_000_007)
    tester = StubTester(Verdict.BUG, 1)
    check = revert_check(checkout, tester, FIX, cand, later)
    assert (check.status, check.detail) == (
        CheckStatus.NOT_RUN,
        "does not apply: conflicts in ChangeLog (the rest reverts no file the build reads)",
    )
    assert tester.judged == []
    assert_checkout_clean(checkout)


@pytest.mark.parametrize(
    "path,expected",
    [("ChangeLog", True), ("NOTES", True), ("NEWS", True), ("README.md", True),
     ("sub/dir/README", True), ("docs/index.html", True), ("docs/sub/x.c", True),
     ("guide.rst", True), ("notes.txt", True), ("CMakeLists.txt", False),
     ("sub/CMakeLists.txt", False), ("flaky.c", False), ("Makefile", False),
     ("sub/docs/x.c", False), ("VERSION", False)],
)  # fmt: skip
def test_files_the_build_does_not_read(path, expected):
    assert not_built(path) is expected


def test_the_not_built_list_can_be_overridden():
    assert not_built("notes.txt", [*NOT_BUILT, "!*.txt"]) is False
    assert not_built("qemu-doc.texi", [*NOT_BUILT, "*.texi"]) is True
    assert not_built("ChangeLog", []) is False


def test_an_empty_revert_is_not_run(tiny):
    """A later commit already undid the candidate: there is nothing to revert."""
    path, shas, checkout = tiny
    later = commit_files(path, {"f": "A\nb\nc\nd\nE\n"}, "undo change 2", 1_600_000_010)
    tester = StubTester(Verdict.BUG, 1)
    check = revert_check(checkout, tester, FIX, shas[2], later)
    assert (check.status, check.detail) == (
        CheckStatus.NOT_RUN,
        "does not apply: the revert is empty (the new end no longer has the change)",
    )
    assert tester.judged == []
    assert_checkout_clean(checkout)


def test_a_merge_candidate_is_reverted_against_its_first_parent(tiny):
    path, shas, checkout = tiny
    git_(path, "checkout", "-q", "-b", "side", shas[1])
    side = commit_files(path, {"g": "side\n"}, "side work", 1_600_000_020)
    git_(path, "checkout", "-q", "main")
    git_(path, "merge", "-q", "--no-ff", "-m", "Merge side", side, stamp=1_600_000_021)
    merge = git_(path, "rev-parse", "HEAD")
    later = commit_files(path, {"h": "later\n"}, "later", 1_600_000_022)
    tester = StubTester(Verdict.BUG, 1)
    check = revert_check(checkout, tester, FIX, merge, later)
    assert check.status is CheckStatus.PASS, check
    reverted = revert_commit(checkout, check)
    files = git_(checkout.path, "ls-tree", "--name-only", reverted).split()
    assert files == ["f", "h"]  # the side branch's g is gone, the later h stays
    assert_checkout_clean(checkout)


# -- the summary of an answer no independent check could test ---------------------------


def gating_checks(revert: CheckStatus, fingerprint: CheckStatus) -> tuple[Check, ...]:
    """A confirmed answer's checks: the strict retests (not gating) pass; the two
    independent ones as given."""
    return (
        Check("parent 0ddba1222222 reproduces", CheckStatus.PASS, "2/5 reproduced"),
        Check("candidate c0ffee111111 is clean", CheckStatus.PASS, "0/40, error <= 0.001"),
        Check(FINGERPRINT, fingerprint, "parent not built", gates=True),
        Check(
            "revert of c0ffee111111 on the new end c0ffee111111",
            revert,
            "does not apply: conflicts in block.c",
            gates=True,
        ),
        Check("backport applies onto v8", CheckStatus.PASS, "cherry-pick is clean"),
    )


NOT_RUN = CheckStatus.NOT_RUN
NO_CHECK = (
    "No independent check could run (candidate's binary differs from its parent's: parent"
    " not built; revert of c0ffee111111 on the new end c0ffee111111: does not apply:"
    " conflicts in block.c): the answer rests on the bisect's statistics alone."
)


def test_an_answer_none_of_whose_independent_checks_ran_says_so_in_its_summary():
    from test_report import hand_made_report  # the report model, filled in by hand

    report = hand_made_report(gating_checks(NOT_RUN, NOT_RUN))
    assert no_independent_check(report.checks) == NO_CHECK
    md = render_md(report)
    summary = md.split("\n\n")[1]
    assert summary.startswith("The bug was fixed by commit") and summary.endswith(NO_CHECK)
    page = render_html(report)
    first = page.split("<p>", 1)[1].split("</p>", 1)[0]
    assert first.startswith("The bug was fixed by commit")
    assert html.unescape(first).endswith(NO_CHECK)


@pytest.mark.parametrize(
    "revert,fingerprint",
    [(CheckStatus.PASS, NOT_RUN), (NOT_RUN, CheckStatus.PASS), (CheckStatus.FAIL, NOT_RUN)],
)
def test_one_independent_check_that_ran_is_enough_for_the_summary(revert, fingerprint):
    from test_report import hand_made_report

    report = hand_made_report(gating_checks(revert, fingerprint))
    assert no_independent_check(report.checks) is None
    md = render_md(report)
    assert "No independent check" not in md
    assert "No independent check" not in render_html(report)


def test_checks_without_the_gates_flag_say_nothing_either_way():
    """An older journal's checks have no gates flag: the summary claims nothing."""
    old = [Check(c.name, NOT_RUN, c.detail) for c in gating_checks(NOT_RUN, NOT_RUN)]
    assert no_independent_check(old) is None


# -- slow: a real bisect, then the revert judged by the run's strict tester -----------------


def bisect_and_revert(cli, repo: FlakyRepo, cache: Path, direction: Direction) -> tuple:
    """Run the bisect as a user would, then the revert check the way the driver builds it."""
    r = cli(*flaky_args(repo, cache))
    assert r.status == 0, r.err
    cand = r.out.strip()
    assert cand == repo.answer
    runs = Journal(cache / "journal.sqlite3").runs()
    assert len(runs) == 1
    run_id = runs[0]["run_id"]
    ctx = context_for_run(cache, run_id)
    strict = strict_tester(ctx.tester(), run_id)
    checkout = ctx.the_checkout()
    check = revert_check(checkout, strict, direction, cand, repo.new)
    return check, checkout, strict, run_id


@pytest.mark.slow
def test_fix_hunt_the_bug_comes_back(make_flaky, cli, tmp_path):
    repo = make_flaky(commits=10, change_at=6, rate=0.4)
    check, checkout, strict, run_id = bisect_and_revert(cli, repo, tmp_path / "cache", FIX)
    assert check.status is CheckStatus.PASS, check
    assert check.detail.startswith("the bug comes back: "), check
    reverted = revert_commit(checkout, check)
    # what was probed: the new end with the fix's flaky.c change taken back out
    assert git_(checkout.path, "rev-parse", f"{reverted}^") == repo.new
    before_fix = git_(repo.path, "show", f"{repo.answer}^:flaky.c")
    assert git_(checkout.path, "show", f"{reverted}:flaky.c") == before_fix
    rec = strict.journal.verdict(confirm_run_id(run_id), reverted)
    assert rec is not None and rec.verdict == Verdict.BUG and rec.reproduced > 0
    assert_checkout_clean(checkout)

    # the check can fail: reverting an unrelated commit (the new end's NOTES edit) keeps it fixed
    wrong = revert_check(checkout, strict, FIX, repo.new, repo.new)
    assert wrong.status is CheckStatus.FAIL, wrong
    assert wrong.detail.startswith("the bug does not come back: 0/"), wrong
    assert_checkout_clean(checkout)


@pytest.mark.slow
def test_regression_hunt_the_bug_goes_away(make_flaky, cli, tmp_path):
    repo = make_flaky(commits=10, change_at=4, rate=0.4, direction="regression")
    check, checkout, strict, run_id = bisect_and_revert(cli, repo, tmp_path / "cache", REGRESSION)
    assert check.status is CheckStatus.PASS, check
    assert check.detail.startswith("the bug goes away: 0/"), check
    rec = strict.journal.verdict(confirm_run_id(run_id), revert_commit(checkout, check))
    assert rec is not None and rec.verdict == Verdict.CLEAN and rec.reproduced == 0
    assert_checkout_clean(checkout)


@pytest.mark.slow
def test_a_later_rewrite_of_the_same_lines_moves_the_revert_to_the_commit_before_it(
    make_flaky, cli, tmp_path
):
    """The fix's lines are rewritten by the new end itself: the revert conflicts there and
    is made on the commit before it, where it applies; the bug comes back."""
    repo = make_flaky(commits=8, change_at=5, rate=0.4)
    src = (repo.path / "flaky.c").read_text()
    rewritten = FIXED_SHUTDOWN.replace(
        "munmap((void *)buf, BUF_SIZE);", "munmap((void *)buf, BUF_SIZE); /* now safe */"
    )
    assert src.count(FIXED_SHUTDOWN) == 1
    later = commit_files(
        repo.path, {"flaky.c": src.replace(FIXED_SHUTDOWN, rewritten)}, "Tidy up", 1_700_000_000
    )
    before = repo.new
    repo = replace(repo, shas=[*repo.shas, later])  # the new new end: --bad later
    check, checkout, strict, run_id = bisect_and_revert(cli, repo, tmp_path / "cache", FIX)
    assert check.status is CheckStatus.PASS, check
    assert check.name == (
        f"revert of {repo.answer[:12]} on {before[:12]}, 1 commit before the new end {later[:12]}"
    )
    assert check.detail.startswith("the bug comes back: "), check
    assert check.detail.split("; ")[1:-1] == [
        f"reverted on {before[:12]} (1 commit before the new end), where it applies"
    ]
    reverted = revert_commit(checkout, check)
    assert git_(checkout.path, "rev-parse", f"{reverted}^") == before
    rec = strict.journal.verdict(confirm_run_id(run_id), reverted)
    assert rec is not None and rec.verdict == Verdict.BUG
    assert_checkout_clean(checkout)


@pytest.mark.slow
def test_a_revert_that_conflicts_only_in_notes_is_made_without_it(make_flaky, cli, tmp_path):
    """The fix also edits NOTES, which every commit rewrites: a plain revert conflicts on
    every later commit, the partial one (NOTES kept) brings the bug back and gates."""
    repo = make_flaky(commits=10, change_at=6, rate=0.4, conflicting_change=True)
    check, checkout, strict, run_id = bisect_and_revert(cli, repo, tmp_path / "cache", FIX)
    assert (check.status, check.gates) == (CheckStatus.PASS, True), check
    assert check.name == f"revert of {repo.answer[:12]} on the new end {repo.new[:12]}"
    assert check.detail.startswith("the bug comes back: "), check
    assert check.detail.split("; ")[1:-1] == [
        "partial revert: kept the new end's NOTES (not built)"
    ]
    reverted = revert_commit(checkout, check)
    assert git_(checkout.path, "rev-parse", f"{reverted}^") == repo.new
    before_fix = git_(repo.path, "show", f"{repo.answer}^:flaky.c")
    assert git_(checkout.path, "show", f"{reverted}:flaky.c") == before_fix
    assert git_(checkout.path, "diff", "--name-only", repo.new, reverted) == "flaky.c"
    rec = strict.journal.verdict(confirm_run_id(run_id), reverted)
    assert rec is not None and rec.verdict == Verdict.BUG and rec.reproduced > 0
    assert_checkout_clean(checkout)


@pytest.mark.slow
def test_a_revert_that_does_not_build_is_not_run(make_flaky, cli, tmp_path):
    """The buggy shutdown calls a helper that a later commit renames: the revert brings back
    a call to a function that no longer exists."""
    base = make_flaky(commits=1, change_at=1, rate=0.4)  # builds the project; ends fixed
    path = base.path
    fixed = (path / "flaky.c").read_text()
    helper = (
        "static volatile int stop;\n\n"
        "static void release_buffer(void) {\n    munmap((void *)buf, BUF_SIZE);\n}\n"
    )
    with_helper = fixed.replace("static volatile int stop;\n", helper)
    buggy_shutdown = (
        "    /* free the buffer straight away: the writer may still be using it */\n"
        "    release_buffer();\n    stop = 1;\n    pthread_join(t, NULL);"
    )
    stamp = iter(range(1_700_000_000, 1_700_001_000, 10))
    shas = [
        commit_files(
            path,
            {"flaky.c": with_helper.replace(FIXED_SHUTDOWN, buggy_shutdown)},
            "Free the buffer through a helper",
            next(stamp),
        )
    ]
    for i in (1, 2):
        shas.append(commit_files(path, {"NOTES": f"note {i}\n"}, f"Unrelated {i}", next(stamp)))
    shas.append(commit_files(path, {"flaky.c": with_helper}, "Drain the writer", next(stamp)))
    shas.append(commit_files(path, {"NOTES": "note 4\n"}, "Unrelated 4", next(stamp)))
    renamed = with_helper.replace("release_buffer(void)", "unmap_buffer(void)")
    shas.append(commit_files(path, {"flaky.c": renamed}, "Rename the helper", next(stamp)))
    repo = FlakyRepo(path, shas, FlakySpec(commits=5, change_at=3, rate=0.4))
    check, checkout, strict, run_id = bisect_and_revert(cli, repo, tmp_path / "cache", FIX)
    assert check.status is CheckStatus.NOT_RUN, check
    assert check.detail.startswith("does not build: "), check
    reverted = revert_commit(checkout, check)
    assert "release_buffer();" in git_(checkout.path, "show", f"{reverted}:flaky.c")
    assert_checkout_clean(checkout)
