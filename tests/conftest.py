"""Shared fixtures: generated flaky repos and an in-process CLI runner."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from bisect_driver.app.cli import main
from bisect_driver.app.flaky_project import FlakyRepo, FlakySpec, generate
from bisect_driver.plugin.proc import LIVE_DIR_ENV


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    """Tests run in parallel (pytest-xdist, pyproject.toml): a command given no --cache-dir
    gets a cache of its own instead of the checkout's cache/, and the live-group directory
    that an in-process command sets in os.environ does not leak into the next test."""
    monkeypatch.setenv("BISECT_QEMU_CACHE", str(tmp_path_factory.mktemp("default-cache")))
    monkeypatch.delenv(LIVE_DIR_ENV, raising=False)


@dataclass
class CliResult:
    status: int
    out: str
    err: str


@pytest.fixture
def make_flaky(tmp_path):
    """Factory: make_flaky(commits=.., change_at=.., ...) -> FlakyRepo under tmp_path."""
    counter = [0]

    def make(**kw) -> FlakyRepo:
        counter[0] += 1
        return generate(tmp_path / f"repo{counter[0]}", FlakySpec(**kw))

    return make


@pytest.fixture
def cli(capsys):
    def run(*argv: str) -> CliResult:
        status = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return CliResult(status, captured.out, captured.err)

    return run


def tool_args(
    path: Path, good: str, bad: str, cache: Path, build_cmd: str, artifacts: list[str]
) -> list[str]:
    """The command line a user would type for a generated project: shell recipe, command
    probe ``./probe.sh``, two jobs."""
    words = ["--repo", str(path), "--good", good, "--bad", bad, "--cache-dir", str(cache)]
    words += ["--build-cmd", build_cmd]
    for a in artifacts:
        words += ["--artifact", a]
    return [*words, "--probe-cmd", "./probe.sh", "--jobs", "2"]


def flaky_args(repo: FlakyRepo, cache: Path, *extra: str) -> list[str]:
    """The command line a user would type for a generated repo."""
    return [
        *tool_args(repo.path, repo.old, repo.new, cache, "make -s", ["flaky", "probe.sh"]),
        *extra,
    ]


def read_report(path: Path) -> dict:
    return json.loads((path / "report.json").read_text())


def repo_state(path: Path) -> dict:
    """Everything about a user's checkout that the tool must leave alone."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True).stdout

    return {
        "head": git("rev-parse", "HEAD"),
        "branch": git("symbolic-ref", "-q", "HEAD"),
        "status": git("status", "--porcelain", "--untracked-files=all"),
        "worktrees": git("worktree", "list", "--porcelain"),
        "refs": git("for-each-ref"),
        "bisect": (path / ".git" / "BISECT_LOG").exists(),
        "index": (path / ".git" / "index").read_bytes(),
    }
