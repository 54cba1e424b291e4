"""Directories sent through the engine: once per worker, kept there by content digest.

No shared file system is assumed, so everything a trial or build needs (a commit's
artifacts, the probe's kit, a commit's source) travels as a compressed tar through Dask
itself: the driver scatters the bytes once (:class:`Shipper`) and a task is given the
small :class:`PayloadRef` plus, while some worker may lack it, the scattered bytes as a
dependency (Dask moves them to the worker that runs the task).  The worker unpacks them
into its worker cache under the digest (:func:`materialise`), where every later task,
and every worker process of the same user on that host, finds them.  Once every worker
has a digest (:meth:`Shipper.everywhere`), tasks go without the bytes; a worker that
joins later and lacks them answers :class:`PayloadMissing`, and that task is sent again
with them.  (A task cannot fetch the bytes itself: a client inside a task hangs with the
distributed release we use, measured in docs/cluster.md.)
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bisect_driver.plugin.recipe import fingerprint

WORKER_CACHE_ENV = "BISECT_QEMU_WORKER_CACHE"


@dataclass(frozen=True)
class PayloadRef:
    """What a task is given instead of a directory."""

    digest: str
    """sha256 of the directory (plugin.recipe.fingerprint): the worker's cache key."""
    key: str
    """The Dask key of the scattered tar, fetched only by a worker that lacks the digest."""
    size: int
    """Compressed bytes (for the log)."""


def worker_cache_root() -> Path:
    """A worker's own cache: ``$BISECT_QEMU_WORKER_CACHE``, else a private folder under
    the temporary directory of the worker's user."""
    env = os.environ.get(WORKER_CACHE_ENV)
    root = Path(env) if env else Path(tempfile.gettempdir()) / f"bisect-qemu-worker-{os.getuid()}"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root


def pack(path: Path) -> bytes:
    """The directory as a gzip'd tar (level 1: artifacts are large, links are fast)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for child in sorted(path.iterdir()):
            tar.add(child, arcname=child.name)
    return buf.getvalue()


def unpack(data: bytes, dest: Path) -> None:
    """Extract a :func:`pack` tar into ``dest``, refusing members that would leave it."""
    dest.mkdir(parents=True, exist_ok=True)
    base = dest.resolve()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
        for m in members:
            target = (base / m.name).resolve()
            if base != target and base not in target.parents:
                raise ValueError(f"payload member {m.name!r} leaves its directory")
            if m.islnk() or m.isdev():
                raise ValueError(f"payload member {m.name!r} is a hard link or device")
        tar.extractall(base, members=members)  # noqa: S202 - members checked above


class PayloadMissing(Exception):
    """The worker lacks a payload that was sent without its bytes (it joined later)."""


def has_payloads(digests: list[str]) -> list[str]:
    """Run on each worker (``client.run``): which of ``digests`` its cache holds."""
    root = worker_cache_root() / "payloads"
    return [d for d in digests if (root / d).is_dir()]


class Shipper:
    """The driver's side: scatter each digest once per process and keep it alive."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._sent: dict[str, tuple[Any, PayloadRef]] = {}
        self._bytes: dict[str, bytes] = {}
        """The driver's copy of what it scattered, to scatter again after a loss."""
        self._digests: dict[tuple[str, int], str] = {}
        self._everywhere: dict[str, frozenset[str]] = {}
        """digest -> the workers known to hold it on disk."""

    def digest(self, path: Path) -> str:
        """The directory's digest, remembered while it is unchanged (a cached artifact
        directory is never changed in place: a rebuild makes a new one)."""
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns)
        if key not in self._digests:
            self._digests[key] = fingerprint(path) or "empty"
        return self._digests[key]

    def ship(self, path: Path) -> PayloadRef:
        digest = self.digest(path)
        if digest not in self._sent:
            return self.ship_bytes(digest, pack(path))
        return self._sent[digest][1]

    def ship_bytes(self, digest: str, data: bytes) -> PayloadRef:
        """Bytes already packed (a commit's ``git archive``), under the caller's digest."""
        if digest not in self._sent:
            self._bytes[digest] = data
            future = self.client.scatter(data, hash=True)
            self._sent[digest] = (future, PayloadRef(digest, future.key, len(data)))
        return self._sent[digest][1]

    def shipped(self, digest: str) -> PayloadRef | None:
        sent = self._sent.get(digest)
        return sent[1] if sent else None

    def data(self, ref: PayloadRef) -> Any:
        """The scattered bytes of ``ref`` (a Future: pass it to a task as a dependency).

        Scattered bytes live on one worker until tasks copy them; when that worker dies
        they are lost (tasks that needed them are cancelled: "lost dependencies"), and
        they are scattered again here from the driver's copy."""
        future, kept = self._sent[ref.digest]
        if future.status != "finished":
            future = self.client.scatter(self._bytes[ref.digest], hash=False)
            self._sent[ref.digest] = (future, kept)
        return future

    def everywhere(self, refs: list[PayloadRef], workers: frozenset[str]) -> bool:
        """True when every one of ``workers`` holds all ``refs`` on disk (asked once per
        new worker set; a worker's cache only grows during a run)."""
        missing = [
            r.digest for r in refs if not workers <= self._everywhere.get(r.digest, frozenset())
        ]
        if not missing:
            return True
        answers = self.client.run(has_payloads, missing, on_error="return")
        for digest in missing:
            holders = {w for w, got in answers.items() if isinstance(got, list) and digest in got}
            self._everywhere[digest] = frozenset(holders)
        return all(workers <= self._everywhere.get(r.digest, frozenset()) for r in refs)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def materialise(ref: PayloadRef, data: bytes | None) -> tuple[Path, bool]:
    """The worker's side: the payload's directory, unpacked from ``data`` if the cache
    lacks it.  Returns the directory and whether it was unpacked now;
    :class:`PayloadMissing` when it is missing and ``data`` was not sent."""
    root = worker_cache_root() / "payloads"
    final = root / ref.digest
    if final.is_dir():
        return final, False
    with locked(root / f"{ref.digest}.lock"):
        if final.is_dir():
            return final, False
        if data is None:
            raise PayloadMissing(ref.digest)
        tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=root))
        try:
            unpack(data, tmp)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final, True
