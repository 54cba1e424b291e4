"""Git and `git bisect` control, always in a checkout the tool owns.

The user's repository is only ever *read*: refs are resolved there, and the
tool's own checkout is a ``git clone --shared`` of it under the cache dir (its
objects come from the user's object store, so no history is copied and any
commit the user can name is present at once).  Bisecting, checking out and
building all happen in that clone, so the user's HEAD, branch, index, working
tree and worktree list never change, and no bisect state is left in their repo.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import git

from bisect_driver.plugin.errors import UserError

SHA_RE = re.compile(r"\b[0-9a-f]{40}\b")

TOOL_IDENTITY = {
    "GIT_AUTHOR_NAME": "bisect-qemu",
    "GIT_AUTHOR_EMAIL": "bisect-qemu@localhost",
    "GIT_COMMITTER_NAME": "bisect-qemu",
    "GIT_COMMITTER_EMAIL": "bisect-qemu@localhost",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
}
"""Who and when the tool's own commits (backports, reverts) are made: fixed, so a commit's id
depends only on its tree and parents, and a resumed run finds its build and trials again."""


def open_user_repo(path: Path) -> git.Repo:
    """Open the user's repository (the working tree they run the tool in)."""
    if not path.exists():
        raise UserError(f"repository path {path} does not exist")
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise UserError(f"{path} is not a git repository") from None
    return repo


def check_clean(repo: git.Repo) -> None:
    """Refuse a repo with uncommitted changes to tracked files.

    The tool tests committed history only; uncommitted edits would silently not
    be part of what is tested, which is almost always a user mistake.
    """
    if not repo.bare and repo.is_dirty(index=True, working_tree=True, untracked_files=False):
        raise UserError(
            f"{repo.working_dir} has uncommitted changes; commit or stash them first"
            " (bisect-qemu tests committed history and never touches your checkout)"
        )


def resolve(repo: git.Repo, ref: str) -> str:
    """Full SHA of the commit ``ref`` names, or a one-line UserError."""
    if not ref or ref.startswith("-"):
        raise UserError(f"invalid revision {ref!r}")
    try:
        return str(
            repo.git.rev_parse("--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
        )
    except git.GitCommandError:
        raise UserError(f"unknown revision {ref!r} in {repo.git_dir}") from None


def is_ancestor(repo: git.Repo, old: str, new: str) -> bool:
    try:
        repo.git.merge_base("--is-ancestor", old, new)
        return True
    except git.GitCommandError:
        return False


def ancestors_among(repo: git.Repo, commits: Iterable[str], tip: str) -> set[str]:
    """Those of ``commits`` (full SHAs) that are ancestors of ``tip`` (or ``tip`` itself).

    One ``git rev-list ^tip c1 c2 ...`` instead of a ``merge-base --is-ancestor`` each: a
    commit is an ancestor of ``tip`` exactly when it is not among what the others reach
    and ``tip`` does not (each call costs about 0.1 s on QEMU, and a backport's explanation
    asks about every line its hunks lack)."""
    wanted = set(commits)
    if not wanted:
        return set()
    beyond = set(str(repo.git.rev_list(f"^{tip}", *sorted(wanted), "--")).split())
    return wanted - beyond


def range_size(repo: git.Repo, old: str, new: str, first_parent: bool = False) -> int:
    """Commits in old..new (what the bisect has to search)."""
    args = ["--count"] + (["--first-parent"] if first_parent else []) + [f"{old}..{new}"]
    return int(repo.git.rev_list(*args))


def first_parent_descendants(repo: git.Repo, ancestor: str, tip: str) -> list[str]:
    """The commits of ``tip``'s first-parent line that descend from ``ancestor``, oldest
    first, ``tip`` included and ``ancestor`` not: the trees a change made at ``ancestor``
    has lived in on its way to ``tip``.

    Computed as two lists and intersected, not with ``--first-parent --ancestry-path``
    together: an ancestor on a side branch is reached only through a merge's second
    parent, which a first-parent walk never looks at, so git would drop that merge.
    """
    line = str(repo.git.rev_list("--first-parent", "--reverse", f"{ancestor}..{tip}")).split()
    below = set(str(repo.git.rev_list("--ancestry-path", f"{ancestor}..{tip}")).split())
    return [c for c in line if c in below]


@dataclass
class Checkout:
    """The tool-owned clone of the user's repository, where bisecting happens."""

    path: Path

    @property
    def repo(self) -> git.Repo:
        return git.Repo(self.path)

    def head(self) -> str:
        return str(self.repo.git.rev_parse("HEAD"))

    def conflicted_files(self) -> list[str]:
        """Paths git left unmerged (after a cherry-pick or revert that stopped)."""
        return str(self.repo.git.diff("--name-only", "--diff-filter=U")).split()

    def mainline_args(self, sha: str) -> list[str]:
        """``-m 1`` for a merge: cherry-pick or revert it against its first parent, the line
        it was merged into."""
        return ["-m", "1"] if len(self.repo.commit(sha).parents) > 1 else []

    def checkout(self, sha: str) -> None:
        """Detach at ``sha``, discarding any change left by a build."""
        repo = self.repo
        repo.git.reset("--hard", "-q")
        if repo.git.rev_parse("HEAD") != sha:
            repo.git.checkout("-q", "-f", "--detach", sha)

    def restore(self) -> None:
        """Undo in-tree changes to tracked files (e.g. fix-ups) after a build."""
        self.repo.git.reset("--hard", "-q")

    def bisect_in_progress(self) -> bool:
        return (Path(self.repo.git_dir) / "BISECT_START").exists()

    def bisect_reset(self) -> None:
        if self.bisect_in_progress():
            self.repo.git.bisect("reset")

    def bisect_log(self) -> str:
        try:
            return str(self.repo.git.bisect("log"))
        except git.GitCommandError:
            return ""


def checkout_for(user_repo: git.Repo, cache_dir: Path) -> Checkout:
    """The tool's clone of ``user_repo`` (created on first use, reused after).

    One clone per user repository keeps the source tree - and so the
    incremental build state - across runs.
    """
    source = Path(user_repo.git_dir).resolve()
    tag = hashlib.sha256(str(source).encode()).hexdigest()[:12]
    path = cache_dir / "checkouts" / tag
    if not (path / ".git").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp)
        git.Repo.clone_from(str(source), str(tmp), shared=True, no_checkout=True)
        tmp.rename(path)
    return Checkout(path)


def git_error_line(exc: git.GitCommandError) -> str:
    """The last non-empty line git wrote: what it says went wrong."""
    lines = [x.strip() for x in str(exc.stderr or exc).splitlines() if x.strip()]
    return lines[-1] if lines else str(exc)
