"""Era fix-ups: the small, documented changes that let an old tree build on today's toolchain.

Each fix-up says why it exists, how it detects that it applies (by the tree's
content, never by commit id) and what it changes; the names of those applied
are recorded with the build.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bisect_driver.plugin import BuildContext


@dataclass(frozen=True)
class FixUp:
    """One era fix-up, applied only where ``applies`` says so.

    Fix-ups with the same ``name`` replace each other, so a user can override a
    built-in one from a file (see :func:`load_fixup_file`).
    """

    name: str
    reason: str
    changes: str
    applies: Callable[[BuildContext], bool]
    apply: Callable[[BuildContext], str | None]


def load_fixup_file(path: Path) -> list[FixUp]:
    """Load user fix-ups from a Python file that defines ``FIXUPS = [FixUp(...), ...]``."""
    namespace: dict[str, Any] = {"FixUp": FixUp, "__file__": str(path)}
    code = compile(path.read_text(), str(path), "exec")
    exec(code, namespace)  # noqa: S102 - the user's own configuration file
    fixups = namespace.get("FIXUPS", [])
    if not all(isinstance(f, FixUp) for f in fixups):
        raise ValueError(f"{path}: FIXUPS must be a list of FixUp")
    return list(fixups)


def merge_fixups(builtin: list[FixUp], extra: list[FixUp]) -> list[FixUp]:
    """User fix-ups replace built-in ones of the same name; new ones run last."""
    by_name = {f.name: f for f in extra}
    merged = [by_name.pop(f.name, f) for f in builtin]
    return merged + [f for f in extra if f.name in by_name]
