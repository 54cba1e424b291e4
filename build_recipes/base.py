"""What a build recipe is: source preparation (fix-ups), build commands, artifacts.

A recipe turns one commit of the tool-owned checkout into a directory of
artifacts.  The driver owns everything around it (the checkout, the persistent
build directory, the per-commit artifact cache, the journal); the recipe only
knows how to build.  Fix-ups are the era-specific changes that let an old tree
build on today's toolchain; each one says why it exists, how it detects that
it applies, and what it changes, and the names of the ones applied are
recorded with the build.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar


class BuildStatus(StrEnum):
    """Why a build ended.  Everything but OK becomes a skip in the bisect."""

    OK = "ok"
    PREPARE = "prepare"  # a fix-up or source preparation failed
    CONFIGURE = "configure"
    COMPILE = "compile"
    LINK = "link"
    TIMEOUT = "timeout"
    MISSING_ARTIFACT = "missing-artifact"  # the build "succeeded" without its outputs
    FAILED = "failed"  # a failure that fits no finer class


@dataclass
class BuildContext:
    """Everything a recipe may touch for one build."""

    commit: str
    source_dir: Path
    """The tool-owned checkout at ``commit``.  Changes made here are reverted after the build."""
    build_dir: Path
    """Persistent per-recipe-configuration build directory: nearby commits rebuild incrementally."""
    output_dir: Path
    """Empty directory: put the artifacts here; the driver moves it into the cache atomically."""
    cache_dir: Path
    """The tool's cache root (e.g. for ccache, converted scripts)."""
    log_path: Path
    timeout: float | None
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class BuildResult:
    status: BuildStatus
    fixups: list[str] = field(default_factory=list)
    """Names of the fix-ups applied, in order."""
    detail: str = ""
    """One line for a person: why it failed, or what was built."""


@dataclass(frozen=True)
class FixUp:
    """One era fix-up: a small, documented change applied only where needed.

    ``applies`` inspects the source tree (by content, never by commit id) and
    ``apply`` makes the change, returning a one-line description of what it did.
    Fix-ups with the same ``name`` replace each other, so a user can override a
    built-in one from a file (see :func:`load_fixup_file`).
    """

    name: str
    reason: str
    changes: str
    applies: Callable[[BuildContext], bool]
    apply: Callable[[BuildContext], str | None]


class Recipe(ABC):
    """Base class of build recipes; subclasses are plug-ins chosen by name."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    """Bump when a change to the recipe's code changes what it builds."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the recipe's own command-line options (default: none)."""

    @classmethod
    @abstractmethod
    def from_args(cls, args: argparse.Namespace) -> Recipe:
        """Build the recipe from parsed options; raise UserError on bad values."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """Everything that changes what gets built: it feeds :meth:`key`."""

    def key(self) -> str:
        """Hash of name, version and settings: keys the build dir and artifact cache."""
        blob = json.dumps(
            {"name": self.name, "version": self.version, "settings": self.settings()},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def main_binary(self) -> str | None:
        """Artifact (relative to the artifact dir) whose fingerprint is recorded."""
        return None

    def fixups(self) -> list[FixUp]:
        """The era fix-ups this recipe may apply (for `doctor` and the report)."""
        return []

    @abstractmethod
    def build(self, ctx: BuildContext) -> BuildResult:
        """Build ``ctx.commit`` and copy artifacts into ``ctx.output_dir``."""

    def host_checks(self) -> list[HostCheck]:
        """What `bisect-qemu doctor` verifies on this host for this recipe."""
        return []

    def describe(self) -> str:
        return f"{self.name} {self.settings()}"


@dataclass
class HostCheck:
    """One line of `bisect-qemu doctor`: a tool or package the recipe/probe needs."""

    name: str
    ok: bool
    detail: str = ""


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


def apply_fixups(ctx: BuildContext, fixups: list[FixUp]) -> list[str]:
    """Apply every fix-up that detects it applies; return 'name: what it did' lines."""
    done = []
    for fixup in fixups:
        if fixup.applies(ctx):
            what = fixup.apply(ctx)
            done.append(fixup.name if not what else f"{fixup.name}: {what}")
    return done


def fingerprint(path: Path) -> str | None:
    """sha256 of a file (the main binary), or None when it does not exist."""
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
