"""One run per cache dir at a time.

Two runs sharing a cache would fight over the tool's checkout and the build
tree.  The lock is an ``flock`` on ``cache/lock`` (released by the kernel if
the holder dies, so a power cut or kill -9 never leaves a stale lock); the
file names the holder so the second run's error can say who it is.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from bisect_driver.plugin.errors import LockedError


class CacheLock:
    def __init__(self, cache_dir: Path) -> None:
        self.path = cache_dir / "lock"
        self._fh: TextIO | None = None

    def acquire(self, what: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held for the run's lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            try:
                holder = json.loads(fh.read() or "{}")
            except json.JSONDecodeError:
                holder = {}
            fh.close()
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0)))
            raise LockedError(
                f"another bisect-qemu (pid {holder.get('pid', '?')}, {holder.get('what', '?')},"
                f" since {since}) is using cache {self.path.parent}; wait for it or use"
                " another --cache-dir"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(
            json.dumps({"pid": os.getpid(), "what": what, "since": time.time(), "argv": sys.argv})
        )
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> CacheLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
