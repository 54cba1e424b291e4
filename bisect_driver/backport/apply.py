"""Put commits or a patch file onto REF, in the tool's own checkout.

The results are commits that exist only in the tool's clone.  The committer and its date are
fixed (store.repo.TOOL_IDENTITY), the authors stay the original ones (a backport keeps
its author), so the same series onto the same REF is always the same commit: a rerun finds
its build and its trials in the journal.
"""

from __future__ import annotations

import contextlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

import git

from bisect_driver.store.repo import TOOL_IDENTITY, Checkout, git_error_line

COMMITTER = {k: v for k, v in TOOL_IDENTITY.items() if k.startswith("GIT_COMMITTER_")}


@dataclass
class DoesNotApply(Exception):
    commit: str | None
    """The commit that did not apply (None for a patch file)."""
    files: list[str]
    head: str
    """Where the tree stood when it failed (REF plus the commits that did apply)."""
    why: str

    def __str__(self) -> str:
        where = f"conflicts in {', '.join(self.files)}" if self.files else self.why
        return f"{self.commit[:12]}: {where}" if self.commit else where


def apply_commits(checkout: Checkout, onto: str, commits: list[str]) -> str:
    """Cherry-pick ``commits`` (``-x``: each message says where it came from) onto ``onto``;
    return the new HEAD.  Raises :class:`DoesNotApply` (the tree is then left at the last
    commit that did apply, with no cherry-pick in progress)."""
    repo = checkout.repo
    checkout.bisect_reset()
    checkout.checkout(onto)
    for sha in commits:
        args = ["-x", "--allow-empty", *checkout.mainline_args(sha)]
        try:
            with repo.git.custom_environment(**COMMITTER):
                repo.git.cherry_pick(*args, sha)
        except git.GitCommandError as exc:
            files = checkout.conflicted_files()
            why = git_error_line(exc)
            with contextlib.suppress(git.GitCommandError):
                repo.git.cherry_pick("--abort")
            repo.git.reset("--hard", "-q")
            raise DoesNotApply(sha, files, checkout.head(), why) from None
    return checkout.head()


def is_mbox(text: str) -> bool:
    """A ``git format-patch`` file or series (``git am``), rather than a plain diff."""
    return text.startswith("From ") and "\nSubject:" in text[:4000]


def apply_patch_file(checkout: Checkout, onto: str, path: Path) -> str:
    """Apply a patch or an mbox series onto ``onto`` and commit it; return the new HEAD."""
    repo = checkout.repo
    checkout.bisect_reset()
    checkout.checkout(onto)
    text = path.read_text(errors="replace")
    try:
        with repo.git.custom_environment(**COMMITTER):
            if is_mbox(text):
                repo.git.am("-q", str(path.resolve()))
            else:
                repo.git.apply("--index", str(path.resolve()))
                repo.git.commit(
                    "-q",
                    "--no-verify",
                    f"--author={TOOL_IDENTITY['GIT_AUTHOR_NAME']}"
                    f" <{TOOL_IDENTITY['GIT_AUTHOR_EMAIL']}>",
                    f"--date={TOOL_IDENTITY['GIT_AUTHOR_DATE']}",
                    "-m",
                    f"backport patch {path.name}",
                )
    except git.GitCommandError as exc:
        why = git_error_line(exc)
        with contextlib.suppress(git.GitCommandError):
            repo.git.am("--abort")
        repo.git.reset("--hard", "-q")
        raise DoesNotApply(None, [], checkout.head(), f"does not apply: {why}") from None
    return checkout.head()


def hunk_applies(checkout: Checkout, patch: str) -> bool:
    """Whether one hunk (a complete one-hunk patch) applies to the checkout's tree as is."""
    res = subprocess.run(
        ["git", "apply", "--check", "-"],
        cwd=checkout.path,
        input=patch,
        text=True,
        capture_output=True,
    )
    return res.returncode == 0
