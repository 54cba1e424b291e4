"""The per-commit artifact cache: a commit is never built twice.

``cache/artifacts/<recipe key>/<commit>/`` holds what a build produced.  A
build writes into a temporary sibling and is renamed into place only when it
succeeded, so a power cut never leaves a half-copied entry that looks whole.
Least-recently-used entries are evicted past a size limit; the journal keeps
the build record, so an evicted commit is rebuilt only if it is needed again.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

SIZE_FILE = ".size"


def dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = Path(root, name)
            if not p.is_symlink():
                total += p.stat().st_size
    return total


class ArtifactCache:
    def __init__(self, root: Path, recipe_key: str, limit_bytes: int | None = None) -> None:
        self.root = root
        self.dir = root / recipe_key
        self.limit_bytes = limit_bytes
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, commit: str) -> Path:
        return self.dir / commit

    def lookup(self, commit: str) -> Path | None:
        """The artifact dir of ``commit`` if cached (and mark it recently used)."""
        p = self.path(commit)
        if p.is_dir():
            now = time.time()
            os.utime(p, (now, now))
            return p
        return None

    def staging(self, commit: str) -> Path:
        """A fresh, empty directory to build into (removed if it was left by a crash)."""
        tmp = self.dir / f".tmp-{commit}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        return tmp

    def commit_staging(self, commit: str, staging: Path) -> Path:
        """Atomically move a finished build into place."""
        (staging / SIZE_FILE).write_text(str(dir_size(staging)))
        final = self.path(commit)
        if final.exists():
            shutil.rmtree(final)
        os.rename(staging, final)
        self.evict(keep=commit)
        return final

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last used, size, path) of every cached entry under all recipe keys."""
        out = []
        for recipe_dir in self.root.iterdir() if self.root.exists() else []:
            if not recipe_dir.is_dir():
                continue
            for entry in recipe_dir.iterdir():
                if entry.name.startswith(".") or not entry.is_dir():
                    continue
                size_file = entry / SIZE_FILE
                try:
                    size = int(size_file.read_text())
                except (OSError, ValueError):
                    size = dir_size(entry)
                out.append((entry.stat().st_mtime, size, entry))
        return out

    def evict(self, keep: str | None = None) -> list[Path]:
        """Remove least-recently-used entries until the cache fits its limit."""
        if not self.limit_bytes:
            return []
        entries = sorted(self.entries())
        total = sum(size for _t, size, _p in entries)
        removed = []
        for _t, size, path in entries:
            if total <= self.limit_bytes:
                break
            if path.name == keep:
                continue
            shutil.rmtree(path, ignore_errors=True)
            total -= size
            removed.append(path)
        return removed
