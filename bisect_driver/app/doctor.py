"""`bisect-qemu doctor`: is this host ready for the chosen recipe and probe?

Checks the tools every run needs (git, a compiler) and asks the recipe and
probe plug-ins for theirs; prints one line per check and exits non-zero if
any fails, so it works as a pre-flight step in a script.
"""

from __future__ import annotations

from bisect_driver.plugin.host import HostCheck, tool_check
from bisect_driver.settings import Settings


def doctor(settings: Settings) -> int:
    checks = [
        tool_check("git", ["git", "--version"]),
        tool_check("cc", ["cc", "--version"]),
        tool_check("make", ["make", "--version"]),
    ]
    for make in (settings.make_recipe, settings.make_probe):
        checks += make().host_checks()
    width = max(len(c.name) for c in checks)
    for c in checks:
        mark = "ok  " if c.ok else "FAIL"
        print(f"{mark} {c.name:<{width}}  {c.detail}")
    failed: list[HostCheck] = [c for c in checks if not c.ok]
    if failed:
        print(f"{len(failed)} check(s) failed; run the README's install command (install.sh)")
        return 1
    print("all checks passed")
    return 0
