"""The code's own standards, checked in CI: types, lint, and the layering of the packages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_mypy_strict_on_the_driver() -> None:
    r = run(str(BIN / "mypy"))  # settings in pyproject.toml: strict, files = bisect_driver
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_lint_and_format() -> None:
    r = run(str(BIN / "ruff"), "check", ".")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(str(BIN / "ruff"), "format", "--check", ".")
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_covers_the_build_package() -> None:
    """ruff's default exclude (in older releases) skips every folder named `build`:
    pyproject.toml overrides it, so bisect_driver/build/ is linted and format-checked too."""
    r = run(str(BIN / "ruff"), "check", "--show-files", ".")
    assert "bisect_driver/build/builder.py" in r.stdout, r.stdout + r.stderr
    # --force-exclude applies the exclude list to paths given on the command line too
    r = run(str(BIN / "ruff"), "format", "--check", "--force-exclude", "bisect_driver/build")
    assert r.returncode == 0 and "No Python files found" not in r.stdout + r.stderr, r.stderr
    assert "already formatted" in r.stdout + r.stderr, r.stdout + r.stderr


def test_no_import_cycle_and_no_upward_import() -> None:
    r = run(sys.executable, "bench/import_graph.py", "--json")
    assert r.returncode == 0, r.stderr
    graph = json.loads(r.stdout)
    assert graph["module_cycles"] == [], graph["module_cycles"]
    assert graph["package_cycles"] == [], graph["package_cycles"]
    assert graph["upward_imports"] == [], graph["upward_imports"]


def test_plugins_import_only_the_plugin_layer() -> None:
    """Importing every recipe and probe loads nothing of bisect_driver but its plug-in layer."""
    code = (
        "import sys, build_recipes.shell, build_recipes.qemu, probes.command,"
        " probes.qcow2_sigterm;"
        " print('\\n'.join(sorted(m for m in sys.modules if m.startswith('bisect_driver'))))"
    )
    r = run(sys.executable, "-c", code)
    assert r.returncode == 0, r.stderr
    loaded = r.stdout.split()
    assert "bisect_driver.plugin" in loaded
    assert [
        m for m in loaded if m != "bisect_driver" and not m.startswith("bisect_driver.plugin")
    ] == []


def test_plugins_are_found_by_name_through_entry_points() -> None:
    from bisect_driver.plugin.registry import load_plugin, names

    assert {"shell", "qemu"} <= set(names("recipe"))
    assert {"command", "qcow2-sigterm"} <= set(names("probe"))
    for kind in ("recipe", "probe"):
        for name in names(kind):
            cls = load_plugin(kind, name)
            assert cls.kind == kind and cls.name == name
