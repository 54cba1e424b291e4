"""Turn a failed configure/make log into a failure class and one line for a person (any recipe).

The line is the *first real error*: with ``make -j`` the last lines of a log are
``make: *** ... Error 2`` noise from sibling jobs, and the cause is usually far
above them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bisect_driver.plugin import BuildStatus

_LINK = re.compile(
    r"undefined reference to|multiple definition of|collect2: error|"
    r"ld returned \d+ exit status|cannot find -l|^/usr/bin/ld: |^ld: "
)
_LINK_CAUSE = re.compile(r"undefined reference to|multiple definition of|cannot find -l")
_COMPILE = re.compile(
    r":\d+(:\d+)?: (fatal )?error: |^Error: |^ERROR: |^Traceback \(most recent call last\)|"
    r"No rule to make target|^\S+Error: |: command not found|^\S+: fatal error: |"
    r"^\S+: error: "
)
_MAKE = re.compile(r"^g?make(\[\d+\])?: \*\*\* ")
_CONFIGURE_FIRST = re.compile(r"^(ERROR|Error|error)\b")
_CONFIGURE_THEN = re.compile(r"not found|Cannot use|required|unknown option", re.I)

MAX_DETAIL = 300


def _clean(line: str, strip: list[str]) -> str:
    for prefix in strip:
        if prefix:
            line = line.replace(prefix.rstrip("/") + "/", "")
    line = line.strip()
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 3] + "..."


def _traceback_cause(lines: list[str], start: int) -> str:
    """The exception line that ends a Python traceback starting at ``start``."""
    for line in lines[start + 1 :]:
        if line.strip() and not line.startswith((" ", "\t", "Traceback")):
            return line
    return lines[start]


def classify_make(output: str, strip: Sequence[str] = ()) -> tuple[BuildStatus, str]:
    """Class and first error line of a failed ``make`` run."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if _LINK.search(line):
            cause = next((ln for ln in lines[i:] if _LINK_CAUSE.search(ln)), line)
            return BuildStatus.LINK, _clean(cause, list(strip))
        if _COMPILE.search(line):
            if line.startswith("Traceback"):
                line = _traceback_cause(lines, i)
            return BuildStatus.COMPILE, _clean(line, list(strip))
    make_line = next((ln for ln in lines if _MAKE.search(ln)), None)
    if make_line is not None:
        return BuildStatus.FAILED, _clean(make_line, list(strip))
    tail = [ln for ln in lines if ln.strip()][-1:]
    return BuildStatus.FAILED, _clean(tail[0] if tail else "make failed without output", [])


def configure_error(output: str, strip: Sequence[str] = ()) -> str:
    """First line of a failed configure run that says why."""
    lines = [ln for ln in output.splitlines() if ln.strip()]
    for pattern in (_CONFIGURE_FIRST, _CONFIGURE_THEN):
        for line in lines:
            if pattern.search(line):
                return _clean(line, list(strip))
    return _clean(lines[-1], list(strip)) if lines else "configure failed without output"
