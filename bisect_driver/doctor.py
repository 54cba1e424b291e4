"""`bisect-qemu doctor`: is this host ready for the chosen recipe and probe?

Checks the tools every run needs (git, a compiler) and asks the recipe and
probe plug-ins for theirs; prints one line per check and exits non-zero if
any fails, so it works as a pre-flight step in a script.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess

from build_recipes.base import HostCheck

from .context import plugin_classes


def _tool(name: str, *version_args: str) -> HostCheck:
    path = shutil.which(name)
    if not path:
        return HostCheck(name, False, "not found on PATH")
    detail = path
    if version_args:
        try:
            out = subprocess.run(
                [name, *version_args], capture_output=True, text=True, timeout=20
            ).stdout
            detail = (out.strip().splitlines() or [path])[0]
        except (OSError, subprocess.TimeoutExpired):
            pass
    return HostCheck(name, True, detail)


def doctor(args: argparse.Namespace) -> int:
    checks = [_tool("git", "--version"), _tool("cc", "--version"), _tool("make", "--version")]
    recipe_cls, probe_cls = plugin_classes(args.recipe, args.probe)
    for cls in (recipe_cls, probe_cls):
        try:
            plugin = cls.from_args(args)
        except Exception as exc:  # noqa: BLE001 - report, don't crash
            checks.append(HostCheck(f"{cls.name} options", False, str(exc)))
            continue
        checks += plugin.host_checks()
    width = max(len(c.name) for c in checks)
    for c in checks:
        mark = "ok  " if c.ok else "FAIL"
        print(f"{mark} {c.name:<{width}}  {c.detail}")
    failed = [c for c in checks if not c.ok]
    if failed:
        print(f"{len(failed)} check(s) failed; run the README's install command (install.sh)")
        return 1
    print("all checks passed")
    return 0
