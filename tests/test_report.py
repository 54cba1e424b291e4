"""The backporter's report: confirmation (planted wrong verdict), checks, merges, rendering."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from conftest import flaky_args, read_report

from bisect_driver.cli import parse
from bisect_driver.driver import prepare_run
from bisect_driver.errors import EXIT_FOUND
from bisect_driver.journal import VerdictRecord

pytestmark = pytest.mark.slow


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
    ctx = prepare_run(parse(args))
    ctx.journal.ensure_run(ctx.run_id, ctx.settings)
    ctx.journal.record_verdict(
        ctx.run_id, VerdictRecord(mid, "clean", 1, 0, 0.0, "planted", time.time())
    )
    r = cli(*args)
    assert r.status == EXIT_FOUND, r.err
    data = read_report(report)
    assert data["candidate"]["commit"] == repo.answer
    assert data["corrected"] == [mid]
    first_round = data["confirmation_rounds"][0]
    failed = [c["name"] for c in first_round if c["status"] == "FAIL"]
    side = "candidate" if direction == "fix" else "parent"
    assert failed and failed[0].startswith(f"{side} {mid[:12]}")
    assert all(c["status"] == "PASS" for c in data["confirmation_rounds"][-1])
    assert data["confirmed"]
    row = next(e for e in data["evidence"] if e["commit"] == mid)
    assert row["verdict"] == "bug" and "corrected by confirmation" in row["reason"]
    assert "corrected" in (report / "report.md").read_text()


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
    assert data["confirmed"] and data["confidence"] > 0.999


def test_backport_that_conflicts_fails(make_flaky, cli, tmp_path):
    repo = make_flaky(commits=12, change_at=7, rate=0.4, conflicting_change=True)
    report = tmp_path / "report"
    r = cli(*flaky_args(repo, tmp_path / "cache", "--report-dir", str(report), "--no-confirm"))
    assert r.status == EXIT_FOUND, r.err
    data = read_report(report)
    assert status_of(data, "backport applies") == "FAIL"
    assert "NOTES" in next(
        c["detail"] for c in data["checks"] if c["name"].startswith("backport applies")
    )
    assert not data["confirmed"]


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
            "--no-confirm",
            "--backport-onto",
            "stable",
            "--verify-backport",
        )
    )
    assert r.status == EXIT_FOUND, r.err
    data = read_report(report)
    assert status_of(data, "backport applies onto stable") == "PASS"
    assert status_of(data, "backport fixes stable") == "FAIL"


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
    assert r.status == EXIT_FOUND, r.err
    data = read_report(tmp_path / "report")
    assert status_of(data, "candidate's binary differs") == "FAIL"


def test_merged_change_names_commit_and_merge(make_flaky, cli, tmp_path):
    repo = make_flaky(commits=16, change_at=9, rate=0.4, merge_change=True)
    report = tmp_path / "report"
    r = cli(*flaky_args(repo, tmp_path / "cache", "--report-dir", str(report)))
    assert r.status == EXIT_FOUND, r.err
    data = read_report(report)
    assert data["candidate"]["commit"] == repo.answer
    assert data["candidate"]["merged_by"] == repo.merge
    assert repo.merge in (report / "report.md").read_text()


def test_first_parent_answer_is_the_merge_and_lists_what_it_brought(make_flaky, cli, tmp_path):
    repo = make_flaky(commits=16, change_at=9, rate=0.4, merge_change=True)
    report = tmp_path / "report"
    r = cli(*flaky_args(repo, tmp_path / "cache", "--report-dir", str(report), "--first-parent"))
    assert r.status == EXIT_FOUND, r.err
    data = read_report(report)
    assert data["candidate"]["commit"] == repo.merge
    assert set(data["candidate"]["brings_in"]) == set(repo.side)


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
    for f in report.iterdir():
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
        "## Environment",
        "## Reproduce or resume",
        "## git bisect log",
    ):
        assert heading in md
    assert any(e["verdict"] == "skip" and "build" in e["reason"] for e in second["evidence"])
