"""The qemu recipe on real QEMU history (needs a clone: BISECT_QEMU_REPO=/path/to/qemu).

Each build takes 1-2 minutes of two cores: these tests are slow and skipped
without a clone (CI has none).  On a shared machine run them under the heavy
lock: ``flock /tmp/bisect-heavy.lock .venv/bin/pytest -m qemu``.
Set BISECT_QEMU_CACHE to a directory to reuse ccache between runs.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bisect_driver.plugin import BuildContext, BuildStatus
from build_recipes.qemu import QemuRecipe

REPO = os.environ.get("BISECT_QEMU_REPO")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.qemu,
    pytest.mark.skipif(
        not REPO, reason="set BISECT_QEMU_REPO to a QEMU clone with tags v1.0 and v1.1.0"
    ),
]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def qemu(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tool-owned checkout (shared clone) and one build dir/cache for the module."""
    root = tmp_path_factory.mktemp("qemu")
    checkout = root / "checkout"
    subprocess.run(
        ["git", "clone", "-q", "--shared", "--no-checkout", str(REPO), str(checkout)], check=True
    )
    cache = Path(os.environ.get("BISECT_QEMU_CACHE") or root / "cache")
    return {"root": root, "checkout": checkout, "build": root / "build", "cache": cache}


def build(qemu: dict[str, Path], ref: str, name: str) -> tuple[BuildContext, object]:
    git(qemu["checkout"], "checkout", "-q", "--detach", "-f", ref)
    out = qemu["root"] / f"out-{name}"
    out.mkdir()
    qemu["build"].mkdir(exist_ok=True)
    ctx = BuildContext(
        commit=git(qemu["checkout"], "rev-parse", "HEAD"),
        source_dir=qemu["checkout"],
        build_dir=qemu["build"],
        output_dir=out,
        cache_dir=qemu["cache"],
        log_path=qemu["root"] / f"{name}.log",
        timeout=1800,
    )
    return ctx, QemuRecipe().build(ctx)


def test_v1_0_builds_with_the_probe_layout(qemu: dict[str, Path]) -> None:
    ctx, result = build(qemu, "v1.0", "v1.0")
    assert result.status is BuildStatus.OK, ctx.log_path.read_text()[-3000:]
    assert "python3-build-scripts" in result.fixups
    out = ctx.output_dir
    version = subprocess.run(
        [str(out / "bin" / "qemu-system-x86_64"), "-version"], capture_output=True, text=True
    )
    assert "version 1.0" in version.stdout, version
    img = subprocess.run([str(out / "bin" / "qemu-img"), "--help"], capture_output=True, text=True)
    assert "qemu-img version 1.0" in img.stdout
    assert (out / "bin" / "qemu-io").is_file()
    assert (out / "pc-bios" / "bios.bin").is_file()
    assert (out / "pc-bios" / "keymaps" / "en-us").is_file()
    assert git(ctx.source_dir, "status", "--porcelain", "--ignored") == ""


def test_upstream_broken_tracetool_commit_is_a_compile_failure(qemu: dict[str, Path]) -> None:
    ctx, result = build(qemu, "650ab98d1", "650ab98d1")
    assert result.status is BuildStatus.COMPILE, ctx.log_path.read_text()[-3000:]
    assert "unknown format: h" in result.detail
    assert git(ctx.source_dir, "status", "--porcelain", "--ignored") == ""
