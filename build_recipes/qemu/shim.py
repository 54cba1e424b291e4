"""Python interpreter shim that QEMU's build is given as ``--python``.

QEMU v1.0..v1.1.0 runs Python 2 scripts from its ``scripts/`` directory and its
configure refuses a Python 3 interpreter.  Rather than edit the checkout (the
driver resets it after every build, so any in-tree edit would recompile those
files next time), the recipe configures QEMU with this shim.  It

* answers configure's ``-c '...sys.version_info...'`` probes with success when
  ``BISECT_QEMU_SHIM_ACCEPT_VERSION_CHECK=1`` (set by the
  ``configure-python2-check`` fix-up), and
* runs the cached Python 3 conversion of a script under
  ``BISECT_QEMU_SHIM_SCRIPTS_SRC`` from ``BISECT_QEMU_SHIM_SCRIPTS_DST`` (set by
  the ``python3-build-scripts`` fix-up).

Everything else goes unchanged to the real interpreter, the one named on this
file's ``#!`` line.  The path of the shim is constant, and its behaviour comes
from the environment of each build, so QEMU's recorded configure command (which
``make`` replays when ``configure`` changes) never goes stale.

This file is copied, not imported: it must use the standard library only.
"""

import os
import sys

ACCEPT_VERSION_CHECK = "BISECT_QEMU_SHIM_ACCEPT_VERSION_CHECK"
SCRIPTS_SRC = "BISECT_QEMU_SHIM_SCRIPTS_SRC"
SCRIPTS_DST = "BISECT_QEMU_SHIM_SCRIPTS_DST"

# Interpreter options that take a separate value (``-W error``), so the value is
# not mistaken for the script.
_OPTIONS_WITH_VALUE = {"-W", "-X", "-Q"}


def map_script(path: str, src: str, dst: str) -> str:
    """Return the converted copy of ``path`` if it lies under ``src``, else ``path``."""
    real = os.path.realpath(path)
    root = os.path.realpath(src)
    if real.startswith(root + os.sep):
        candidate = os.path.join(dst, os.path.relpath(real, root))
        if os.path.isfile(candidate):
            return candidate
    return path


def rewrite(args: list[str], env: dict[str, str]) -> list[str] | int:
    """The argument list to run the real interpreter with, or an exit status."""
    if (
        env.get(ACCEPT_VERSION_CHECK) == "1"
        and len(args) >= 2
        and args[0] == "-c"
        and "version_info" in args[1]
    ):
        return 0
    src, dst = env.get(SCRIPTS_SRC), env.get(SCRIPTS_DST)
    out = list(args)
    i = 0
    while i < len(out):
        arg = out[i]
        if arg in ("-c", "-m", "-"):
            break  # the rest belongs to the command or module
        if arg in _OPTIONS_WITH_VALUE:
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        if src and dst:
            out[i] = map_script(arg, src, dst)
        break
    return out


def main() -> int:
    result = rewrite(sys.argv[1:], dict(os.environ))
    if isinstance(result, int):
        return result
    os.execv(sys.executable, [sys.executable, *result])
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
