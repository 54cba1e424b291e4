"""What a running build is doing, read from the tail of its log: the last make target.

Why from the log: a build is a child process of a recipe (in a step
subprocess, often), and its log is the one thing every viewer can read while
it runs.  "last target block/qcow2.o" after two silent minutes tells a person
the build is alive and how far it got.

A heuristic over the common shapes of build output: kbuild/QEMU quiet lines
(``  CC    block/qcow2.o``), ninja's ``[12/340] Compiling C object foo.o``,
and a compiler or linker line's ``-o FILE``.  A recipe that streams a step
into ``<log>.step`` first (the QEMU recipe does) is read there while the step
runs.
"""

from __future__ import annotations

import re
from pathlib import Path

TAIL_BYTES = 32 * 1024
"""Enough for the last few hundred lines; a log of many megabytes is never read whole."""

_QUIET = re.compile(r"^\s*(?:CC|CXX|LINK|AR|AS|CCAS|GEN|LD|CPP|OBJCOPY|HOSTCC|INSTALL)\s+(\S+)")
_NINJA = re.compile(r"^\[\d+/\d+\]\s.*?(\S+)\s*$")
_OUTPUT = re.compile(r"\s-o\s*(\S+)")
_STEP = re.compile(r"^=== ([\w .+-]+?):")


def _tail(path: Path) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - TAIL_BYTES))
            data = fh.read()
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()


def target_of(line: str) -> str | None:
    """The target one build output line names, if it names one."""
    for pattern in (_QUIET, _NINJA, _OUTPUT):
        m = pattern.search(line)
        if m:
            return m.group(1).strip("'\"")
    return None


def last_target(log_path: Path | str | None) -> str | None:
    """The last target the build at ``log_path`` printed; else the last step it began
    (a recipe's ``=== configure: ...`` header); None when the log names neither."""
    if log_path is None:
        return None
    path = Path(log_path)
    step = path.with_name(path.name + ".step")
    lines = _tail(step) if step.exists() else []
    lines = _tail(path) + lines
    for line in reversed(lines):
        found = target_of(line)
        if found:
            return found
    for line in reversed(lines):
        m = _STEP.match(line)
        if m:
            return m.group(1)
    return None
