"""What lets a run be left alone overnight: signal handling and recovery after a crash.

Every command that builds or probes runs under the cache lock and first
reaps what a killed predecessor left (its trial and build process groups,
scratch dirs, a stale git index.lock), then registers its own process groups
so that the next command can reap them in turn if this one is killed with -9.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from bisect_driver.plugin.errors import Interrupted
from bisect_driver.plugin.proc import LIVE_DIR_ENV, kill_live_groups, reap_stale_groups
from bisect_driver.store.lock import CacheLock
from bisect_driver.store.repo import Checkout


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    """Ctrl-C / SIGTERM: kill running trials and builds first, so that worker
    threads return at once, then unwind (the journal already has every
    finished trial)."""
    kill_live_groups()
    raise Interrupted(f"stopped by signal {signum}")


def recover(cache_dir: Path, checkout: Checkout | None, say: Callable[[str], None]) -> None:
    """Clean up after a command that died (power cut, kill -9), under the lock.

    Kill its orphaned trial/build process groups, drop its scratch dirs, and
    remove a git index.lock in our own checkout (we hold the cache lock, so
    no git of ours is running there).
    """
    live = cache_dir / "live"
    reaped = reap_stale_groups(live)
    if reaped:
        say(f"killed {len(reaped)} process group(s) left by an interrupted run")
    os.environ[LIVE_DIR_ENV] = str(live)
    shutil.rmtree(cache_dir / "scratch", ignore_errors=True)
    if checkout is not None:
        stale = Path(checkout.repo.git_dir) / "index.lock"
        stale.unlink(missing_ok=True)


@contextmanager
def unattended(
    cache_dir: Path, what: str, checkout: Checkout | None, say: Callable[[str], None]
) -> Iterator[None]:
    """Hold the cache lock, reap a dead predecessor's leftovers, turn SIGINT/SIGTERM into
    :class:`Interrupted`, and leave no process group behind on the way out."""
    lock = CacheLock(cache_dir)
    lock.acquire(what)
    handlers = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        recover(cache_dir, checkout, say)
        yield
    finally:
        kill_live_groups()
        for s, h in handlers.items():
            signal.signal(s, h)
        lock.release()
