"""The generic recipe: the user's ``--build-cmd``, run in the checkout.

Works for any project before a dedicated recipe exists.  The command runs
through the shell in the tool's checkout (in-tree, so incremental builds
work as they would for the user); each ``--artifact`` path (file or
directory) is then copied into the per-commit artifact cache.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bisect_driver.plugin import (
    BuildContext,
    BuildResult,
    BuildStatus,
    Recipe,
    UserError,
    option,
    run_group,
)

from .logparse import classify_make


def _artifact_path(text: str) -> str:
    if Path(text).is_absolute() or ".." in Path(text).parts:
        raise UserError(f"--artifact {text!r} must be a path inside the checkout")
    return text


@dataclass(frozen=True)
class ShellOptions:
    build_cmd: str = option("", "shell recipe: command run in the checkout to build")
    artifact: tuple[str, ...] = option(
        (),
        "shell recipe: file or directory to keep per commit (repeatable; the first one is"
        " fingerprinted)",
        parse=_artifact_path,
        repeatable=True,
    )


class ShellRecipe(Recipe):
    name = "shell"
    version = 2  # directory artifacts are fingerprinted; a retry starts from a clean tree
    Options = ShellOptions
    options: ShellOptions

    def __init__(self, options: ShellOptions | None = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        if not self.options.build_cmd:
            raise UserError("--recipe shell needs --build-cmd")
        if not self.options.artifact:
            raise UserError("--recipe shell needs at least one --artifact PATH")

    def settings(self) -> dict[str, Any]:
        return {"build_cmd": self.options.build_cmd, "artifacts": list(self.options.artifact)}

    def main_binary(self) -> str | None:
        return self.options.artifact[0]

    def build(self, ctx: BuildContext) -> BuildResult:
        if ctx.attempt > 1:
            # A retry starts from a clean tree: the first attempt may have left
            # half-written objects behind (a compiler killed mid-build).
            run_group(["git", "clean", "-fdxq"], cwd=ctx.source_dir, timeout=600)
        env = dict(os.environ, BISECT_COMMIT=ctx.commit, **ctx.env)
        res = run_group(
            self.options.build_cmd,
            shell=True,
            cwd=ctx.source_dir,
            env=env,
            timeout=ctx.timeout,
            log_path=ctx.log_path,
        )
        if res.timed_out:
            return BuildResult(BuildStatus.TIMEOUT, detail=f"build timed out after {ctx.timeout}s")
        if not res.ok:
            how = f"signal {res.signal}" if res.signal else f"exit {res.returncode}"
            status, line = classify_make(res.output, [str(ctx.source_dir)])
            return BuildResult(status, detail=f"{how}: {line}")
        for rel in self.options.artifact:
            src = ctx.source_dir / rel
            dst = ctx.output_dir / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, symlinks=True)
            elif src.exists():
                shutil.copy2(src, dst)
            else:
                return BuildResult(
                    BuildStatus.MISSING_ARTIFACT, detail=f"build did not produce {rel}"
                )
        return BuildResult(BuildStatus.OK, detail=f"{len(self.options.artifact)} artifact(s)")
