"""Bad input: one clear line on stderr, a documented non-zero exit, nothing lost."""

from __future__ import annotations

import subprocess

import pytest
from conftest import flaky_args

from bisect_driver.plugin.errors import EXIT_JOURNAL, EXIT_LOCKED, EXIT_USAGE
from bisect_driver.store.lock import CacheLock


@pytest.fixture
def repo(make_flaky):
    return make_flaky(commits=6, change_at=3, rate=0.4)


def error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("bisect-qemu: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def with_arg(args: list[str], flag: str, value: str) -> list[str]:
    args = list(args)
    args[args.index(flag) + 1] = value
    return args


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--good", "no-such-ref", "unknown revision 'no-such-ref'"),
        ("--bad", "v9.9", "unknown revision 'v9.9'"),
        ("--good", "--upload-pack=evil", "argument --good"),
        ("--confidence", "1.5", "strictly between 0 and 1"),
        ("--jobs", "0", "must be at least 1"),
        ("--max-trials", "many", "not a whole number"),
        ("--false-positive-rate", "-0.1", "must be in [0, 1)"),
        ("--trial-timeout", "0", "must be positive"),
        ("--cache-limit", "lots", "invalid size"),
    ],
)
def test_bad_values(repo, cli, tmp_path, flag, value, message):
    r = cli(
        *with_arg(flaky_args(repo, tmp_path / "c"), flag, value)
        if flag in flaky_args(repo, tmp_path / "c")
        else [*flaky_args(repo, tmp_path / "c"), flag, value]
    )
    assert r.status == EXIT_USAGE
    assert message in error_line(r.err)


def test_steady_rate_and_min_rate_conflict(repo, cli, tmp_path):
    """--steady-rate compares with the measured rate itself: a floor besides it is refused."""
    r = cli(*flaky_args(repo, tmp_path / "c"), "--steady-rate", "--min-rate", "0.1")
    assert r.status == EXIT_USAGE
    assert "--steady-rate and --min-rate cannot be combined" in error_line(r.err)
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


def test_good_equal_bad(repo, cli, tmp_path):
    r = cli(*with_arg(flaky_args(repo, tmp_path / "c"), "--bad", repo.old))
    assert r.status == EXIT_USAGE
    assert "same commit" in error_line(r.err)


def test_good_not_an_ancestor_of_bad(repo, cli, tmp_path):
    args = with_arg(flaky_args(repo, tmp_path / "c"), "--good", repo.new)
    r = cli(*with_arg(args, "--bad", repo.old))
    assert r.status == EXIT_USAGE
    assert "is not an ancestor of" in error_line(r.err)


def test_missing_repo(repo, cli, tmp_path):
    r = cli(*with_arg(flaky_args(repo, tmp_path / "c"), "--repo", str(tmp_path / "nope")))
    assert r.status == EXIT_USAGE
    assert "does not exist" in error_line(r.err)


def test_not_a_git_repo(repo, cli, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    r = cli(*with_arg(flaky_args(repo, tmp_path / "c"), "--repo", str(plain)))
    assert r.status == EXIT_USAGE
    assert "not a git repository" in error_line(r.err)


def test_dirty_repo_is_refused_and_kept(repo, cli, tmp_path):
    (repo.path / "flaky.c").write_text("my unsaved work\n")
    r = cli(*flaky_args(repo, tmp_path / "c"))
    assert r.status == EXIT_USAGE
    assert "uncommitted changes" in error_line(r.err)
    assert (repo.path / "flaky.c").read_text() == "my unsaved work\n"


@pytest.mark.parametrize(
    ("flag", "message"),
    [("--recipe", "unknown recipe 'nosuch'"), ("--probe", "unknown probe 'nosuch'")],
)
def test_unknown_plugin(repo, cli, tmp_path, flag, message):
    r = cli(*flaky_args(repo, tmp_path / "c"), flag, "nosuch")
    assert r.status == EXIT_USAGE
    assert message in error_line(r.err)


def test_missing_required_option(cli):
    r = cli("--good", "v1.0", "--recipe", "shell", "--probe", "command")
    assert r.status == EXIT_USAGE
    assert "--bad" in error_line(r.err)


def test_corrupt_journal_is_reported_and_kept(repo, cli, tmp_path):
    cache = tmp_path / "c"
    cache.mkdir()
    junk = b"this is not a database" * 100
    (cache / "journal.sqlite3").write_bytes(junk)
    r = cli(*flaky_args(repo, cache))
    assert r.status == EXIT_JOURNAL
    assert "journal" in error_line(r.err)
    assert (cache / "journal.sqlite3").read_bytes() == junk


def test_second_run_on_the_same_cache_is_refused(repo, cli, tmp_path):
    cache = tmp_path / "c"
    holder = CacheLock(cache)
    holder.acquire("run abc")
    try:
        r = cli(*flaky_args(repo, cache))
    finally:
        holder.release()
    assert r.status == EXIT_LOCKED
    line = error_line(r.err)
    assert "another bisect-qemu" in line and "run abc" in line


def test_unreadable_config(repo, cli, tmp_path):
    r = cli(*flaky_args(repo, tmp_path / "c"), "--config", str(tmp_path / "missing.toml"))
    assert r.status == EXIT_USAGE
    assert "cannot read config" in error_line(r.err)
    bad = tmp_path / "bad.toml"
    bad.write_text("max-trials = [unclosed\n")
    r = cli(*flaky_args(repo, tmp_path / "c"), "--config", str(bad))
    assert r.status == EXIT_USAGE
    assert "not valid TOML" in error_line(r.err)
    typo = tmp_path / "typo.toml"
    typo.write_text("max-trails = 10\n")
    r = cli(*flaky_args(repo, tmp_path / "c"), "--config", str(typo))
    assert "unknown option(s) max_trails" in error_line(r.err)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("jobs = 0\n")
    r = cli(*flaky_args(repo, tmp_path / "c"), "--config", str(wrong))
    assert "must be at least 1" in error_line(r.err)


def test_config_supplies_defaults(repo, cli, tmp_path):
    cfg = tmp_path / "ok.toml"
    cfg.write_text("confidence = 0.9\nmax-trials = 7\n")
    from bisect_driver.app.cli import parse

    args = parse([*flaky_args(repo, tmp_path / "c"), "--config", str(cfg), "--max-trials", "9"])
    assert args.confidence == 0.9 and args.max_trials == 9


def test_refs_never_reach_a_shell(repo, cli, tmp_path):
    marker = tmp_path / "pwned"
    r = cli(*with_arg(flaky_args(repo, tmp_path / "c"), "--good", f"main;touch {marker}"))
    assert r.status == EXIT_USAGE
    assert not marker.exists()
    subprocess.run(["git", "status"], cwd=repo.path, check=True, capture_output=True)
