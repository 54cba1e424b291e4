"""A documented option or command is a promise: every one named in README.md and docs/
exists, and every command of the README's command table runs on a generated project."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import flaky_args

from bisect_driver.app.cli import SUBCOMMANDS, build_parser
from bisect_driver.plugin.errors import EXIT_FOUND
from bisect_driver.plugin.registry import names

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OPTION = re.compile(r"(?<![\w/-])(--[a-z][a-z0-9-]+)")
BENCH = re.compile(r"bench/(\w+)\.py")
# Options of other programs that the docs quote: git's, cc's and QEMU's configure's.
FOREIGN = {
    "--porcelain",
    "--ignored",
    "--hard",
    "--python",
    "--cc",
    "--extra-cflags",
    "--version",
    # git-bayesect's own (docs/benchmarks.md compares it)
    "--old",
    "--new",
    # git and patch options that docs/backport.md names
    "--fuzz",
    "--check",
    "--reverse",
    "--index",
    "--bisect",  # git rev-list's (docs/cluster.md: what git tests next)
    # dask scheduler's and dask worker's own (README "Many machines", docs/cluster.md)
    "--port",
    "--nthreads",
    "--nworkers",
    "--protocol",
    "--tls-ca-file",
    "--tls-cert",
    "--tls-key",
}
FOREIGN_PREFIXES = ("--disable-", "--enable-", "--term-")


def cli_options() -> set[str]:
    found: set[str] = set()
    for command in SUBCOMMANDS:
        if command == "step":
            continue
        for recipe in names("recipe"):
            for probe in names("probe"):
                for action in build_parser(command, recipe, probe)._actions:
                    found.update(s for s in action.option_strings if s.startswith("--"))
    return found


def bench_options(script: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{script}.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, f"bench/{script}.py --help: {out.stderr}"
    return set(OPTION.findall(out.stdout))


def documented() -> list[tuple[str, int, str, str | None]]:
    """(file, line, option, bench script or None) for every option the docs name.

    An option on a line of a shell command that runs a bench script (continuation
    lines included) belongs to that script; any other belongs to bisect-qemu."""
    rows = []
    for path in DOCS:
        script = None
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = BENCH.search(line)
            if m:
                script = m.group(1)
            for opt in OPTION.findall(line):
                rows.append((path.name, n, opt, script))
            if not line.rstrip().endswith("\\"):
                script = None
    return rows


def test_every_documented_option_exists() -> None:
    ours = cli_options()
    benches: dict[str, set[str]] = {}
    missing = []
    for name, n, opt, script in documented():
        if opt in FOREIGN or opt.startswith(FOREIGN_PREFIXES):
            continue
        if script is not None:
            known = benches.setdefault(script, bench_options(script))
            if opt not in known:
                missing.append(f"{name}:{n}: {opt} (bench/{script}.py)")
        elif opt not in ours:
            missing.append(f"{name}:{n}: {opt}")
    assert not missing, "documented but not in the CLI:\n" + "\n".join(missing)


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    table = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(bisect-qemu [^`]*)` \|", table, re.M)


def test_the_readme_command_table_is_the_cli() -> None:
    listed = {c.split()[1].strip("[]") for c in readme_commands()}
    assert listed == set(SUBCOMMANDS) - {"step"}


@pytest.mark.slow
def test_every_readme_command_runs_on_a_generated_project(make_flaky, cli, tmp_path: Path) -> None:
    """Each row of the README's command table, as a user would type it, on a flaky repo."""
    repo = make_flaky(commits=10, change_at=6, rate=0.5)
    cache = tmp_path / "c"
    common = flaky_args(repo, cache)
    plugin = [a for a in common if a not in ("--good", "--bad", repo.old, repo.new)]
    seen = set()
    for row in readme_commands():
        word = row.split()[1].strip("[]")
        seen.add(word)
        if word == "run":
            r = cli(*common)
            assert r.status == EXIT_FOUND, r.err
            assert r.out.strip() == repo.answer
        elif word == "resume":
            r = cli("resume", "--cache-dir", str(cache))
            assert r.status == EXIT_FOUND, r.err
        elif word == "status":
            r = cli("status", "--cache-dir", str(cache))
            assert r.status == 0 and "done" in r.out, r.out + r.err
        elif word == "report":
            r = cli("report", "--cache-dir", str(cache), "--report-dir", str(tmp_path / "r"))
            assert r.status == 0 and (tmp_path / "r" / "report.md").exists(), r.err
        elif word == "build":
            r = cli("build", repo.answer, *plugin)
            assert r.status == 0 and "cache hit" in r.out, r.out + r.err
        elif word == "probe":
            r = cli("probe", repo.old, "-n", "4", *plugin)
            assert r.status == 0 and "reproduced" in r.out, r.err
        elif word == "guest":
            r = cli("guest", "build", *plugin)  # the command probe boots no guest: a clear no
            assert r.status == 2 and "no guest kit" in r.err, r.err
        elif word == "doctor":
            r = cli("doctor", *plugin)
            assert r.status == 0 and "all checks passed" in r.out, r.out
        elif word == "demo":
            r = cli("demo", "--cache-dir", str(tmp_path / "demo"))
            assert r.status == 0, r.err
            assert "The bug was fixed by commit" in r.out
        else:
            pytest.fail(f"the README documents {row!r}, which this test does not run")
    assert seen == set(SUBCOMMANDS) - {"step"}
