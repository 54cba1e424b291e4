"""Regenerate what QEMU's Makefile cannot know is stale, instead of emptying the build dir.

QEMU's Makefile makes its generated C (``qapi-*.c/h``, ``qmp-*``, ``trace.c/h``,
``config-host.h``, hxtool's ``*.h``/``*.def``) from the schema, ``trace-events`` or
``*.hx`` file, but not from the generator's own code (``scripts/qapi.py``, the
tracetool package or shell script, ``create_config``, ``hxtool``), and ``VERSION``
reaches ``config-host.mak`` only when configure runs.  After such a change an
incremental build would keep stale generated code.  Emptying the build dir is always
right, but compiles every file again (ccache hits at best); this module redoes only
the generation:

1. every generated C text in the build dir (``*.c``, ``*.h``, ``*.def``, ``*.dtrace``,
   ``*-timestamp``: in an out-of-tree build dir no other C text exists) is moved aside;
2. make is asked for exactly those files, by the names its rules use, one job at a
   time (a two-output rule such as ``qapi-types.c qapi-types.h:`` would run twice at
   once under ``-j``);
3. a file whose new content equals the old gets its old times back, so make does not
   rebuild what includes it; a changed file keeps its new time, and make rebuilds what
   depends on it as usual;
4. a file that no rule makes (configure wrote it) is put back as it was; a file whose
   rule *failed* stays missing, so the full make fails the same way instead of
   compiling against the stale copy.

``bench/qemu_incremental_proof.py`` checks on real QEMU commit pairs that a build done
this way gives the same binaries as a clean build.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bisect_driver.plugin import fingerprint
from bisect_driver.plugin.proc import ProcResult

GENERATED_SUFFIXES = (".c", ".h", ".def", ".dtrace", "-timestamp")
SKIP_DIRS = frozenset({"pc-bios", "roms"})
STASH = ".bisect-qemu-regen"
_NO_RULE = re.compile(r"No rule to make target [`'‘]([^'’]+)['’]\.")

# (title, command, cwd) -> result; the recipe's logging runner.
Runner = Callable[[str, list[str], Path], ProcResult]


@dataclass
class Regenerated:
    """What one regeneration did, for the build log and the tests."""

    identical: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    """Made by no rule (configure wrote them): put back unchanged."""
    failed: list[str] = field(default_factory=list)
    """Their rule ran and did not make them: left missing for the full make."""

    def summary(self) -> str:
        parts = [
            f"{len(self.identical)} identical (old times kept)",
            f"{len(self.changed)} changed",
        ]
        if self.kept:
            parts.append(f"{len(self.kept)} made by configure, kept")
        if self.failed:
            parts.append(f"{len(self.failed)} not made: {', '.join(self.failed[:5])}")
        return "regenerated files: " + ", ".join(parts)


def generated_files(build_dir: Path) -> list[str]:
    """Relative paths of the build dir's generated C text, sorted."""
    found: list[str] = []
    for root, dirs, files in os.walk(build_dir):
        rel_root = Path(root).relative_to(build_dir)
        if rel_root == Path("."):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS and d != STASH]
        for name in files:
            path = Path(root) / name
            if name.endswith(GENERATED_SUFFIXES) and path.is_file() and not path.is_symlink():
                found.append(str(rel_root / name) if rel_root != Path(".") else name)
    return sorted(found)


def _no_rule(result: ProcResult) -> set[str]:
    """The names make said it has no rule for."""
    return set(_NO_RULE.findall(result.output))


def _target_dir(build_dir: Path, rel: str) -> str:
    """The sub-make directory a file belongs to ('' for the top-level Makefile)."""
    first = rel.split("/", 1)[0]
    if "/" in rel and (build_dir / first / "config-target.mak").is_file():
        return first
    return ""


def regenerate(build_dir: Path, make: list[str], run: Runner) -> Regenerated:
    """Regenerate the generated C text in ``build_dir``; see the module docstring."""
    stash = build_dir / STASH
    if stash.exists():
        shutil.rmtree(stash)
    files = generated_files(build_dir)
    old: dict[str, tuple[str | None, int, int]] = {}
    for rel in files:
        path = build_dir / rel
        st = path.stat()
        old[rel] = (fingerprint(path), st.st_atime_ns, st.st_mtime_ns)
        dest = stash / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)

    groups: dict[str, list[str]] = {}
    for rel in files:
        groups.setdefault(_target_dir(build_dir, rel), []).append(rel)
    # A rule names a file relative to its make dir or through $(BUILD_DIR).  The absolute
    # names are asked for only where the relative ones have no rule, since a pattern rule
    # would match both and make would then write one file twice at once.  A file with no
    # rule under either name was written by configure.
    by_configure: set[str] = set()
    for sub, rels in sorted(groups.items()):
        cwd = build_dir / sub if sub else build_dir
        cmd = [*make, "-k"]
        if sub:
            cmd += ["-C", sub, f"TARGET_DIR={sub}/"]
        local = {rel: rel[len(sub) + 1 :] if sub else rel for rel in rels}
        title = f"regenerate {sub or '.'}"
        missing = _no_rule(run(title, [*cmd, *local.values()], build_dir))
        unmade = {rel: str(cwd / local[rel]) for rel in rels if local[rel] in missing}
        if unmade:
            missing = _no_rule(run(title, [*cmd, *unmade.values()], build_dir))
            by_configure |= {rel for rel, name in unmade.items() if name in missing}

    report = Regenerated()
    for rel in files:
        path = build_dir / rel
        digest, atime, mtime = old[rel]
        if path.is_file():
            if fingerprint(path) == digest:
                os.utime(path, ns=(atime, mtime))
                report.identical.append(rel)
            else:
                report.changed.append(rel)
        elif rel in by_configure:  # configure did not change it (or just wrote it again)
            os.replace(stash / rel, path)
            report.kept.append(rel)
        else:
            report.failed.append(rel)
    shutil.rmtree(stash, ignore_errors=True)
    return report


__all__ = ["GENERATED_SUFFIXES", "Regenerated", "generated_files", "regenerate"]
