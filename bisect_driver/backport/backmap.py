"""Writing a helper the old release lacks back in the old release's terms.

QEMU 1.0 has no ``bdrv_drain_all``: commit 922453bca6a9 introduced it by replacing
``qemu_aio_flush()`` with ``bdrv_drain_all()`` at every call site ("convert qemu_aio_flush()
calls to bdrv_drain_all()").  Where a helper came in by such a mechanical conversion, the old
name did the same job in the old release, and a backporter writes the old name.  Where it did
not (the helper is new behaviour), there is no old name, and no mapping is made.

"Mechanical" is measured on the introducing commit's own diff: its changed line pairs where
the only difference is one identifier replaced by the new name.  A mapping needs at least
``MIN_SITES`` such sites, all replacing the same old identifier, which the old release has,
and no changed line that brings the new name in any other way (pure additions, and the
helper's definition and declaration lines, are allowed).  A small tree may have had one call
site only: one is enough, since every edited line that brings the name in must be such a
replacement, and the probe judges the candidate anyway (a helper that did more than the old
name shows as "does not fix").
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from dataclasses import dataclass

import git

TOKEN_RE = re.compile(r"[A-Za-z_]\w*|\d+|\S")
MIN_SITES = 1
"""Call sites converted (every edited line bringing the name in must be one of them)."""


@dataclass(frozen=True)
class Conversion:
    """``commit`` replaced ``old`` by ``new`` at ``sites`` places (and nothing else brought
    ``new`` in through an edited line)."""

    new: str
    old: str
    commit: str
    subject: str
    sites: int


def _tokens(line: str) -> list[str]:
    return TOKEN_RE.findall(line)


def substitution(removed: str, added: str, new: str) -> str | None:
    """The identifier ``added`` has ``new`` in place of, when that is the only difference."""
    a, b = _tokens(removed), _tokens(added)
    if len(a) != len(b) or new not in b:
        return None
    swapped = {(x, y) for x, y in zip(a, b, strict=True) if x != y}
    if len(swapped) != 1:
        return None
    old, repl = next(iter(swapped))
    if repl != new or not re.fullmatch(r"[A-Za-z_]\w*", old):
        return None
    return old


def _blocks(diff: str) -> list[tuple[list[str], list[str]]]:
    """(removed, added) lines of each hunk of a ``-U0`` diff."""
    out: list[tuple[list[str], list[str]]] = []
    for line in diff.splitlines():
        if line.startswith("@@"):
            out.append(([], []))
        elif out and line[:1] == "-" and not line.startswith("---"):
            out[-1][0].append(line[1:])
        elif out and line[:1] == "+" and not line.startswith("+++"):
            out[-1][1].append(line[1:])
    return out


def conversion_in(diff: str, new: str) -> tuple[str, int] | None:
    """(old identifier, sites) when ``diff`` (``-U0``) mechanically converted calls to ``new``."""
    word = re.compile(rf"\b{re.escape(new)}\b")
    # The helper's own definition or declaration ("void drain_all(void)" at column 0) may
    # sit in the same hunk as a converted call; it is not another way of bringing it in.
    define = re.compile(rf"^[A-Za-z_][\w\s\*]*\b{re.escape(new)}\s*\(")
    sites: Counter[str] = Counter()
    other = 0
    for removed, added in _blocks(diff):
        if not removed:
            continue  # a pure addition: the helper's definition or declaration
        used: set[int] = set()
        for r in removed:
            for j, a in enumerate(added):
                if j in used:
                    continue
                old = substitution(r, a, new)
                if old:
                    sites[old] += 1
                    used.add(j)
                    break
        other += sum(
            1
            for j, a in enumerate(added)
            if j not in used and word.search(a) and not define.match(a)
        )
    if len(sites) != 1 or other:
        return None
    old, n = sites.most_common(1)[0]
    return (old, n) if n >= MIN_SITES else None


def conversion(repo: git.Repo, commit: str, new: str) -> Conversion | None:
    """The conversion ``commit`` made to introduce ``new``, or None when it was not one."""
    c = repo.commit(commit)
    if not c.parents:
        return None
    diff = str(repo.git.diff(c.parents[0].hexsha, commit, "-U0", "--no-color", "--no-ext-diff"))
    found = conversion_in(diff, new)
    if found is None:
        return None
    return Conversion(new, found[0], commit, str(c.summary), found[1])


def back_map(line: str, conversions: list[Conversion]) -> str:
    """``line`` in the old release's terms: each converted name written the old way."""
    for conv in conversions:
        line = re.sub(rf"\b{re.escape(conv.new)}\b", conv.old, line)
    return line


def defining_patterns(name: str) -> list[str]:
    """``git grep -E`` patterns of a line that defines or declares ``name`` in C: a macro, a
    function (name at column 0 or after a type there), a struct/union/enum tag, a typedef, an
    enumerator, a variable or member (type words, then the name, then ``;``, ``=``, ``,`` or
    ``[``).  Broad on purpose: a false match only keeps a name counted as missing."""
    n = re.escape(name)
    return [
        rf"^\s*#\s*define\s+{n}\b",
        rf"^[A-Za-z_][^;=(]*\b{n}\s*\(",
        rf"^{n}\s*\(",
        rf"\b(struct|union|enum)\s+{n}\b",
        rf"}}\s*{n}\s*;",
        rf"\btypedef\b.*\b{n}\s*;",
        rf"(^|\{{)\s*{n}\s*(=|,|\}}|$)",
        rf"(^|[{{;])\s*[A-Za-z_][A-Za-z0-9_ \t\*]*\b{n}\s*(\[|;|=|,)",
    ]


def defined_in(repo: git.Repo, tree: str, name: str) -> bool:
    """Whether ``tree`` defines or declares ``name`` anywhere.  A name the tree only uses
    (``g_assert_not_reached``: glib's) comes from outside it; that the tree's first use of
    it came in some commit says nothing about the old release lacking it.

    The definition patterns are searched only in the files that have the word at all (a
    fixed-string grep first): the eight extended regexes over the whole of QEMU took 3 s
    a name, over the dozen files that name it 0.15 s (issue 18's eighth round)."""
    listed = subprocess.run(
        ["git", "grep", "-l", "-w", "-F", "-e", name, tree, "--"],
        cwd=repo.working_dir,
        capture_output=True,
        text=True,
        errors="surrogateescape",
    )
    paths = [line.split(":", 1)[1] for line in listed.stdout.splitlines() if ":" in line]
    if not paths:
        return False
    if len(paths) > MAX_PATHS:
        paths = []  # the whole tree: a command line of every path could be too long
    args = ["git", "--literal-pathspecs", "grep", "-q", "-E"]
    for pat in defining_patterns(name):
        args += ["-e", pat]
    res = subprocess.run([*args, tree, "--", *paths], cwd=repo.working_dir, capture_output=True)
    return res.returncode == 0


MAX_PATHS = 2000
"""Files named on :func:`defined_in`'s command line at most (more: the whole tree)."""
