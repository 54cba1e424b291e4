"""Which bisect-qemu a process runs: the driver refuses workers that run another one.

The version number alone does not tell two checkouts apart, and a worker with other
probe code would record trials the driver's statistics do not describe, so the identity
is the version plus a digest of the three packages' Python sources.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import os
import socket
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("bisect_driver", "build_recipes", "probes")


@functools.cache
def install_identity() -> str:
    """``VERSION+DIGEST``: the installed version and a digest of its sources."""
    import importlib

    digest = hashlib.sha256()
    for name in PACKAGES:
        root = Path(importlib.import_module(name).__file__ or "").parent
        for path in sorted(root.rglob("*.py")):
            digest.update(path.relative_to(root.parent).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    try:
        version = metadata.version("bisect-qemu")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"{version}+{digest.hexdigest()[:12]}"


def describe_here() -> dict[str, Any]:
    """This process: identity, host, user and pid (a worker answers it to the driver)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {
        "identity": install_identity(),
        "host": socket.gethostname(),
        "user": user,
        "pid": os.getpid(),
    }
