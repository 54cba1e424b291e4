"""The backporter's report: confirmation (planted wrong verdict), checks, merges, rendering."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from conftest import flaky_args, read_report

from bisect_driver.app.cli import parse
from bisect_driver.app.commands import settings_from
from bisect_driver.app.driver import prepare_run
from bisect_driver.bisect.checks import Check, CheckStatus
from bisect_driver.bisect.direction import Direction
from bisect_driver.plugin.errors import EXIT_FOUND, EXIT_UNCONFIRMED
from bisect_driver.probe.trials import TrialRunner
from bisect_driver.report.collect import signatures_of
from bisect_driver.report.html import render_html
from bisect_driver.report.markdown import render_md
from bisect_driver.report.model import (
    SCHEMA_VERSION,
    CandidateInfo,
    ConfidenceBasis,
    Environment,
    EvidenceRow,
    PluginInfo,
    Report,
    SignatureRow,
    Statistics,
    Toolchain,
    render_json,
)
from bisect_driver.store.journal import Journal, TrialRecord, VerdictRecord
from bisect_driver.verdict.stats import Verdict
from probes.command import CommandProbe

slow = pytest.mark.slow


def checks(data: dict) -> dict[str, str]:
    return {
        c["name"].split(" ")[0] + " " + c["name"].split(" ", 2)[-1]: c["status"]
        for c in data["checks"]
    }


def status_of(data: dict, prefix: str) -> str:
    found = [c["status"] for c in data["checks"] if c["name"].startswith(prefix)]
    assert len(found) == 1, (prefix, data["checks"])
    return found[0]


def first_midpoint(repo) -> str:
    """The first commit git bisect visits between the ends (git's own choice)."""
    clone = repo.path.parent / (repo.path.name + "-probe")
    subprocess.run(["git", "clone", "-q", str(repo.path), str(clone)], check=True)
    subprocess.run(
        ["git", "bisect", "start", repo.new, repo.old], cwd=clone, check=True, capture_output=True
    )
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout.strip()


@slow
@pytest.mark.parametrize("direction", ["fix", "regression"])
def test_planted_wrong_verdict_is_caught_by_confirmation_and_corrected(
    make_flaky, cli, tmp_path, direction
):
    change_at = 25 if direction == "fix" else 6
    repo = make_flaky(commits=30, change_at=change_at, rate=0.4, direction=direction)
    mid = first_midpoint(repo)
    assert repo.buggy(repo.shas.index(mid))  # so "clean" there is wrong
    cache, report = tmp_path / "cache", tmp_path / "report"
    args = flaky_args(repo, cache, "--report-dir", str(report))
    ctx = prepare_run(settings_from(parse(args)), "bisect-qemu " + shlex.join(args))
    assert ctx.plan is not None and ctx.run_id is not None
    ctx.journal.ensure_run(ctx.run_id, ctx.plan.to_json())
    ctx.journal.record_verdict(
        ctx.run_id, VerdictRecord(mid, "clean", 1, 0, 0.0, "planted", time.time())
    )
    r = cli(*args)
    assert r.status == EXIT_FOUND, r.err
    data = read_report(report)
    assert data["candidate"]["commit"] == repo.answer
    # The planted verdict is overturned; a soft step verdict may have been wrong by
    # itself too (rate 0.4), and then it is corrected as well, in its own round.
    assert mid in data["corrected"]
    side = "candidate" if direction == "fix" else "parent"
    failed = [
        c["name"] for rnd in data["confirmation_rounds"] for c in rnd if c["status"] == "FAIL"
    ]
    assert any(name.startswith(f"{side} {mid[:12]}") for name in failed), failed
    assert len(failed) == len(data["corrected"])
    assert all(c["status"] == "PASS" for c in data["confirmation_rounds"][-1])
    assert data["confirmed"]
    row = next(e for e in data["evidence"] if e["commit"] == mid)
    assert row["verdict"] == "bug" and "corrected by confirmation" in row["reason"]
    assert "corrected" in (report / "report.md").read_text()


@slow
def test_all_checks_pass_with_verified_backport(make_flaky, cli, tmp_path):
    repo = make_flaky(commits=20, change_at=12, rate=0.4)
    report = tmp_path / "report"
    r = cli(*flaky_args(repo, tmp_path / "cache", "--report-dir", str(report), "--verify-backport"))
    assert r.status == EXIT_FOUND, r.err
    data = read_report(report)
    assert status_of(data, "parent") == "PASS"
    assert status_of(data, "candidate ") == "PASS"
    assert status_of(data, "candidate's binary differs") == "PASS"
    assert status_of(data, "backport applies") == "PASS"
    assert status_of(data, "backport fixes") == "PASS"
    # v2: the strict test of the clean neighbour spends 0.8 delta in its first round
    assert data["confirmed"] and data["confidence"] >= 0.99


@slow
def test_backport_that_conflicts_fails(make_flaky, cli, tmp_path):
    repo = make_flaky(commits=12, change_at=7, rate=0.4, conflicting_change=True)
    report = tmp_path / "report"
    # Confirmed (not --no-confirm): the backport of the change itself must be what conflicts,
    # and soft steps alone name a wrong commit now and then (0/6 at a rate of 0.4: 5 %).
    r = cli(*flaky_args(repo, tmp_path / "cache", "--report-dir", str(report)))
    assert r.status == EXIT_FOUND, r.err
    data = read_report(report)
    assert data["candidate"]["commit"] == repo.answer
    assert status_of(data, "backport applies") == "FAIL"
    assert "NOTES" in next(
        c["detail"] for c in data["checks"] if c["name"].startswith("backport applies")
    )


@slow
def test_backport_that_does_not_fix_fails(make_flaky, cli, tmp_path):
    """Backport onto a ref whose tree crashes for another reason: applies, does not fix."""
    repo = make_flaky(commits=12, change_at=7, rate=0.4)
    # a branch off the old end that adds a second, unconditional crash
    subprocess.run(["git", "checkout", "-q", "-b", "stable", repo.old], cwd=repo.path, check=True)
    src = (repo.path / "flaky.c").read_text()
    (repo.path / "flaky.c").write_text(
        src.replace('printf("clean exit\\n");', 'printf("clean exit\\n"); raise(11);')
    )
    subprocess.run(
        ["git", "commit", "-qam", "stable: another crash on exit"], cwd=repo.path, check=True
    )
    subprocess.run(["git", "checkout", "-q", "main"], cwd=repo.path, check=True)
    report = tmp_path / "report"
    r = cli(
        *flaky_args(
            repo,
            tmp_path / "cache",
            "--report-dir",
            str(report),
            "--backport-onto",
            "stable",
            "--verify-backport",
        )
    )
    assert r.status == EXIT_FOUND, r.err
    data = read_report(report)
    assert status_of(data, "backport applies onto stable") == "PASS"
    assert status_of(data, "backport fixes stable") == "FAIL"


@slow
def test_identical_binary_is_flagged(make_flaky, cli, tmp_path):
    repo = make_flaky(commits=12, change_at=7, rate=0.4)
    args = flaky_args(
        repo, tmp_path / "cache", "--report-dir", str(tmp_path / "report"), "--no-confirm"
    )
    # main artifact = probe.sh, which no commit changes: the "binary" of the
    # candidate equals its parent's
    i = args.index("--artifact")
    args[i + 1], args[i + 3] = "probe.sh", "flaky"
    r = cli(*args)
    # A failed check of the answer gates it: named, not confirmed, exit 8, no confidence.
    # Whatever commit the soft steps alone named (--no-confirm: now and then a wrong one),
    # its "binary" is its parent's.
    assert r.status == EXIT_UNCONFIRMED, r.err
    data = read_report(tmp_path / "report")
    assert r.out.strip() == data["candidate"]["commit"] in repo.shas
    assert status_of(data, "candidate's binary differs") == "FAIL"
    assert not data["confirmed"] and data["confidence"] == 0.0
    assert any("identical binaries" in why for why in data["basis"]["unconfirmed"])


@slow
def test_merged_change_names_commit_and_merge(make_flaky, cli, tmp_path):
    repo = make_flaky(commits=16, change_at=9, rate=0.4, merge_change=True)
    report = tmp_path / "report"
    r = cli(*flaky_args(repo, tmp_path / "cache", "--report-dir", str(report)))
    assert r.status == EXIT_FOUND, r.err
    data = read_report(report)
    assert data["candidate"]["commit"] == repo.answer
    assert data["candidate"]["merged_by"] == repo.merge
    assert repo.merge in (report / "report.md").read_text()


@slow
def test_first_parent_answer_is_the_merge_and_lists_what_it_brought(make_flaky, cli, tmp_path):
    repo = make_flaky(commits=16, change_at=9, rate=0.4, merge_change=True)
    report = tmp_path / "report"
    r = cli(*flaky_args(repo, tmp_path / "cache", "--report-dir", str(report), "--first-parent"))
    assert r.status == EXIT_FOUND, r.err
    data = read_report(report)
    assert data["candidate"]["commit"] == repo.merge
    assert set(data["candidate"]["brings_in"]) == set(repo.side)


@slow
def test_report_renders_and_regenerates_from_the_journal(make_flaky, cli, tmp_path):
    repo = make_flaky(commits=16, change_at=12, rate=0.4, unbuildable=[7, 8])
    cache, report = tmp_path / "cache", tmp_path / "report"
    r = cli(*flaky_args(repo, cache, "--report-dir", str(report)))
    assert r.status == EXIT_FOUND, r.err
    first = read_report(report)
    page = (report / "report.html").read_text()
    assert "<svg" in page and "candidate " + repo.answer[:12] in page
    for e in first["evidence"]:
        assert e["commit"][:12] in page
    for f in report.glob("report.*"):  # backport/ (the run's deliverable) stays
        f.unlink()
    again = cli("report", "--cache-dir", str(cache), "--report-dir", str(report))
    assert again.status == 0, again.err
    second = read_report(report)
    first.pop("generated"), second.pop("generated")
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    md = (report / "report.md").read_text()
    for heading in (
        "## Candidate",
        "## Confidence",
        "## Checks",
        "## Evidence",
        "## Signatures",
        "## Environment",
        "## Reproduce or resume",
        "## git bisect log",
    ):
        assert heading in md
    assert any(e["verdict"] == "skip" and "build" in e["reason"] for e in second["evidence"])
    # every reproduction's failure is listed; the reproducing end's is the bug
    end = repo.old  # a fix hunt: the old end reproduces
    at_end = {
        (s["signature"], s["is_bug"], s["why"]) for s in second["signatures"] if s["commit"] == end
    }
    assert at_end == {("crashed: SIGSEGV", True, "shown by the reproducing end")}


# -- the model and its renderers, without a run ------------------------------------------

CAND = "c0ffee" + "1" * 34
PARENT = "0ddba1" + "2" * 34


def hand_made_report(checks: tuple[Check, ...]) -> Report:
    """A report as collect() would build it for a confirmed fix, written out by hand."""
    rows = (
        EvidenceRow(PARENT, "parent | subject", 0, 5, 5, 2, 0, 0, 0, 0.4, (0.05, 0.85),
                    Verdict.BUG, 1e-4, "endpoint", Verdict.BUG, 1e-5),
        EvidenceRow(CAND, "the fix", 1, 40, 40, 0, 0, 0, 0, 0.0, (0.0, 0.09),
                    Verdict.CLEAN, 1e-4, "decided", Verdict.CLEAN, 1e-5),
    )  # fmt: skip
    return Report(
        run_id="r1",
        status="done",
        candidate=CandidateInfo(
            CAND,
            "the fix",
            "A <a@b>",
            "2024-01-01T00:00:00",
            "the fix\n\nbody",
            " f | 1 +",
            "v9.0.0",
            (PARENT,),
        ),  # fmt: skip
        candidates=(CAND,),
        direction=Direction.FIX,
        terms=("broken", "fixed"),
        confidence=0.99998,
        confidence_method="confirmed",
        basis=ConfidenceBasis(
            floor=0.05,
            floor_source="--min-rate",
            near=(3, 9),
            far=(40, 50),
            drift=None,
            background=None,
            error_bound=2e-5,
            unconfirmed=(),
        ),
        confirmed=True,
        corrected=(),
        contradiction=None,
        checks=checks,
        confirmation_rounds=(checks,),
        alpha_per_verdict=1e-4,
        steps=1,
        trials=45,
        good=PARENT,
        bad=CAND,
        good_ref="v8",
        bad_ref="v9",
        range_size=1,
        evidence=rows,
        bisect_log="git bisect start\n",
        command="bisect-qemu --good v8 --bad v9",
        wall_seconds=60.0,
        environment=Environment(
            PluginInfo("shell", "k1", {"build_cmd": "make"}),
            ("fixup-a",),
            PluginInfo("command", "k2", {}),
            Statistics(0.99, 0.0, 200, 2, "inconclusive", None, 3600.0),
            Toolchain("cc 1", "git 2", "3.11", "6.1", "x86_64, 2 CPUs"),
        ),
        generated="now",
    )


def md_checks(md: str) -> list[tuple[str, str, str]]:
    section = md.split("## Checks", 1)[1].split("## Evidence", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ")][1:]  # minus the header
    return [tuple(cell.strip() for cell in ln.strip("|").split(" | ")) for ln in rows]


def html_checks(page: str) -> list[tuple[str, str, str]]:
    found = re.findall(
        r"<tr><td>([^<]*)</td><td><span class='([^']*)'>[^<]*</span></td><td>([^<]*)</td></tr>",
        page,
    )
    return [tuple(html.unescape(x) for x in row) for row in found]


@pytest.mark.parametrize(
    "statuses", [(CheckStatus.PASS, CheckStatus.PASS), (CheckStatus.PASS, CheckStatus.FAIL)]
)
def test_renderers_and_json_agree_on_candidate_and_checks(statuses):
    checks = (
        Check(f"parent {PARENT[:12]} reproduces", statuses[0], "2/5 reproduced"),
        Check(f"candidate {CAND[:12]} is clean", statuses[1], "0/40 <clean> & done"),
    )
    report = hand_made_report(checks)
    data = json.loads(render_json(report))
    assert data == report.to_json()
    md = render_md(report)
    page = render_html(report)

    expected = [(c["name"], c["status"], c["detail"]) for c in data["checks"]]
    assert [c[1] for c in expected] == [str(s) for s in statuses]
    assert md_checks(md) == expected
    assert html_checks(page) == expected

    assert data["candidate"]["commit"] == CAND
    assert re.findall(r"- Commit: `([0-9a-f]{40})`", md) == [CAND]
    assert re.findall(r"<td>commit</td><td><code>([0-9a-f]{40})</code>", page) == [CAND]
    assert f"The bug was fixed by commit `{CAND}`" in md
    assert f"The bug was fixed by commit {CAND}" in page
    assert "| 1 | `c0ffee111111` | the fix | 40 | 0 | 0.00 (0.00-0.09) | clean | clean |" in md
    assert "parent \\| subject" in md


def test_report_json_keys_are_the_documented_ones():
    """docs/report.md lists every top-level key of report.json; a new key must be added there."""
    doc = (Path(__file__).parents[1] / "docs" / "report.md").read_text()
    assert f"(schema {SCHEMA_VERSION})" in doc
    documented = set()
    top_level = doc.split("\n## ", 1)[0]  # the first table; later sections describe parts
    for line in top_level.splitlines():
        if line.startswith("| `"):
            documented |= set(re.findall(r"`([a-z_0-9]+)`", line.split(" | ")[0]))
    data = hand_made_report(()).to_json()
    assert set(data) == documented
    assert data["schema"] == SCHEMA_VERSION


# -- the Signatures section: every failure seen, per commit, and why it counted -----------

SIG_ROWS = (
    SignatureRow(PARENT, "crashed: SIGSEGV", 2, True, "shown by the reproducing end"),
    SignatureRow(PARENT, "a.c:<line>: f: Assertion `x' failed. | killed by SIGABRT", 1, True,
                 "a face of the bug: seen at 0ddba1222222, which carries the bug (2"
                 " reproductions of the reproducing end's signature), never on the clean side"),
    SignatureRow(CAND, "crashed: SIGBUS", 3, False,
                 "another failure: not shown by the reproducing end, nor seen at a commit"
                 " shown to carry the bug"),
    SignatureRow(CAND, None, 1, True, "no signature: nothing tells it from the bug"),
)  # fmt: skip


def test_signatures_are_listed_per_commit_in_every_rendering():
    report = dataclasses.replace(hand_made_report(()), signatures=SIG_ROWS)
    data = json.loads(render_json(report))
    assert data["signatures"][0] == {
        "commit": PARENT,
        "signature": "crashed: SIGSEGV",
        "count": 2,
        "is_bug": True,
        "why": "shown by the reproducing end",
    }
    assert [(s["commit"], s["count"], s["is_bug"]) for s in data["signatures"]] == [
        (r.commit, r.count, r.is_bug) for r in SIG_ROWS
    ]
    md = render_md(report)
    section = md.split("## Signatures", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ")][1:]
    assert rows[0] == (
        "| 0 | `0ddba1222222` | `crashed: SIGSEGV` | 2 | the bug | shown by the reproducing end |"
    )
    assert "`a.c:<line>: f: Assertion `x' failed. \\| killed by SIGABRT` | 1 | the bug |" in rows[1]
    assert "| 1 | `c0ffee111111` | `crashed: SIGBUS` | 3 | another failure |" in rows[2]
    assert "| (none) | 1 | the bug |" in rows[3]
    assert len(rows) == len(SIG_ROWS)
    page = render_html(report)
    assert "<h2>Signatures</h2>" in page
    assert "<td><code>crashed: SIGBUS</code></td><td>3</td><td>another failure</td>" in page
    assert html.escape("Assertion `x' failed.") in page
    # no reproduction anywhere: no section
    empty = hand_made_report(())
    assert "## Signatures" not in render_md(empty)
    assert "<h2>Signatures</h2>" not in render_html(empty)
    assert json.loads(render_json(empty))["signatures"] == []


def test_signatures_of_counts_each_failure_with_the_evidence_rule(tmp_path):
    """The rows agree with the evidence counts: what the table calls the bug is what the
    verdicts counted."""
    journal = Journal(tmp_path / "j.sqlite3")
    probe = CommandProbe(probe_cmd="true")
    runner = TrialRunner(journal, probe, "rk", tmp_path / "ev", hang_as="reproduced")
    seg, abrt = "crashed: SIGSEGV", "crashed: SIGABRT"
    plan = {
        "E": [("reproduced", seg), ("reproduced", seg), ("clean", None)],
        "C": [("clean", None), ("reproduced", abrt)],
        "X": [("reproduced", abrt), ("reproduced", seg), ("hang", None), ("error", "x")],
    }
    for commit, trials in plan.items():
        for i, (outcome, sig) in enumerate(trials):
            journal.record_trial(
                "rk",
                runner.probe_key,
                TrialRecord(commit, i, outcome, None, None, 0.1, 0.0, None, "", None, sig),
            )
    journal.record_verdict("r", VerdictRecord("C", "clean", 2, 0, 0.0, "endpoint", 0.0))
    runner.bug_end, runner.ends, runner.verdict_runs = "E", ("E", "C"), ("r",)
    rows = signatures_of(runner, ["E", "C", "X"], runner.bug)
    got = [(r.commit, r.signature, r.count, r.is_bug) for r in rows]
    assert got == [
        ("E", seg, 2, True),
        ("C", abrt, 1, False),
        ("X", None, 1, True),  # a hang counted as a reproduction names nothing
        ("X", abrt, 1, False),
        ("X", seg, 1, True),
    ]
    assert rows[0].why == "shown by the reproducing end"
    assert rows[1].why.startswith("another failure: not shown by the reproducing end")
    ev = runner.evidence("X")
    assert ev.reproduced == sum(r.count for r in rows if r.commit == "X" and r.is_bug)
    assert ev.other == sum(r.count for r in rows if r.commit == "X" and not r.is_bug)
    # before the reproducing end is known every failure counts, and the table says why
    runner.bug_end = None
    assert all(
        r.is_bug and "no bug defined yet" in r.why for r in signatures_of(runner, ["X"], None)
    )
    journal.close()
