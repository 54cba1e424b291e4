"""What a build recipe is: one commit of the tool-owned checkout in, a directory of artifacts out.

The driver owns everything around it (the checkout, the persistent build
directory, the per-commit artifact cache, the journal, the retry policy); the
recipe only knows how to build.
"""

from __future__ import annotations

import hashlib
import os
from abc import abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

from .base import Plugin


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
    KILLED_WORKER = "killed-worker"  # on a cluster: the build killed every worker it was given


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
    attempt: int = 1
    """1 for the first try; 2 when the driver retries a failed build.  A retry must start
    from a clean state (empty build dir, clean tree): the first failure may have left
    half-written objects (a compiler killed mid-build)."""


@dataclass
class BuildResult:
    status: BuildStatus
    fixups: list[str] = field(default_factory=list)
    """Names of the fix-ups applied, in order."""
    detail: str = ""
    """One line for a person: why it failed (the first real error line), or what was built."""


class Recipe(Plugin):
    """Base class of build recipes; subclasses are plug-ins chosen by name (entry points)."""

    kind: ClassVar[str] = "recipe"

    def main_binary(self) -> str | None:
        """Artifact (file or directory, relative to the artifact dir) whose fingerprint
        is recorded: two commits with equal fingerprints built the same thing."""
        return None

    @abstractmethod
    def build(self, ctx: BuildContext) -> BuildResult:
        """Build ``ctx.commit`` and copy artifacts into ``ctx.output_dir``."""


def fingerprint(path: Path) -> str | None:
    """sha256 of a file, or of a directory's files (names, modes and contents, sorted);
    None when the path does not exist."""
    if path.is_file():
        digest = hashlib.sha256()
        _hash_file(digest, path)
        return digest.hexdigest()
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            p = Path(root, name)
            rel = p.relative_to(path).as_posix()
            digest.update(f"{rel}\0{p.stat().st_mode & 0o111:o}\0".encode())
            if p.is_symlink():
                digest.update(os.readlink(p).encode())
            else:
                _hash_file(digest, p)
    return digest.hexdigest()


def _hash_file(digest: hashlib._Hash, path: Path) -> None:
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
