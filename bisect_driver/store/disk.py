"""Refuse to start work that would fill the disk, with a clear error instead.

A full disk in the middle of the night corrupts builds and images in ways
that look like the bug.  Before each build and each batch of trials the
driver evicts cached artifacts if it must and then checks the free space.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bisect_driver.plugin.errors import EXIT_DISK, BisectError


class DiskFullError(BisectError):
    exit_status = EXIT_DISK


def free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_free(path: Path, need_bytes: int, what: str) -> None:
    free = free_bytes(path)
    if free < need_bytes:
        raise DiskFullError(
            f"only {free / 2**30:.1f} GiB free under {path}, {what} needs"
            f" {need_bytes / 2**30:.1f} GiB (--min-free); free some space or lower --cache-limit,"
            " then rerun the same command to resume"
        )
