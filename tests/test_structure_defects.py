"""Defects found by trying the tool as a new user would (issue 10), each pinned by a test."""

from __future__ import annotations

import sqlite3
import subprocess
import warnings
from pathlib import Path
from types import ModuleType

import pytest
from conftest import flaky_args, read_report

from bisect_driver.app.cli import build_parser, parse
from bisect_driver.app.commands import settings_from
from bisect_driver.plugin.errors import EXIT_DISK, EXIT_FOUND
from bisect_driver.plugin.registry import names


def test_min_free_is_an_option_of_the_main_command() -> None:
    args = parse(["--good", "v1.0", "--bad", "v1.1.0", "--min-free", "1G"])
    assert settings_from(args).min_free == 1 << 30
    assert settings_from(parse(["--good", "a", "--bad", "b", "--min-free", "0"])).min_free == 0


@pytest.mark.slow
def test_min_free_stops_the_run_with_exit_7(make_flaky, cli, tmp_path: Path) -> None:
    repo = make_flaky(commits=12, change_at=6, rate=0.5)
    r = cli(*flaky_args(repo, tmp_path / "c", "--min-free", "100000T"))
    assert r.status == EXIT_DISK, r.err
    assert "--min-free" in r.err.strip().splitlines()[-1]
    # Nothing was lost: the same command with room to spare resumes and finds the answer.
    r = cli(*flaky_args(repo, tmp_path / "c"))
    assert r.status == EXIT_FOUND, r.err


@pytest.mark.parametrize("recipe", names("recipe"))
@pytest.mark.parametrize("probe", names("probe"))
@pytest.mark.parametrize("command", ["run", "build", "probe", "guest", "doctor", "demo"])
def test_parsers_nest_no_argument_groups(command: str, recipe: str, probe: str) -> None:
    """Nested argument groups are deprecated since Python 3.11 and an error in 3.14."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        build_parser(command, recipe, probe)


@pytest.mark.slow
def test_directory_as_first_artifact(make_flaky, cli, tmp_path: Path) -> None:
    """The main artifact may be a directory: it is fingerprinted, not 'missing'."""
    repo = make_flaky(commits=12, change_at=7, rate=0.5)
    args = flaky_args(repo, tmp_path / "c", "--report-dir", str(tmp_path / "r"))
    i = args.index("--build-cmd")
    args[i + 1] = "make -s && rm -rf out && mkdir out && cp flaky probe.sh out/"
    i = args.index("--artifact")
    args[i : i + 4] = ["--artifact", "out"]
    args[args.index("--probe-cmd") + 1] = "cd out && ./probe.sh"
    r = cli(*args)
    assert r.status == EXIT_FOUND, r.err
    data = read_report(tmp_path / "r")
    assert data["candidate"]["commit"] == repo.answer
    fps = [e["fingerprint"] for e in data["evidence"] if e["build"] == "ok"]
    assert fps and all(fps), data["evidence"]


FLAKY_BUILD = r"""set -e
marker="$MARKERS/$BISECT_COMMIT"
if [ "$BISECT_COMMIT" = "$VICTIM" ] && [ ! -e "$marker" ]; then
    touch "$marker"
    echo "cc -O2 -c flaky.c"
    echo "gcc: fatal error: Killed signal terminated program cc1" >&2
    echo "compilation terminated." >&2
    echo "make: *** [Makefile:3: flaky] Error 1" >&2
    exit 2
fi
make -s
"""


@pytest.mark.slow
def test_a_build_killed_once_is_retried_not_skipped(
    make_flaky, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compiler killed mid-build must not turn the answer's parent into a skip."""
    repo = make_flaky(commits=16, change_at=9, rate=0.5)
    parent = subprocess.run(
        ["git", "rev-parse", f"{repo.answer}^"], cwd=repo.path, capture_output=True, text=True
    ).stdout.strip()
    markers = tmp_path / "markers"
    markers.mkdir()
    script = tmp_path / "build.sh"
    script.write_text(FLAKY_BUILD)
    monkeypatch.setenv("MARKERS", str(markers))
    monkeypatch.setenv("VICTIM", parent)
    args = flaky_args(repo, tmp_path / "c", "--report-dir", str(tmp_path / "r"))
    args[args.index("--build-cmd") + 1] = f"sh {script}"
    r = cli(*args)
    assert r.status == EXIT_FOUND, r.err
    assert r.out.strip() == repo.answer
    assert (markers / parent).exists(), "the victim commit was never built"
    db = sqlite3.connect(tmp_path / "c" / "journal.sqlite3")
    attempts, status, first = db.execute(
        "SELECT attempts, status, first_failure FROM builds WHERE commit_sha=?", (parent,)
    ).fetchone()
    assert (attempts, status) == (2, "ok")
    assert "Killed signal terminated program cc1" in first


@pytest.mark.slow
def test_a_failed_build_quotes_the_first_real_error(make_flaky, cli, tmp_path: Path) -> None:
    """The skip reason is the compiler's error line, not make's closing "Error 1"."""
    repo = make_flaky(commits=6, change_at=3, rate=0.5, unbuildable=[4])
    args = flaky_args(repo, tmp_path / "c")
    args = [a for a in args if a not in ("--good", "--bad", repo.old, repo.new)]
    r = cli("build", repo.shas[4], *args)
    assert r.status == 1
    line = next(ln for ln in r.err.splitlines() if "does not build" in ln)
    assert "error:" in line and "flaky.c" in line, line
    assert "Error 1" not in line and "Error 2" not in line, line


def _import_graph() -> ModuleType:  # bench/import_graph.py (bench is not a package)
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / "import_graph.py"
    spec = importlib.util.spec_from_file_location("import_graph", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_driver_never_imports_a_plugin_package(tmp_path: Path) -> None:
    """No module of bisect_driver (the demo included) imports build_recipes or probes, even
    inside a function: plug-ins are loaded by name (plugin.registry), so there is no package
    cycle between the driver and its plug-ins."""
    ig = _import_graph()
    mods = ig.modules()
    known = set(mods)
    graph = {name: ig.imports_of(name, path, known) for name, path in mods.items()}
    direct = sorted(
        f"{src} -> {dst}"
        for src, dests in graph.items()
        if src.split(".")[0] == "bisect_driver"
        for dst in dests
        if dst.split(".")[0] in ("build_recipes", "probes")
    )
    assert direct == []
    top: dict[str, set[str]] = {}
    for src, dests in graph.items():
        for dst in dests:
            if src.split(".")[0] != dst.split(".")[0]:
                top.setdefault(src.split(".")[0], set()).add(dst.split(".")[0])
    assert ig.cycles(top) == [], top
    # The check sees an import inside a function, and import_graph (run by test_quality)
    # reports it as an upward import.
    fake = tmp_path / "commands.py"
    fake.write_text("def demo():\n    from probes.command import CommandOptions\n")
    found = ig.imports_of("bisect_driver.app.commands", fake, known)
    assert "probes.command" in found
    assert ig.upward({"bisect_driver.app.commands": found}) != []
