"""Host checks: what `bisect-qemu doctor` verifies for the chosen recipe and probe.

Version queries go through ``sh``: a short, synchronous command whose output
we want as text, with a timeout, is exactly what it is good at.  Builds and
trials do not use it (plugin.proc explains why: they need their whole process
group killed and registered for reaping).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import sh


@dataclass(frozen=True)
class HostCheck:
    """One line of `bisect-qemu doctor`: a tool or package a plug-in needs."""

    name: str
    ok: bool
    detail: str = ""


def first_line(cmd: list[str], timeout: float = 20) -> tuple[bool, str]:
    """(succeeded, first non-empty output line, or why it failed) of a short command."""
    if shutil.which(cmd[0]) is None and not Path(cmd[0]).is_file():
        return False, f"{cmd[0]} not found"
    try:
        out = str(sh.Command(cmd[0])(*cmd[1:], _timeout=timeout, _err_to_out=True))
    except sh.ErrorReturnCode as exc:
        text = exc.stdout.decode(errors="replace")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        return False, lines[-1] if lines else f"exit {exc.exit_code}"
    except sh.TimeoutException:
        return False, f"no answer in {timeout:.0f} s"
    except (sh.CommandNotFound, OSError) as exc:
        return False, str(exc)
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    return True, lines[0] if lines else "ok"


def tool_check(name: str, cmd: list[str], hint: str = "") -> HostCheck:
    """Does ``cmd`` run here?  The detail is its first line (a version), or why not."""
    ok, line = first_line(cmd)
    return HostCheck(name, ok, line if ok or not hint else f"{line}; {hint}")
