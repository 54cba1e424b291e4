"""Generate a hand-made backport of QEMU's "drain requests in bdrv_close" fix onto v1.0.

    python bench/qemu_backport_patch.py --repo QEMU_CLONE --fix 7094f12f868f \\
        [--onto v1.0] --out /tmp/qemu-backport.patch

Why it exists: the flagship QEMU bug (SIGTERM while qcow2 writes are in flight) is fixed
upstream by a commit that makes bdrv_close() drain in-flight requests with bdrv_drain_all().
It does not cherry-pick onto v1.0: its hunk's context is the block-job cancel lines v1.0 does
not have, and v1.0 has no bdrv_drain_all() either (that function came later and is a wrapper
around qemu_aio_flush() plus assertions).  A distro maintainer would therefore write the
backport by hand: the same call at the same place in bdrv_close(), spelt qemu_aio_flush().
The docs use such a patch to show `bisect-qemu --backport-patch FILE` verifying it.

This repository must never contain QEMU code, nor patches made from it, so nothing here is a
stored patch: the script GENERATES it at run time from the user's own clone.  It reads the
fix's diff (`git show FIX`), checks that the fix has exactly the expected shape, finds the
equivalent place in REF's bdrv_close(), makes the edit in a temporary detached worktree of REF,
commits it (original author and date, as a cherry-pick would keep them) and writes
`git format-patch -1 --stdout` to OUT.  The worktree is removed afterwards.

The shape it expects, and refuses to guess beyond (exit 1 with a one-line error):

* the fix is a single-parent commit touching one file, block.c, in one hunk inside
  bdrv_close(), adding only a bdrv_drain_all() call (plus blank lines) and removing nothing;
  so there are no other files or hunks to port;
* REF does not contain the fix, has no bdrv_drain_all(), and block.c at REF already calls
  qemu_aio_flush() (so it is declared there), while bdrv_drain_all() in the fix's parent does
  call qemu_aio_flush() (so that is the right substitute);
* REF's bdrv_close(), from its first line up to the hunk's trailing context (found once),
  equals the fix parent's bdrv_close() up to the insertion point, except for a trailing,
  brace-balanced block of lines that calls only functions REF does not have anywhere (on
  v1.0: the block-job cancel).  The call then goes where that block would be.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

FILE = "block.c"
FUNC = "bdrv_close"
NEW_CALL = "bdrv_drain_all"
OLD_CALL = "qemu_aio_flush"
HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")
CALL_RE = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
C_KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "defined"}


class BackportError(Exception):
    """The fix or REF does not have the shape this script knows how to port."""


@dataclass(frozen=True)
class Hunk:
    old_start: int
    func_context: str
    lines: list[str]  # with their ' ', '+', '-' prefix


@dataclass(frozen=True)
class FixShape:
    func_header: str  # the function's first line, e.g. "void bdrv_close(BlockDriverState *bs)"
    leading: list[str]  # context lines before the added block
    added: list[str]  # the added lines, without '+'
    trailing: list[str]  # context lines after the added block
    insert_at: int  # 0-based index in the parent's block.c where `added` goes


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="surrogateescape",
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or f"exit status {proc.returncode}").splitlines()
        raise BackportError(f"git {' '.join(args[:3])}: {lines[0]}")
    return proc.stdout


def git_ok(repo: Path, *args: str) -> bool:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    return proc.returncode == 0


def resolve(repo: Path, rev: str) -> str:
    if not git_ok(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"):
        raise BackportError(f"{rev!r} is not a commit in {repo}")
    return git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}").strip()


def parse_hunks(diff: str) -> dict[str, list[Hunk]]:
    files: dict[str, list[Hunk]] = {}
    current: list[Hunk] | None = None
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            parts = line.split()
            old, new = parts[2].removeprefix("a/"), parts[3].removeprefix("b/")
            if old != new:
                raise BackportError(f"the fix renames {old} to {new}; expected an edit of {FILE}")
            current = files.setdefault(new, [])
        elif current is not None and (m := HUNK_RE.match(line)):
            current.append(Hunk(int(m.group(1)), m.group(5).strip(), []))
        elif current and line[:1] in (" ", "+", "-", "\\"):
            current[-1].lines.append(line)
    return files


def fix_shape(repo: Path, fix: str) -> FixShape:
    parents = git(repo, "rev-list", "--parents", "-n", "1", fix).split()[1:]
    if len(parents) != 1:
        raise BackportError(f"the fix has {len(parents)} parents; expected one")
    files = parse_hunks(git(repo, "show", "--format=", "--no-color", "--unified=3", fix))
    if list(files) != [FILE]:
        raise BackportError(f"the fix changes {sorted(files)}; expected only {FILE}")
    hunks = files[FILE]
    if len(hunks) != 1:
        raise BackportError(f"the fix has {len(hunks)} hunks in {FILE}; expected one")
    hunk = hunks[0]
    if not re.search(rf"\b{FUNC}\s*\(", hunk.func_context):
        raise BackportError(f"the fix's hunk is in {hunk.func_context!r}, not {FUNC}()")
    kinds = "".join(line[0] for line in hunk.lines if line[0] != "\\")
    m = re.fullmatch(r"( *)(\++)( *)", kinds)
    if m is None:
        raise BackportError("the fix's hunk is not one block of added lines amid context")
    body = [line[1:] for line in hunk.lines if line[0] != "\\"]
    lead, add = len(m.group(1)), len(m.group(2))
    added = body[lead : lead + add]
    if [a.strip() for a in added if a.strip()] != [f"{NEW_CALL}();"]:
        raise BackportError(f"the fix adds {added!r}; expected a single {NEW_CALL}() call")
    if not body[lead + add :]:
        raise BackportError("the fix's hunk has no trailing context to anchor on")
    return FixShape(
        func_header=hunk.func_context,
        leading=body[:lead],
        added=added,
        trailing=body[lead + add :],
        insert_at=hunk.old_start - 1 + lead,
    )


def function_span(lines: list[str], header: str, where: str) -> tuple[int, int]:
    """Return [start, end] line indexes of the function whose first line is `header`."""
    starts = [i for i, line in enumerate(lines) if line.rstrip() == header]
    if len(starts) != 1:
        raise BackportError(f"{where}: {len(starts)} definitions of {header!r}; expected one")
    start = starts[0]
    for end in range(start + 1, len(lines)):
        if lines[end].rstrip() == "}":
            return start, end
    raise BackportError(f"{where}: no end of {header!r}")


def function_calls(lines: list[str]) -> set[str]:
    return {name for line in lines for name in CALL_RE.findall(line)} - C_KEYWORDS


def check_ref(repo: Path, fix: str, ref: str, ref_name: str) -> None:
    if git_ok(repo, "merge-base", "--is-ancestor", fix, ref):
        raise BackportError(f"{ref_name} already contains the fix")
    if git_ok(repo, "grep", "-q", "-w", NEW_CALL, ref, "--"):
        raise BackportError(f"{ref_name} has {NEW_CALL}(); cherry-pick the fix instead")
    if not git_ok(repo, "grep", "-q", "-w", f"{OLD_CALL}();", ref, "--", FILE):
        raise BackportError(f"{FILE} at {ref_name} does not call {OLD_CALL}(); is it in scope?")
    parent_src = git(repo, "show", f"{fix}^:{FILE}").splitlines()
    start, end = function_span(parent_src, f"void {NEW_CALL}(void)", "the fix's parent")
    if OLD_CALL not in function_calls(parent_src[start : end + 1]):
        raise BackportError(f"{NEW_CALL}() in the fix's parent does not call {OLD_CALL}()")


def find_insertion(
    repo: Path, fix: str, ref: str, shape: FixShape, ref_lines: list[str]
) -> tuple[int, list[str]]:
    """Return the 0-based index in REF's block.c where the adapted lines go, and the functions
    called by the fix's context lines that REF lacks (because REF lacks those functions)."""
    parent = git(repo, "show", f"{fix}^:{FILE}").splitlines()
    around = parent[shape.insert_at - len(shape.leading) : shape.insert_at + len(shape.trailing)]
    if around != shape.leading + shape.trailing:
        raise BackportError(f"the fix's hunk does not match {FILE} in its parent")
    p_start, _ = function_span(parent, shape.func_header, "the fix's parent")
    r_start, r_end = function_span(ref_lines, shape.func_header, "REF")
    n = len(shape.trailing)
    anchors = [i for i in range(r_start, r_end - n + 2) if ref_lines[i : i + n] == shape.trailing]
    if len(anchors) != 1:
        raise BackportError(
            f"the fix's trailing context occurs {len(anchors)} times in REF's {FUNC}(); "
            "expected once"
        )
    anchor = anchors[0]
    if not any(f"->{FUNC}(" in line for line in ref_lines[anchor:r_end]):
        raise BackportError(f"REF's {FUNC}() does not close the driver after the insertion point")
    ref_prefix = ref_lines[r_start:anchor]
    parent_prefix = parent[p_start : shape.insert_at]
    if parent_prefix[: len(ref_prefix)] != ref_prefix:
        raise BackportError(f"REF's {FUNC}() before the insertion point differs from the fix's")
    missing = parent_prefix[len(ref_prefix) :]
    if not missing:
        return anchor, []
    text = "\n".join(missing)
    calls = sorted(function_calls(missing))
    if text.count("{") != text.count("}") or not calls:
        raise BackportError(f"REF lacks context lines that are not a whole block: {missing}")
    present = [c for c in calls if git_ok(repo, "grep", "-q", "-w", c, ref, "--")]
    if present:
        raise BackportError(f"REF lacks context lines calling {present}, which REF has")
    return anchor, calls


def commit_message(fix: str, ref_name: str, subject: str, missing_note: str) -> str:
    body = textwrap.fill(
        f'Backport of upstream commit {fix[:12]} ("{subject}") to {ref_name}. '
        f"{ref_name} has no {NEW_CALL}(), which upstream wraps {OLD_CALL}() with assertions, "
        f"so call {OLD_CALL}() instead, at the same place in {FUNC}(): before the driver is "
        f"closed.{missing_note}",
        width=72,
        break_on_hyphens=False,
    )
    return (
        f"block: drain requests in bdrv_close (backport of {fix[:12]} to {ref_name}, "
        f"using {OLD_CALL})\n\n{body}\n\n"
        f"(cherry picked from commit {fix}, adapted: {NEW_CALL}() -> {OLD_CALL}())\n"
    )


def build_patch(repo: Path, fix_rev: str, ref_name: str, out: Path) -> str:
    fix = resolve(repo, fix_rev)
    ref = resolve(repo, ref_name)
    shape = fix_shape(repo, fix)
    check_ref(repo, fix, ref, ref_name)
    added = [line.replace(f"{NEW_CALL}()", f"{OLD_CALL}()") for line in shape.added]
    name, email, date, subject = (
        git(repo, "show", "-s", "--date=raw", "--format=%an%x00%ae%x00%ad%x00%s", fix)
        .rstrip("\n")
        .split("\0")
    )
    env = dict(os.environ)
    env.update(
        GIT_AUTHOR_NAME=name,
        GIT_AUTHOR_EMAIL=email,
        GIT_AUTHOR_DATE=date,
        GIT_COMMITTER_NAME="qemu_backport_patch.py",
        GIT_COMMITTER_EMAIL="backport@localhost.invalid",
        GIT_COMMITTER_DATE=date,
    )
    with tempfile.TemporaryDirectory(prefix="qemu-backport-") as tmp:
        wt = Path(tmp) / "wt"
        git(repo, "worktree", "add", "--detach", "--quiet", str(wt), ref)
        try:
            path = wt / FILE
            lines = path.read_bytes().decode("utf-8", "surrogateescape").split("\n")
            at, missing_calls = find_insertion(repo, fix, ref, shape, lines)
            note = ""
            if missing_calls:
                names = ", ".join(f"{c}()" for c in missing_calls)
                note = (
                    f" The upstream hunk follows lines calling {names}, which {ref_name} does "
                    "not have, so the call goes where those lines would be."
                )
            lines[at:at] = added
            path.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape"))
            message = commit_message(fix, ref_name, subject, note)
            git(wt, "commit", "--quiet", "--no-verify", "-a", "-m", message, env=env)
            patch = git(wt, "format-patch", "-1", "--stdout", "--no-signature", "HEAD", env=env)
        finally:
            subprocess.run(
                ["git", "-C", str(repo), "worktree", "remove", "--force", str(wt)],
                capture_output=True,
                check=False,
            )
            subprocess.run(["git", "-C", str(repo), "worktree", "prune"], check=False)
    out.write_text(patch, encoding="utf-8", errors="surrogateescape")
    return f"wrote {out}: {fix[:12]} backported onto {ref_name} ({ref[:12]}), {FILE} line {at + 1}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="your QEMU clone")
    parser.add_argument("--fix", required=True, help="the upstream fix commit")
    parser.add_argument("--onto", default="v1.0", help="the tree to backport to (v1.0)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the patch")
    args = parser.parse_args(argv)
    try:
        print(build_patch(args.repo, args.fix, args.onto, args.out))
    except (BackportError, OSError) as exc:
        print(f"qemu_backport_patch: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
