"""Where a fix's hunk goes in an old release: inside the function its header names, nowhere else.

A backporter whose ``git cherry-pick`` conflicts puts the fix's added lines at the same place
in the same function, using whichever of the hunk's context lines the old release does have.
This module does that step, and only that step, on plain text:

- the function is the one named by the hunk header (``@@ -816,6 +816,8 @@ void bdrv_close(...)``),
  read where git's header line is not a function: the one that encloses the change in the
  fix's parent (git names the last column-0 line above the hunk, which can be a label such
  as ``retry:``, or the previous function when the hunk starts at a signature); else, when
  the hunk's own lines above a change open a function, that one; else the header's.  The
  old file must define it exactly once (a C definition: the name at column 0, a body in
  braces), else the hunk is not relocated;
- each change (a run of removed and added lines) is anchored inside that function only (or
  right after its closing brace, where a fix adds a helper after it): its
  removed lines must be there verbatim (whitespace aside), and the context lines next to it
  that match the old text score the place; a place must match at least one line that says
  something (not a lone brace);
- the places with the best score are the alternatives (a tie gives several, each a separate
  candidate); the added lines take the old file's indentation at the anchor.

Why so strict: textual fuzz finds look-alike context anywhere (``patch --fuzz 3`` puts the
QEMU fix into another function of v1.0's block.c). A wrong place that builds is worse than
no candidate; and every candidate is still built and probed before anyone sees it.

A hunk in no function (a declaration in a header file, say) is used only
where its whole old side is found verbatim, nearest its own line: ``git apply`` without fuzz.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

FUNCTION_NAME_RE = re.compile(r"([A-Za-z_]\w*)\s*\(")
MAX_PLACES = 3
"""Alternatives kept for one change (ties of the best score)."""
SIGNATURE_LOOKAHEAD = 20
"""Lines after a definition's first line in which its opening brace must appear."""


@dataclass(frozen=True)
class Edit:
    """Replace ``remove`` lines from index ``at`` (0-based) of a file by ``insert``."""

    at: int
    remove: int
    insert: tuple[str, ...]


@dataclass(frozen=True)
class Place:
    """One way to put one hunk into the old file: its edits and a sentence saying where."""

    path: str
    edits: tuple[Edit, ...]
    where: str
    score: int


@dataclass
class HunkText:
    """A hunk as relocation sees it: its header and its ``' '``/``'-'``/``'+'`` lines."""

    path: str
    header: str
    old_start: int
    new_start: int
    lines: list[str] = field(default_factory=list)
    parent: str | None = None
    """The file as the fix's parent has it (the hunk's old side): the function that encloses
    each change there is the one it belongs to, whatever git's header line says."""


@dataclass
class Change:
    """A run of removed and added lines, with the context on either side of it."""

    before: list[str]
    removed: list[str]
    added: list[str]
    after: list[str]
    new_line: int
    """Where the added lines start in the fixed file (1-based), for the report."""
    function: str | None = None
    """The function the change is in: the last signature above it in the hunk, else the
    header's."""


def function_of(header: str) -> str | None:
    """The function a hunk header names: ``@@ -1 +1 @@ static int f(int x)`` -> ``f``."""
    parts = header.split("@@", 2)
    if len(parts) < 3:
        return None
    m = FUNCTION_NAME_RE.search(parts[2])
    return m.group(1) if m else None


def _norm(line: str) -> str:
    return " ".join(line.split())


def _quote(line: str) -> str:
    return f"`{_norm(line)}`" if line.strip() else "a blank line"


def _says_something(line: str) -> bool:
    return any(ch.isalnum() for ch in line)


def _strip_literals(line: str) -> str:
    line = re.sub(r'"(?:\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(?:\\.|[^'\\])*'", "''", line)
    return re.sub(r"//.*$", "", line)


def definitions(lines: list[str], name: str) -> list[tuple[int, int]]:
    """(first line, closing-brace line), 0-based, of each C definition of ``name``.

    A definition: a line at column 0 naming ``name(`` (``int f(void)`` or GNU style
    ``f (void)`` under its return type), not ending in ``;``, whose opening brace follows
    before any ``;`` at depth 0; the body ends where the braces balance again."""
    call = re.compile(rf"\b{re.escape(name)}\s*\(")
    found: list[tuple[int, int]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line[:1].strip() or not call.search(line) or line.rstrip().endswith(";"):
            i += 1
            continue
        end = _body_end(lines, i)
        if end is None:
            i += 1
            continue
        found.append((i, end))
        i = end + 1
    return found


def _body_end(lines: list[str], start: int) -> int | None:
    depth, opened, in_comment = 0, False, False
    for j in range(start, len(lines)):
        text = _strip_literals(lines[j])
        k = 0
        while k < len(text):
            if in_comment:
                close = text.find("*/", k)
                if close < 0:
                    break
                in_comment, k = False, close + 2
                continue
            if text.startswith("/*", k):
                in_comment, k = True, k + 2
                continue
            ch = text[k]
            if ch == "{":
                depth, opened = depth + 1, True
            elif ch == "}":
                depth -= 1
                if opened and depth == 0:
                    return j
            elif ch == ";" and not opened and depth == 0:
                return None  # a prototype or a call, not a definition
            k += 1
        if not opened and j - start >= SIGNATURE_LOOKAHEAD:
            return None
    return None


def signature_of(line: str) -> str | None:
    """The function a line at column 0 opens (``int f(void)``, ``f (int x)``), else None."""
    if not line[:1].strip() or line.startswith("#") or line.rstrip().endswith((";", ",")):
        return None
    m = FUNCTION_NAME_RE.search(line)
    return m.group(1) if m else None


def enclosing(lines: list[str], index: int) -> str | None:
    """The function whose definition (signature to closing brace) holds line ``index``."""
    i = 0
    while i < len(lines) and i <= index:
        name = signature_of(lines[i])
        end = _body_end(lines, i) if name else None
        if name and end is not None:
            if i <= index <= end:
                return name
            i = end + 1
            continue
        i += 1
    return None


def _function(parent: list[str] | None, old_line: int, named: str | None) -> str | None:
    """The change's function: the one enclosing it in the parent; else the one the header
    (or a signature above it in the hunk) names, if the parent defines it (a declaration
    such as ``void close_all(void);`` in a header file is no function to put lines in)."""
    if parent is None:
        return named
    found = enclosing(parent, old_line - 1)
    if found:
        return found
    return named if named and definitions(parent, named) else None


def changes_of(hunk: HunkText) -> list[Change]:
    """The hunk's changes, each with the context lines around it and its function."""
    out: list[Change] = []
    context: list[str] = []
    current: Change | None = None
    new_line, old_line = hunk.new_start, hunk.old_start
    function = function_of(hunk.header)
    parent = hunk.parent.split("\n") if hunk.parent is not None else None
    for line in hunk.lines:
        tag, text = line[:1], line[1:]
        if tag in " -":
            function = signature_of(text) or function
        if tag == " ":
            if current is not None:
                current.after.append(text)
            context.append(text)
            new_line += 1
            old_line += 1
        elif tag in "-+":
            if current is None or current.after:
                # The parent's line at the change (the first removed line, or the line the
                # additions go before), 0-based.
                current = Change(
                    list(context), [], [], [], new_line, _function(parent, old_line, function)
                )
                out.append(current)
                context = []
            (current.removed if tag == "-" else current.added).append(text)
            if tag == "+":
                new_line += 1
            else:
                old_line += 1
        # "\ No newline at end of file" and anything else: not a line of either side
    # A change's "after" runs to the next change; the next change's "before" is the same lines.
    for a, b in zip(out, out[1:], strict=False):
        b.before = list(a.after)
    return out


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _reindent(lines: list[str], theirs: str, ours: str) -> tuple[str, ...]:
    """Move ``lines`` from the fix's indentation at the anchor (``theirs``) to the old
    file's (``ours``)."""
    if theirs == ours:
        return tuple(lines)
    out = []
    for line in lines:
        if line.startswith(theirs) and line.strip():
            out.append(ours + line[len(theirs) :])
        else:
            out.append(line)
    return tuple(out)


def _match_before(lines: list[str], at: int, before: list[str]) -> int:
    """How many of ``before``'s last lines match the old lines just above index ``at``."""
    n = 0
    while n < len(before) and at - 1 - n >= 0:
        if _norm(lines[at - 1 - n]) != _norm(before[len(before) - 1 - n]):
            break
        n += 1
    return n


def _match_after(lines: list[str], at: int, after: list[str]) -> int:
    """How many of ``after``'s first lines match the old lines from index ``at``."""
    n = 0
    while n < len(after) and at + n < len(lines):
        if _norm(lines[at + n]) != _norm(after[n]):
            break
        n += 1
    return n


def place_change(lines: list[str], change: Change, lo: int, hi: int) -> list[tuple[Edit, int, str]]:
    """The best places for ``change`` between old lines ``lo`` and ``hi`` (inclusive,
    0-based): (edit, score, what anchored it), best first; empty when nothing anchors."""
    scored: list[tuple[int, int, str, str, str]] = []
    width = len(change.removed)
    # Removed lines are inside the body, never its closing brace.  Added lines go before
    # any line of the body up to the closing brace, or right after it (a helper the fix
    # adds after the function).  The context around a place may match beyond the body:
    # that is evidence, not placement.
    stop = hi - width + 1 if width else min(hi + 2, len(lines))
    for at in range(lo + 1, stop):
        if width and any(_norm(lines[at + k]) != _norm(change.removed[k]) for k in range(width)):
            continue
        nb = _match_before(lines, at, change.before)
        na = _match_after(lines, at + width, change.after)
        matched = change.removed + change.before[len(change.before) - nb :] + change.after[:na]
        if not any(_says_something(x) for x in matched):
            continue
        # The indentation reference: the first removed line, else the context next to it.
        if width:
            theirs, ours, anchor = change.removed[0], lines[at], f"replacing {_quote(lines[at])}"
        elif na:
            theirs, ours, anchor = change.after[0], lines[at], f"before {_quote(lines[at])}"
        else:
            theirs, ours = change.before[-1], lines[at - 1]
            anchor = f"after {_quote(lines[at - 1])}"
        if at > hi:
            anchor = f"right after the function's closing brace, {anchor}"
        scored.append((width + nb + na, at, anchor, _indent(theirs), _indent(ours)))
    if not scored:
        return []
    best = max(s[0] for s in scored)
    out = []
    for score, at, anchor, theirs, ours in scored:
        if score == best:
            added = _reindent(change.added, theirs, ours)
            if lines[at - 1].endswith("\r"):  # a CRLF file stays CRLF
                added = tuple(x if x.endswith("\r") else x + "\r" for x in added)
            edit = Edit(at, width, added)
            out.append((edit, score, anchor))
    return out[:MAX_PLACES]


def place_hunk(old_text: str, hunk: HunkText) -> tuple[list[Place], str]:
    """The places for ``hunk`` in ``old_text`` (best first), or none and why."""
    lines = old_text.split("\n")
    changes = changes_of(hunk)
    if not changes or any(c.function is None for c in changes):
        return _as_is(lines, hunk)
    per_change: list[list[tuple[Edit, int, str]]] = []
    for change in changes:
        name = change.function
        assert name is not None
        defs = definitions(lines, name)
        if not defs:
            return [], f"{hunk.path} has no function {name}() to put it in"
        if len(defs) > 1:
            return [], f"{hunk.path} defines {name}() {len(defs)} times: which one is unclear"
        lo, hi = defs[0]
        places = place_change(lines, change, lo, hi)
        if not places:
            what = "its removed lines are not" if change.removed else "none of its context is"
            return [], f"{hunk.path} {name}(): {what} in that function"
        per_change.append(places)
    out: list[Place] = []
    for combo in _product(per_change):
        edits = tuple(e for e, _, _ in combo)
        if overlap(edits) or any(a.at > b.at for a, b in itertools.pairwise(edits)):
            continue  # the changes of one hunk stay apart and in their order
        where = "; ".join(
            f"line {e.at + 1} of {c.function}() (fixed file: line {c.new_line}), {anchor},"
            f" {score} line{'s' if score != 1 else ''} matched"
            for (e, score, anchor), c in zip(combo, changes, strict=True)
        )
        out.append(Place(hunk.path, edits, where, sum(s for _, s, _ in combo)))
    if not out:
        return [], f"{hunk.path}: its changes would overlap"
    return out[:MAX_PLACES], ""


def _product(
    per_change: list[list[tuple[Edit, int, str]]],
) -> list[list[tuple[Edit, int, str]]]:
    combos: list[list[tuple[Edit, int, str]]] = [[]]
    for places in per_change:
        combos = [[*c, p] for c in combos for p in places][: MAX_PLACES * 4]
    return combos


def overlap(edits: tuple[Edit, ...] | list[Edit]) -> bool:
    """Whether two edits touch the same lines, or insert at the same place (their order
    there would be a guess)."""
    spans = sorted((e.at, e.at + e.remove) for e in edits)
    return any(b[0] < a[1] or (b[0] == a[0]) for a, b in zip(spans, spans[1:], strict=False))


def _as_is(lines: list[str], hunk: HunkText) -> tuple[list[Place], str]:
    """A hunk outside any function: only where its whole old side is, verbatim."""
    old = [x[1:] for x in hunk.lines if x[:1] in (" ", "-")]
    new = [x[1:] for x in hunk.lines if x[:1] in (" ", "+")]
    if not old:
        return [], f"{hunk.path}: the hunk is in no function and has no context"
    hits = [
        i
        for i in range(len(lines) - len(old) + 1)
        if all(lines[i + k] == old[k] for k in range(len(old)))
    ]
    if not hits:
        return [], f"{hunk.path}: the hunk is in no function, and its lines are not there"
    at = min(hits, key=lambda i: abs(i + 1 - hunk.old_start))
    where = f"line {at + 1} as it is (its own context, offset {at + 1 - hunk.old_start:+d})"
    return [Place(hunk.path, (Edit(at, len(old), tuple(new)),), where, len(old))], ""


def apply_edits(old_text: str, edits: list[Edit]) -> str:
    """``old_text`` with ``edits`` made (they must not overlap)."""
    lines = old_text.split("\n")
    for e in sorted(edits, key=lambda e: e.at, reverse=True):
        lines[e.at : e.at + e.remove] = list(e.insert)
    return "\n".join(lines)
