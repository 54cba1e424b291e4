"""Build one commit of a QEMU clone with the qemu recipe as the driver does: for the bench scripts.

The driver's way (build/builder.py): check the commit out (forced) in the tool's checkout,
build into an empty output dir with the persistent build dir, then ``git reset --hard``
(the recipe must leave the checkout clean; what it left is returned, so a bench can
report it).  The recipe and ``bisect_driver`` are whatever is importable, so a bench can
compare two versions with PYTHONPATH.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from bisect_driver.plugin import BuildContext, BuildResult
from build_recipes.qemu import QemuRecipe


@dataclass
class Built:
    result: BuildResult
    seconds: float
    """The recipe's build alone, timed once ``hold`` is held."""
    dirty: str
    """``git status --porcelain --ignored`` of the checkout right after the build."""
    log_path: Path


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def tool_clone(qemu: Path, src: Path) -> None:
    """The bench's own checkout of the user's clone (``--shared``: objects are borrowed,
    nothing is copied), as the driver keeps one; made once."""
    if not (src / ".git").is_dir():
        subprocess.run(
            ["git", "clone", "-q", "--shared", "--no-checkout", str(qemu), str(src)], check=True
        )


def build_commit(
    recipe: QemuRecipe,
    checkout: Path,
    commit: str,
    build_dir: Path,
    cache: Path,
    out: Path,
    log_path: Path,
    *,
    timeout: float = 3600,
    hold: AbstractContextManager[object] | None = None,
) -> Built:
    """Build ``commit`` (a full SHA: the caller names the log after it) into ``out``
    (emptied first).  ``hold``: entered around the build
    alone, e.g. a lock that keeps other heavy work off a shared machine."""
    git(checkout, "checkout", "-q", "--detach", "-f", commit)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    ctx = BuildContext(
        commit=commit,
        source_dir=checkout,
        build_dir=build_dir,
        output_dir=out,
        cache_dir=cache,
        log_path=log_path,
        timeout=timeout,
    )
    with hold if hold is not None else contextlib.nullcontext():
        start = time.monotonic()
        result = recipe.build(ctx)
        seconds = time.monotonic() - start
    dirty = git(checkout, "status", "--porcelain", "--ignored")
    git(checkout, "reset", "-q", "--hard")
    return Built(result, seconds, dirty, log_path)
