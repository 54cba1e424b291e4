"""What history says about a candidate: parents in range, the merge that brought it in,
the first release that contains it, its message and diffstat.  Read-only on the user's repo."""

from __future__ import annotations

from dataclasses import dataclass, field

import git

from bisect_driver.store.repo import is_ancestor


@dataclass
class CommitInfo:
    sha: str
    subject: str
    author: str
    date: str
    message: str
    diffstat: str
    first_tag: str | None
    parents: list[str]
    merged_by: str | None = None
    """The merge on the new end's first-parent line that brought the commit in."""
    brings_in: list[str] = field(default_factory=list)
    """For a merge answer (--first-parent): the commits it brought in."""


def parents_in_range(repo: git.Repo, sha: str, old: str) -> list[str]:
    """Parents of ``sha`` that are inside the bisected range (old end included)."""
    out = []
    for p in repo.commit(sha).parents:
        if p.hexsha == old or is_ancestor(repo, old, p.hexsha):
            out.append(p.hexsha)
    return out


def merged_by(repo: git.Repo, sha: str, new: str) -> str | None:
    """The first commit on ``new``'s first-parent line containing ``sha``, unless it is ``sha``."""
    parents = [p.hexsha for p in repo.commit(sha).parents]
    args = ["--first-parent", "--reverse", new] + (["--not", *parents] if parents else [])
    line = repo.git.rev_list(*args).split()
    for c in line:
        if c == sha:
            return None
        if is_ancestor(repo, sha, c):
            return str(c)
    return None


def describe(repo: git.Repo, sha: str, new: str) -> CommitInfo:
    c = repo.commit(sha)
    try:
        tags = repo.git.tag("--contains", sha, "--sort=creatordate").split()
    except git.GitCommandError:
        tags = []
    releases = [t for t in tags if "rc" not in t.lower()] or tags
    brings = []
    if len(c.parents) > 1:
        brings = repo.git.rev_list(f"{c.parents[0].hexsha}..{sha}", "--no-merges").split()
    return CommitInfo(
        sha=sha,
        subject=str(c.summary),
        author=f"{c.author.name} <{c.author.email}>",
        date=c.authored_datetime.isoformat(),
        message=str(c.message).strip(),
        diffstat=repo.git.show("--stat", "--format=", sha).strip(),
        first_tag=releases[0] if releases else None,
        parents=[p.hexsha for p in c.parents],
        merged_by=merged_by(repo, sha, new),
        brings_in=brings,
    )
