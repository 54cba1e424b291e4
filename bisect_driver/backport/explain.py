"""Why a commit does not apply onto a tree, in commits (as git-deps does).

Two causes, each named by the commit that introduced it:

- **context**: a hunk does not apply because lines it needs (its context and the lines it
  removes) are not in the tree.  ``git blame`` in the commit's parent names the commits
  that brought those lines; the ones not already in the tree are prerequisites.
- **symbols**: the commit calls or uses an identifier the tree lacks (QEMU 1.0 has no
  ``bdrv_drain_all``).  It may apply cleanly and still not build.  ``git log -S`` names
  the commit that introduced it.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Collection
from dataclasses import dataclass, field

import git

from bisect_driver.backport.apply import hunk_applies
from bisect_driver.backport.model import Blame, Explanation, HunkConflict, Symbol
from bisect_driver.store.repo import Checkout, ancestors_among

HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
IDENT_RE = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]{3,}\b")
STRING_RE = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
COMMENT_RE = re.compile(r"/\*.*?(\*/|$)|//.*$")
MAX_SYMBOLS = 60
"""Identifiers of the added lines looked up (each costs a `git grep` or two)."""


@dataclass
class Hunk:
    path: str
    file_header: list[str]
    header: str
    old_start: int
    lines: list[str] = field(default_factory=list)

    def patch(self) -> str:
        return "\n".join([*self.file_header, self.header, *self.lines]) + "\n"

    def preimage(self) -> list[tuple[int, str]]:
        """(line number in the old file, text) of the lines the hunk needs there."""
        out, n = [], self.old_start
        for line in self.lines:
            if line.startswith((" ", "-")):
                out.append((n, line[1:]))
                n += 1
        return out

    def added(self) -> list[str]:
        return [line[1:] for line in self.lines if line.startswith("+")]


def hunks_of(repo: git.Repo, commit: str) -> list[Hunk]:
    """The hunks of ``commit`` against its first parent (3 lines of context)."""
    c = repo.commit(commit)
    if not c.parents:
        return []
    text = str(
        repo.git.diff(
            c.parents[0].hexsha, commit, "-U3", "--no-color", "--no-ext-diff", "--no-renames"
        )
    )
    hunks: list[Hunk] = []
    file_header: list[str] = []
    path = ""
    current: Hunk | None = None
    for line in text.splitlines():
        if line.startswith("diff --git "):
            file_header, current = [line], None
            path = line.split(" b/", 1)[-1]
        elif current is None and not line.startswith("@@"):
            file_header.append(line)
            if line.startswith("+++ b/"):
                path = line[len("+++ b/") :]
        elif m := HUNK_RE.match(line):
            current = Hunk(path, list(file_header), line, int(m.group(1)))
            hunks.append(current)
        elif current is not None and line[:1] in (" ", "-", "+", "\\"):
            current.lines.append(line)
    return hunks


def _file_at(repo: git.Repo, tree: str, path: str) -> str:
    try:
        return str(repo.git.show(f"{tree}:{path}"))
    except git.GitCommandError:
        return ""


def _blame(repo: git.Repo, rev: str, path: str, lines: list[int]) -> dict[int, str]:
    """Line number in ``rev``'s ``path`` -> the commit that brought that line."""
    if not lines:
        return {}
    args = ["git", "blame", "--porcelain"]
    for n in sorted(set(lines)):
        args += ["-L", f"{n},{n}"]
    res = subprocess.run(
        [*args, rev, "--", path], cwd=repo.working_dir, capture_output=True, text=True
    )
    out: dict[int, str] = {}
    for line in res.stdout.splitlines():
        m = re.match(r"^([0-9a-f]{40}) \d+ (\d+)", line)
        if m:
            out[int(m.group(2))] = m.group(1)
    return out


def _subject(repo: git.Repo, sha: str) -> str:
    return str(repo.commit(sha).summary)


def has_symbol(repo: git.Repo, tree: str, name: str) -> bool:
    """Whether the word ``name`` occurs anywhere in ``tree``."""
    res = subprocess.run(
        ["git", "grep", "-q", "-w", "-F", "-e", name, tree, "--"],
        cwd=repo.working_dir,
        capture_output=True,
    )
    return res.returncode == 0


def symbols_in(repo: git.Repo, tree: str, names: Collection[str]) -> set[str]:
    """Which of the words ``names`` occur anywhere in ``tree``: one ``git grep`` printing
    only its matches (``-o``), not one :func:`has_symbol` each.

    A fix's added lines name up to MAX_SYMBOLS identifiers, each looked up in two trees,
    and a whole-tree grep costs about 0.12 s on QEMU: 73 of them were 8.6 s of a cached
    run's 28 s (issue 18's eighth round).  With ``-w`` a pattern matches only as a whole
    word, also where a longer name starts with it (``foo`` in ``foo_bar`` is no match)."""
    if not names:
        return set()
    args = ["git", "grep", "-o", "-h", "-w", "-F"]
    for name in sorted(set(names)):
        args += ["-e", name]
    res = subprocess.run(
        [*args, tree, "--"], cwd=repo.working_dir, capture_output=True, text=True, errors="replace"
    )
    return set(res.stdout.split()) & set(names)


def used_symbols(hunks: list[Hunk]) -> list[str]:
    """Identifiers in the added lines, outside comments and strings, in first-seen order."""
    seen: list[str] = []
    for h in hunks:
        for line in h.added():
            code = COMMENT_RE.sub("", STRING_RE.sub('""', line))
            for name in IDENT_RE.findall(code):
                if name not in seen:
                    seen.append(name)
    return seen[:MAX_SYMBOLS]


def missing_symbols(repo: git.Repo, base: str, commit: str) -> list[Symbol]:
    """What ``commit`` uses that ``base`` lacks and its parent had, with its introducer."""
    parent = repo.commit(commit).parents[0].hexsha
    out = []
    used = used_symbols(hunks_of(repo, commit))
    in_base = symbols_in(repo, base, used)
    in_parent = symbols_in(repo, parent, [n for n in used if n not in in_base])
    for name in used:
        if name in in_base or name not in in_parent:
            continue  # already there, or new in the commit itself
        found = str(
            repo.git.log("-S", name, "--format=%H", "--reverse", f"{base}..{parent}")
        ).split()
        sha = found[0] if found else None
        out.append(Symbol(name, sha, _subject(repo, sha) if sha else ""))
    return out


def explain(repo: git.Repo, checkout: Checkout, base: str, commit: str) -> Explanation:
    """Why ``commit`` does not apply onto ``base`` (the checkout must stand at ``base``)."""
    parent = repo.commit(commit).parents[0].hexsha
    result = Explanation(commit)
    for hunk in hunks_of(repo, commit):
        if hunk_applies(checkout, hunk.patch()):
            continue
        have = {line.strip() for line in _file_at(repo, base, hunk.path).splitlines()}
        missing = [(n, t) for n, t in hunk.preimage() if t.strip() and t.strip() not in have]
        blamed = _blame(repo, parent, hunk.path, [n for n, _ in missing])
        there = ancestors_among(repo, blamed.values(), base)
        conflict = HunkConflict(hunk.path, hunk.header)
        for n, text in missing:
            sha = blamed.get(n)
            if sha and sha not in there:
                conflict.blames.append(Blame(hunk.path, text, sha, _subject(repo, sha)))
        result.hunks.append(conflict)
    result.symbols = missing_symbols(repo, base, commit)
    return result
