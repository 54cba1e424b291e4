"""The era fix-ups that let QEMU v1.0..v1.1.0 build on a 2020s toolchain.

None of them edits the checkout: the driver runs ``git reset --hard`` after each
build, so an in-tree edit would be undone and would force a recompile of the
edited files at the next commit.  Instead a fix-up produces something outside
the tree (a converted copy of the build scripts, a compat include directory) and
tells the build about it through ``ctx.env``:

* :data:`EXTRA_CFLAGS` (space-separated) is passed to configure as
  ``--extra-cflags`` (use :func:`add_cflags`);
* :data:`EXTRA_CONFIGURE_ARGS` (shell words) is appended to configure's command
  line (use :func:`add_configure_args`);
* the ``BISECT_QEMU_SHIM_*`` variables steer the Python shim (see ``shim.py``).

A user's ``--fixups-file`` can use the same helpers::

    from build_recipes.qemu.fixups import add_cflags
    FIXUPS = [FixUp(name="fcommon", reason="...", changes="-fcommon",
                    applies=lambda ctx: True,
                    apply=lambda ctx: add_cflags(ctx, "-fcommon"))]

Every ``applies`` looks at the content of the tree, never at commit ids, so
the same fix-up is right for every branch in the range.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from bisect_driver.plugin import BuildContext
from bisect_driver.plugin.proc import run_group

from ..fixup import FixUp
from . import shim

EXTRA_CFLAGS = "BISECT_QEMU_EXTRA_CFLAGS"
EXTRA_CONFIGURE_ARGS = "BISECT_QEMU_EXTRA_CONFIGURE_ARGS"
HOST_PYTHON = "BISECT_QEMU_HOST_PYTHON"
"""The Python 3 whose lib2to3 converts scripts (set by the recipe)."""

CONVERTER_VERSION = 1
"""Bump when the conversion below changes, so cached conversions are redone."""

CONVERSION_TIMEOUT = 600.0


class FixUpError(Exception):
    """A fix-up could not do its job; the build ends as a PREPARE failure."""


def add_cflags(ctx: BuildContext, *flags: str) -> str:
    """Append C flags for configure's ``--extra-cflags``; returns a description."""
    current = ctx.env.get(EXTRA_CFLAGS, "").split()
    ctx.env[EXTRA_CFLAGS] = " ".join(current + [f for f in flags if f not in current])
    return "cflags " + " ".join(flags)


def add_configure_args(ctx: BuildContext, *args: str) -> str:
    """Append arguments to configure's command line; returns a description."""
    current = shlex.split(ctx.env.get(EXTRA_CONFIGURE_ARGS, ""))
    ctx.env[EXTRA_CONFIGURE_ARGS] = shlex.join(current + list(args))
    return "configure " + shlex.join(args)


def recipe_cache(ctx: BuildContext) -> Path:
    """The recipe's own corner of the tool cache."""
    path = ctx.cache_dir / "qemu-recipe"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_if_changed(path: Path, text: str, mode: int | None = None) -> None:
    """Write ``text`` unless the file already holds it.

    Keeping the mtime of an unchanged file matters: the compat header is listed
    in every object's dependency file, so rewriting it would recompile all of
    QEMU at every commit.
    """
    if path.is_file() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    if mode is not None:
        tmp.chmod(mode)
    os.replace(tmp, path)


# --- configure's "Python 2 only" check ------------------------------------------------

# 6ccea1e4d: "$python" -c 'import sys; sys.exit(sys.version_info[0] >= 3)'
# e120d449e: "$python" -c 'import sys; sys.exit(sys.version_info < (2,4) or ... >= (3,))'
_PYTHON_CHECK = re.compile(r"""\$\{?python\}?"?\s+-c\s+['"][^'"\n]*version_info[^'"\n]*\(?3""")


def configure_rejects_python3(ctx: BuildContext) -> bool:
    configure = ctx.source_dir / "configure"
    if not configure.is_file():
        return False
    return bool(_PYTHON_CHECK.search(configure.read_text(errors="replace")))


def accept_version_check(ctx: BuildContext) -> str:
    ctx.env[shim.ACCEPT_VERSION_CHECK] = "1"
    return "the --python shim answers configure's version check"


# --- Python 2 build scripts -----------------------------------------------------------

_PY2_ONLY_IMPORT = re.compile(r"^\s*from\s+ordereddict\s+import\s+OrderedDict\s*$", re.M)


def script_files(source_dir: Path) -> list[Path]:
    """The Python files under ``scripts/`` (relative paths, sorted)."""
    scripts = source_dir / "scripts"
    if not scripts.is_dir():
        return []
    return sorted(p.relative_to(scripts) for p in scripts.rglob("*.py") if p.is_file())


def scripts_need_python2(ctx: BuildContext) -> bool:
    """True if a build script is not Python 3 (a syntax error or a py2-only import)."""
    scripts = ctx.source_dir / "scripts"
    for rel in script_files(ctx.source_dir):
        text = (scripts / rel).read_text(errors="replace")
        if _PY2_ONLY_IMPORT.search(text):
            return True
        try:
            with warnings.catch_warnings():  # "is" with a literal etc.: not our business
                warnings.simplefilter("ignore")
                compile(text, str(rel), "exec", dont_inherit=True)
        except SyntaxError:
            return True
        except ValueError:  # e.g. NUL bytes: not ours to judge
            continue
    return False


def scripts_key(source_dir: Path, python_tag: str) -> str:
    """Content key of the scripts: same content, same conversion, whatever the commit."""
    digest = hashlib.sha256(f"converter {CONVERTER_VERSION} {python_tag}\n".encode())
    scripts = source_dir / "scripts"
    for rel in script_files(source_dir):
        digest.update(f"{rel}\0".encode())
        digest.update(hashlib.sha256((scripts / rel).read_bytes()).digest())
    return digest.hexdigest()[:20]


def postprocess(text: str) -> str:
    """Changes 2to3 does not make: QEMU's bundled ``ordereddict`` needs UserDict.DictMixin."""
    return _PY2_ONLY_IMPORT.sub("from collections import OrderedDict", text)


def convert_scripts(ctx: BuildContext) -> tuple[Path, bool]:
    """Return (dir of converted scripts, whether it came from the cache).

    The conversion is done once per distinct content of ``scripts/**/*.py`` and
    kept under ``cache_dir/qemu-recipe/scripts/KEY``; it is built in a temporary
    directory and renamed into place, so a half-done conversion is never used.
    """
    python = ctx.env.get(HOST_PYTHON) or sys.executable
    tag = python
    key = scripts_key(ctx.source_dir, tag)
    root = recipe_cache(ctx) / "scripts"
    dest = root / key
    if (dest / ".complete").is_file():
        return dest, True
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        files = script_files(ctx.source_dir)
        for rel in files:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ctx.source_dir / "scripts" / rel, tmp / rel)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        log = tmp.parent / f"{tmp.name}.2to3.log"
        result = run_group(
            [python, "-m", "lib2to3", "-w", "-n", "--no-diffs", str(tmp)],
            env=env,
            timeout=CONVERSION_TIMEOUT,
            log_path=log,
        )
        if not result.ok:
            last = [ln for ln in result.output.splitlines() if ln.strip()][-1:]
            raise FixUpError(f"2to3 failed: {last[0] if last else result.returncode}")
        for rel in files:
            path = tmp / rel
            text = path.read_text(errors="replace")
            fixed = postprocess(text)
            if fixed != text:
                path.write_text(fixed)
        for leftover in tmp.rglob("*.bak"):
            leftover.unlink()
        (tmp / ".complete").write_text(f"{len(files)} files\n")
        shutil.move(str(log), str(tmp / ".2to3.log"))
        try:
            os.rename(tmp, dest)
        except OSError:  # another build finished the same conversion first
            shutil.rmtree(tmp, ignore_errors=True)
        return dest, False
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def use_converted_scripts(ctx: BuildContext) -> str:
    dest, cached = convert_scripts(ctx)
    ctx.env[shim.SCRIPTS_SRC] = str(ctx.source_dir / "scripts")
    ctx.env[shim.SCRIPTS_DST] = str(dest)
    return f"{'cached' if cached else 'converted'} scripts {dest.name}"


# --- sys/sysmacros.h ------------------------------------------------------------------

_DEVNUM_CALL = re.compile(rb"\b(major|minor|makedev)\s*\(")
_SYSMACROS = re.compile(rb"#\s*include\s*<sys/sysmacros\.h>")

COMPAT_TYPES_H = """\
/* bisect-qemu compat header: glibc >= 2.28 no longer defines major(), minor()
 * and makedev() through <sys/types.h>; code of 2012 expects it to. */
#include_next <sys/types.h>
#include <sys/sysmacros.h>
"""


def uses_devnum_macros(ctx: BuildContext) -> bool:
    """True if a C file calls major/minor/makedev without including sys/sysmacros.h."""
    for path in ctx.source_dir.rglob("*.c"):
        if ".git" in path.parts:
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if _DEVNUM_CALL.search(data) and not _SYSMACROS.search(data):
            return True
    return False


def add_sysmacros_compat(ctx: BuildContext) -> str:
    compat = recipe_cache(ctx) / "compat-include"
    write_if_changed(compat / "sys" / "types.h", COMPAT_TYPES_H)
    return add_cflags(ctx, f"-I{compat}")


# --- libcacard's ATR macro ----------------------------------------------------------------

_ATR_IN_PARENS = re.compile(rb"#\s*define\s+VCARD_ATR_PREFIX\(size\)\s*\(")


def atr_prefix_in_parens(ctx: BuildContext) -> bool:
    """True if libcacard's VCARD_ATR_PREFIX expands to a parenthesised comma expression
    and configure can leave the NSS card emulation (its only user) out."""
    try:
        header = (ctx.source_dir / "libcacard" / "vcardt.h").read_bytes()
        configure = (ctx.source_dir / "configure").read_bytes()
    except OSError:
        return False
    return bool(_ATR_IN_PARENS.search(header)) and b"--disable-smartcard-nss" in configure


def disable_smartcard_nss(ctx: BuildContext) -> str:
    return add_configure_args(ctx, "--disable-smartcard-nss")


BUILTIN_FIXUPS: list[FixUp] = [
    FixUp(
        name="configure-python2-check",
        reason="configure (from 6ccea1e4d, reworded at e120d449e) refuses Python 3, "
        "and no Python 2 is installed on current hosts",
        changes="the --python shim answers configure's `-c ...version_info...` probe with "
        "success; the checkout is not touched",
        applies=configure_rejects_python3,
        apply=accept_version_check,
    ),
    FixUp(
        name="python3-build-scripts",
        reason="scripts/*.py (qapi generators, tracetool) are Python 2",
        changes="converts scripts/**/*.py with lib2to3 and replaces the bundled "
        "`from ordereddict import OrderedDict` with collections, into "
        "cache/qemu-recipe/scripts/KEY (keyed by content); the --python shim runs "
        "those copies; the checkout is not touched",
        applies=scripts_need_python2,
        apply=use_converted_scripts,
    ),
    FixUp(
        name="sysmacros-compat",
        reason="glibc >= 2.28 no longer declares major/minor/makedev in <sys/types.h> "
        "(used by VirtFS, hw/9pfs)",
        changes="adds -I cache/qemu-recipe/compat-include whose sys/types.h does "
        "#include_next <sys/types.h> then #include <sys/sysmacros.h> "
        "(not `-include sys/sysmacros.h`, which pulls in features.h before "
        "coroutine-ucontext.c undefines _FORTIFY_SOURCE and makes every binary abort)",
        applies=uses_devnum_macros,
        apply=add_sysmacros_compat,
    ),
    FixUp(
        name="libcacard-atr-parens",
        reason="from 0082f4336 until 020218124 ('libcacard: Fix compilation with gcc-4.7') "
        "VCARD_ATR_PREFIX is wrapped in parentheses, and gcc >= 4.7 rejects the array "
        "initializer it is used in ('initializer element is not constant'); found by the "
        "real v1.0..v1.1.0 run, where it made a merge in the range a skip",
        changes="configure --disable-smartcard-nss (the card emulation is the macro's only "
        "user; no probe here needs it); the checkout is not touched",
        applies=atr_prefix_in_parens,
        apply=disable_smartcard_nss,
    ),
]
