"""The backporter's deliverable on generated repos: explained, a series, built, probed, delivered.

Each repo is a small C program whose shutdown leaves requests pending (exit 1: the probe
reports "crashed: SIGSEGV"); the fix drains them.  Real builds (cc), real probes; the
failure is deterministic here because what is tested is the backport logic, not the
statistics (tests/test_statistics_v2.py tests those on real races).
"""

from __future__ import annotations

import difflib
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from conftest import read_report, tool_args
from test_revert import commit_files, git_

from bisect_driver.plugin.errors import EXIT_FOUND

PROBE = """#!/bin/sh
./prog > /dev/null 2>&1
st=$?
[ $st -eq 0 ] && exit 0
[ $st -eq 1 ] && { echo "crashed: SIGSEGV"; exit 1; }
echo "unexpected status $st"; exit 2
"""

MAIN = """#include <stdio.h>
#include "helpers.h"
int pending;
static void start(void) {{ pending = 3; }}
{extra_funcs}int main(void) {{
    start();
    /* shutdown */
{shutdown}    close_all();
    return pending ? 1 : 0;
}}
"""

HELPERS_H = """void close_all(void);
{decls}"""
HELPERS_C = """#include "helpers.h"
extern int pending;
void close_all(void) {{ }}
{defs}"""


def files(shutdown: str = "", extra: str = "", decls: str = "", defs: str = "") -> dict[str, str]:
    return {
        "main.c": MAIN.format(shutdown=shutdown, extra_funcs=extra),
        "helpers.h": HELPERS_H.format(decls=decls),
        "helpers.c": HELPERS_C.format(defs=defs),
        "probe.sh": PROBE,
    }


class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.shas: list[str] = []
        path.mkdir()
        git_(path, "init", "-q", "-b", "main")

    def commit(self, msg: str, more: dict[str, str] | None = None, **kw: str) -> str:
        return self.commit_tree(msg, {**files(**kw), **(more or {})})

    def commit_tree(self, msg: str, tree: dict[str, str]) -> str:
        """Write ``tree`` (probe.sh made executable) and commit it, an hour after the last."""
        stamp = 1_600_000_000 + len(self.shas) * 3600
        commit_files(self.path, tree, msg, stamp)
        (self.path / "probe.sh").chmod(0o755)
        git_(self.path, "add", "-A", stamp=stamp)
        if git_(self.path, "status", "--porcelain"):
            git_(self.path, "commit", "-q", "--amend", "--no-edit", stamp=stamp)
        sha = git_(self.path, "rev-parse", "HEAD")
        self.shas.append(sha)
        return sha

    def note(self, i: int, **kw: str) -> str:
        """An unrelated commit (the same program, another NOTES)."""
        (self.path / "NOTES").write_text(f"note {i}\n")
        return self.commit(f"Unrelated change {i}", **kw)


def run_args(repo: Repo, tmp_path: Path, *extra: str) -> list[str]:
    build, artifacts = "cc -o prog *.c", ["prog", "probe.sh"]
    args = tool_args(repo.path, repo.shas[0], repo.shas[-1], tmp_path / "cache", build, artifacts)
    return [*args, "--report-dir", str(tmp_path / "report"), *extra]


def backport_of(data: dict, ref_sha: str) -> dict:
    return next(b for b in data["backports"] if b["ref_sha"] == ref_sha)


def check(data: dict, prefix: str) -> dict:
    return next(c for c in data["checks"] if c["name"].startswith(prefix))


DRAIN = "    pending = 0; /* drain */\n"
JOBS = "    cancel_jobs();\n"
JOBS_FUNC = "static void cancel_jobs(void) { }\n"


@pytest.mark.slow
def test_a_fix_that_applies_directly_is_verified_and_delivered(cli, tmp_path: Path) -> None:
    repo = Repo(tmp_path / "user")
    repo.commit("Initial import")
    for i in range(1, 4):
        repo.note(i)
    fix = repo.commit("Drain pending requests on shutdown", shutdown=DRAIN)
    repo.note(5, shutdown=DRAIN)
    r = cli(*run_args(repo, tmp_path))
    assert r.status == EXIT_FOUND, r.err
    assert r.out.strip() == fix
    data = read_report(tmp_path / "report")
    b = backport_of(data, repo.shas[0])
    assert b["direct"] and b["series_status"] == "applies"
    assert [c["commit"] for c in b["series"]] == [fix]
    assert b["verified"], b
    ref, fixed = b["trials"]
    assert ref["verdict"] == "bug" and fixed["verdict"] == "clean"
    assert fixed["error"] <= 0.008  # held to the first round's share, 0.8 delta
    assert check(data, "backport fixes")["status"] == "PASS"
    out = Path(b["out_dir"])
    patches = sorted(out.glob("0*.patch"))
    assert len(patches) == 1
    assert f"(cherry picked from commit {fix})" in patches[0].read_text()
    verify = (out / "VERIFY.md").read_text()
    assert "git worktree add" in verify and "--backport-patch" in verify
    assert "## Backport onto" in (tmp_path / "report" / "report.md").read_text()
    # The by-hand commands work as printed: a worktree of REF, git am, bisect-qemu probe.
    lines = verify.splitlines()
    add = next(x for x in lines if x.startswith("git worktree add"))
    am = next(x for x in lines if x.startswith("git -C") and " am " in x)
    probe = next(x for x in lines if x.startswith("bisect-qemu probe --repo"))
    for command in (add, am):
        words = shlex.split(command)
        env = dict(os.environ, GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid")
        subprocess.run(words, cwd=repo.path, check=True, capture_output=True, env=env)
    words = shlex.split(probe.split("#")[0])[1:]
    work = str((repo.path / words[words.index("--repo") + 1]).resolve())
    words[words.index("--repo") + 1] = work
    words[words.index("-n") + 1] = "4"
    r = cli(*words)
    assert r.status == 0, r.err
    assert "0/4 reproduced" in r.out


@pytest.mark.slow
def test_a_fix_that_needs_one_prerequisite_for_its_context(cli, tmp_path: Path) -> None:
    """The fix's hunk sits next to a line a later commit added: blame names that commit,
    and the series [it, fix] applies, builds and fixes; without the fix it still fails."""
    repo = Repo(tmp_path / "user")
    repo.commit("Initial import")
    repo.note(1)
    prereq = repo.commit("Cancel jobs on shutdown", shutdown=JOBS, extra=JOBS_FUNC)
    repo.note(3, shutdown=JOBS, extra=JOBS_FUNC)
    fix = repo.commit("Drain pending requests", shutdown=JOBS + DRAIN, extra=JOBS_FUNC)
    repo.note(5, shutdown=JOBS + DRAIN, extra=JOBS_FUNC)
    r = cli(*run_args(repo, tmp_path))
    assert r.status == EXIT_FOUND, r.err
    assert r.out.strip() == fix
    data = read_report(tmp_path / "report")
    b = backport_of(data, repo.shas[0])
    assert not b["direct"]
    blamed = {bl["commit"] for e in b["explanations"] for h in e["hunks"] for bl in h["blames"]}
    assert blamed == {prereq}, b["explanations"]
    assert [c["commit"] for c in b["series"]] == [prereq, fix]
    assert "cancel_jobs()" in b["series"][0]["why"]
    assert b["verified"], b
    labels = [t["label"] for t in b["trials"]]
    assert any("without the fix" in x for x in labels)
    assert check(data, "backport applies")["status"] == "FAIL"
    assert prereq[:12] in check(data, "backport applies")["detail"]
    assert check(data, "backport fixes")["status"] == "PASS"
    assert len(sorted(Path(b["out_dir"]).glob("0*.patch"))) == 2


HELPER_DECL = "void drain_all(void);\n"
HELPER_DEF = "void drain_all(void) { pending = 0; }\n"
CALL = "    drain_all();\n"


def helper_repo(tmp_path: Path) -> tuple[Repo, str, str]:
    repo = Repo(tmp_path / "user")
    repo.commit("Initial import")
    repo.note(1)
    helper = repo.commit("Add drain_all()", decls=HELPER_DECL, defs=HELPER_DEF)
    repo.note(3, decls=HELPER_DECL, defs=HELPER_DEF)
    fix = repo.commit("Drain on shutdown", shutdown=CALL, decls=HELPER_DECL, defs=HELPER_DEF)
    repo.note(5, shutdown=CALL, decls=HELPER_DECL, defs=HELPER_DEF)
    return repo, helper, fix


def plain_patch(repo: Repo, shutdown: str) -> str:
    """A hand-made backport onto the old end: main.c's shutdown edited, as a plain diff."""
    old = git_(repo.path, "show", f"{repo.shas[0]}:main.c") + "\n"
    new = MAIN.format(shutdown=shutdown, extra_funcs="")
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            "a/main.c",
            "b/main.c",
        )
    )


@pytest.mark.slow
def test_a_fix_that_uses_a_helper_introduced_after_the_release(cli, tmp_path: Path) -> None:
    """The fix applies cleanly onto the old end, and would not build there: drain_all()
    came later.  git log -S names the commit; the series brings it; hand-made patches
    (one that fixes, one that does not) are judged by building and probing them."""
    repo, helper, fix = helper_repo(tmp_path)
    good = tmp_path / "good.patch"
    good.write_text(plain_patch(repo, DRAIN))
    bad = tmp_path / "bad.patch"
    bad.write_text(plain_patch(repo, "    /* no drain */\n"))
    r = cli(*run_args(repo, tmp_path, "--backport-patch", str(good), "--backport-patch", str(bad)))
    assert r.status == EXIT_FOUND, r.err
    assert r.out.strip() == fix
    data = read_report(tmp_path / "report")
    b = backport_of(data, repo.shas[0])
    assert b["direct"]
    symbols = [s for e in b["explanations"] for s in e["symbols"]]
    assert [(s["name"], s["commit"]) for s in symbols] == [("drain_all", helper)]
    assert [c["commit"] for c in b["series"]] == [helper, fix]
    assert b["verified"], b
    patches = {Path(p["path"]).name: p for p in b["patches"]}
    assert patches["good.patch"]["status"] == "PASS", patches
    assert patches["bad.patch"]["status"] == "FAIL", patches
    assert patches["bad.patch"]["trial"]["reproduced"] > 0
    assert check(data, "backport patch good.patch")["status"] == "PASS"
    assert check(data, "backport patch bad.patch")["status"] == "FAIL"
    assert "reproduces" in patches["good.patch"]["detail"]  # REF itself, then REF + patch
    out = Path(b["out_dir"])
    assert (out / "verified-good.patch").read_text() == good.read_text()
    assert not (out / "verified-bad.patch").exists()
    assert "verified-good.patch" in (out / "VERIFY.md").read_text()


@pytest.mark.slow
def test_an_mbox_backport_and_no_series_verification(cli, tmp_path: Path) -> None:
    """`--backport-patch` takes `git format-patch` output too; --no-verify-backport leaves the
    series unbuilt but still judges the hand-made patch the user asked about."""
    repo, _, fix = helper_repo(tmp_path)
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(repo.path), str(work)], check=True)
    git_(work, "checkout", "-q", repo.shas[0])
    (work / "main.c").write_text(MAIN.format(shutdown=DRAIN, extra_funcs=""))
    git_(work, "commit", "-q", "-am", "Backport: drain on shutdown")
    mbox = tmp_path / "fix.mbox"
    mbox.write_text(git_(work, "format-patch", "-1", "--stdout") + "\n")
    r = cli(*run_args(repo, tmp_path, "--backport-patch", str(mbox), "--no-verify-backport"))
    assert r.status == EXIT_FOUND, r.err
    data = read_report(tmp_path / "report")
    b = backport_of(data, repo.shas[0])
    assert b["trials"] == [] and not b["verified"]
    assert "not verified" in b["verify_detail"]
    assert [p["status"] for p in b["patches"]] == ["PASS"]
    assert check(data, "backport fixes")["status"] == "not run"


@pytest.mark.slow
def test_a_series_that_applies_but_does_not_build(cli, tmp_path: Path) -> None:
    """The helper (a file of its own, so it applies anywhere) calls queue_flush(), which the
    old release lacks: the series applies, the build fails, and the report says so
    instead of calling it a backport."""
    repo = Repo(tmp_path / "user")
    repo.commit("Initial import")
    flush = {"decls": "void queue_flush(void);\n", "defs": "void queue_flush(void) { }\n"}
    repo.commit("Add queue_flush()", **flush)
    drain = {
        "drain.h": "void drain_all(void);\n",
        "drain.c": '#include "helpers.h"\nextern int pending;\n'
        "void drain_all(void) { queue_flush(); pending = 0; }\n",
    }
    helper = repo.commit("Add drain_all()", more=drain, **flush)
    repo.note(3, **flush)
    fix = repo.commit("Drain on shutdown", shutdown=CALL, extra='#include "drain.h"\n', **flush)
    repo.note(5, shutdown=CALL, extra='#include "drain.h"\n', **flush)
    r = cli(*run_args(repo, tmp_path, "--backport-onto", repo.shas[0]))
    assert r.status == EXIT_FOUND, r.err
    assert r.out.strip() == fix
    data = read_report(tmp_path / "report")
    b = backport_of(data, repo.shas[0])
    assert b["series_status"] == "applies", b
    assert [c["commit"] for c in b["series"]] == [helper, fix]
    assert not b["verified"]
    series_trial = b["trials"][-1]
    assert series_trial["verdict"] == "skip" and "does not build" in series_trial["detail"]
    assert check(data, "backport fixes")["status"] == "not run"


@pytest.mark.parametrize("name", ["v1.0", "release/1.x"])
def test_backport_dir_names_are_safe(name: str) -> None:
    from bisect_driver.backport.deliver import safe_name

    assert "/" not in safe_name(name) and safe_name(name)


def test_used_symbols_skip_comments_and_strings() -> None:
    from bisect_driver.backport.explain import Hunk, used_symbols

    hunk = Hunk("a.c", [], "@@ -1,1 +1,3 @@", 1)
    hunk.lines = [
        " int x;",
        '+    drain_all(); /* flush_queue would do */ puts("cancel_jobs now");',
        "+    // wait_for_io() later",
        "-    old_call();",
    ]
    assert used_symbols([hunk]) == ["drain_all", "puts"]
    assert hunk.preimage() == [(1, "int x;"), (2, "    old_call();")]


def test_plugin_options_survive_a_round_trip_through_the_command_line() -> None:
    """What VERIFY.md prints for `bisect-qemu probe` gives the run's plug-in settings back."""
    from bisect_driver.app.cli import parse
    from bisect_driver.app.commands import settings_from
    from bisect_driver.plugin.options import options_to_argv

    argv = [
        "--build-cmd", "cc -o prog *.c", "--artifact", "prog", "--artifact", "probe.sh",
        "--probe-cmd", "./probe.sh", "--signature", "SIG(SEGV|ABRT)",
    ]  # fmt: skip
    s = settings_from(parse(["probe", "HEAD", *argv]), validate=False)
    again = settings_from(
        parse(
            [
                "probe",
                "HEAD",
                "--recipe",
                s.recipe,
                *options_to_argv(s.recipe_options),
                "--probe",
                s.probe,
                *options_to_argv(s.probe_options),
            ]
        ),
        validate=False,
    )
    assert again.recipe_options == s.recipe_options and again.probe_options == s.probe_options
    q = settings_from(parse(["probe", "HEAD", "--no-trim", "--kill-jitter-ms", "21"]), False)
    words = options_to_argv(q.recipe_options) + options_to_argv(q.probe_options)
    assert words == ["--no-trim", "--kill-jitter-ms=21.0"]
