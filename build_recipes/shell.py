"""The generic recipe: the user's ``--build-cmd``, run in the checkout.

Works for any project before a dedicated recipe exists.  The command runs
through the shell in the tool's checkout (in-tree, so incremental builds
work as they would for the user); each ``--artifact`` path is then copied
into the per-commit artifact cache.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from bisect_driver.errors import UserError
from bisect_driver.proc import run_group

from .base import BuildContext, BuildResult, BuildStatus, Recipe


def _last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "error" in ln.lower():
            return ln[:200]
    return lines[-1][:200] if lines else ""


class ShellRecipe(Recipe):
    name = "shell"

    def __init__(self, build_cmd: str, artifacts: list[str]) -> None:
        if not build_cmd:
            raise UserError("--recipe shell needs --build-cmd")
        if not artifacts:
            raise UserError("--recipe shell needs at least one --artifact PATH")
        for a in artifacts:
            if Path(a).is_absolute() or ".." in Path(a).parts:
                raise UserError(f"--artifact {a!r} must be a path inside the checkout")
        self.build_cmd = build_cmd
        self.artifacts = artifacts

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        pass  # --build-cmd and --artifact are driver-level options

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ShellRecipe:
        return cls(args.build_cmd or "", list(args.artifact or []))

    def settings(self) -> dict[str, Any]:
        return {"build_cmd": self.build_cmd, "artifacts": self.artifacts}

    def main_binary(self) -> str | None:
        return self.artifacts[0]

    def build(self, ctx: BuildContext) -> BuildResult:
        env = dict(__import__("os").environ, BISECT_COMMIT=ctx.commit, **ctx.env)
        res = run_group(
            self.build_cmd,
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
            return BuildResult(BuildStatus.FAILED, detail=f"{how}: {_last_error_line(res.output)}")
        for rel in self.artifacts:
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
        return BuildResult(BuildStatus.OK, detail=f"{len(self.artifacts)} artifact(s)")


RECIPE = ShellRecipe
