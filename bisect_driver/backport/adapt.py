"""Adapted candidates: the fix rewritten onto REF when neither it nor a short series applies.

The backporter's two mechanical steps, and nothing cleverer:

- each hunk goes inside the function its header names, anchored on the context lines REF has
  there (relocate.py; never into another function, never by fuzz);
- each identifier the fix uses and REF lacks is written the old way when the commit that
  introduced it was a mechanical conversion (backmap.py); if any such identifier has no old
  way, no candidate is made (it could not build) and the result says why.

At most ``MAX_CANDIDATES`` candidates (ties between equally good places make more than one),
each committed onto REF in the tool's checkout with the fix's author and a message saying
what was moved where and which names were mapped, from which commit.  The committer is
fixed (store.repo.TOOL_IDENTITY), so a rerun makes the same commit and finds its build and
trials.  Nothing here judges a candidate: verify.verify_candidates builds and probes each
one, and only a PASS is delivered.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import git

from bisect_driver.backport.apply import COMMITTER
from bisect_driver.backport.backmap import Conversion, back_map, conversion, defined_in
from bisect_driver.backport.explain import HUNK_RE, Hunk, has_symbol, hunks_of
from bisect_driver.backport.model import Candidate, Mapping, Placement, Symbol
from bisect_driver.backport.relocate import (
    Edit,
    HunkText,
    Place,
    apply_edits,
    overlap,
    place_hunk,
)
from bisect_driver.store.repo import Checkout

MAX_CANDIDATES = 3
"""Candidates built and probed at most (each is a build and a strict test)."""


@dataclass
class Adaptation:
    status: str
    """candidates | cannot be adapted"""
    detail: str
    candidates: list[Candidate] = field(default_factory=list)


def _hunk_text(h: Hunk, parent: str | None) -> HunkText:
    m = HUNK_RE.match(h.header)
    assert m is not None
    return HunkText(h.path, h.header, int(m.group(1)), int(m.group(3)), list(h.lines), parent)


def _blob(repo: git.Repo, tree: str, path: str) -> str | None:
    """The file's exact text at ``tree`` (undecodable bytes kept), None when absent."""
    try:
        blob = repo.commit(tree).tree / path
    except KeyError:
        return None
    data: bytes = blob.data_stream.read()
    return data.decode("utf-8", errors="surrogateescape")


def mappings_for(
    repo: git.Repo, ref_sha: str, fix: str, ref: str, symbols: list[Symbol]
) -> tuple[list[Conversion], str]:
    """The conversions that write the fix's missing symbols (explain.missing_symbols, as
    the series search found them) the old way; or why not.

    A name the fix's parent uses but nowhere defines (a library's macro or function) is not
    missing from REF in any sense that matters: the build will tell."""
    found: list[Conversion] = []
    parent = repo.commit(fix).parents[0].hexsha
    for s in symbols:
        if not defined_in(repo, parent, s.name):
            continue
        conv = conversion(repo, s.commit, s.name) if s.commit else None
        if conv is None:
            origin = (
                f"{s.commit[:12]} ({s.subject}) introduced it, not by a mechanical conversion"
                if s.commit
                else "no commit in the range introduced it"
            )
            return [], f"the fix uses {s.name}, which {ref} lacks, and {origin}"
        if not has_symbol(repo, ref_sha, conv.old):
            return [], (
                f"the fix uses {s.name}, which {ref} lacks; {conv.commit[:12]} converted"
                f" {conv.old} into it, but {ref} has no {conv.old} either"
            )
        found.append(conv)
    return found, ""


def adapt(
    checkout: Checkout, ref: str, ref_sha: str, fix: str, symbols: list[Symbol]
) -> Adaptation:
    """Make the candidates (committed in ``checkout``), or say why there are none.
    ``symbols``: what the fix uses that REF lacks (explain.missing_symbols)."""
    repo = checkout.repo
    conversions, why = mappings_for(repo, ref_sha, fix, ref, symbols)
    if why:
        return Adaptation("cannot be adapted", why)
    hunks = hunks_of(repo, fix)
    if not hunks:
        return Adaptation("cannot be adapted", "the fix changes no text lines")
    per_hunk: list[list[Place]] = []
    parent = repo.commit(fix).parents[0].hexsha
    olds: dict[str, str] = {}
    for h in hunks:
        old = olds.get(h.path) or _blob(repo, ref_sha, h.path)
        if old is None:
            return Adaptation("cannot be adapted", f"{ref} has no {h.path}")
        olds[h.path] = old
        places, reason = place_hunk(old, _hunk_text(h, _blob(repo, parent, h.path)))
        if not places:
            return Adaptation("cannot be adapted", reason)
        per_hunk.append(places)
    mappings = [Mapping(c.new, c.old, c.commit, c.subject, c.sites) for c in conversions]
    out: list[Candidate] = []
    seen: set[str] = set()
    for combo in itertools.islice(itertools.product(*per_hunk), MAX_CANDIDATES * 3):
        texts = _texts(olds, list(combo), conversions)
        if texts is None:
            continue
        placements = [
            Placement(h.path, h.header, p.where, "\n".join([h.header, *h.lines]))
            for h, p in zip(hunks, combo, strict=True)
        ]
        cand = Candidate(len(out) + 1, placements, mappings)
        cand.commit = commit_candidate(checkout, ref_sha, fix, texts, cand)
        cand.diff = str(repo.git.diff(ref_sha, cand.commit, "--no-color", "--no-ext-diff"))
        if not cand.diff or cand.diff in seen:
            continue
        seen.add(cand.diff)
        out.append(cand)
        if len(out) == MAX_CANDIDATES:
            break
    if not out:
        return Adaptation("cannot be adapted", "the fix's hunks would overlap in every placement")
    mapped = "".join(f"; {m.name} written as {m.old}" for m in mappings)
    detail = f"{len(out)} candidate{'s' if len(out) > 1 else ''}{mapped}"
    return Adaptation("candidates", detail, out)


def _texts(
    olds: dict[str, str], places: list[Place], conversions: list[Conversion]
) -> dict[str, str] | None:
    """Each touched file's new text; None when two hunks' edits collide in one file."""
    edits: dict[str, list[Edit]] = {}
    for p in places:
        for e in p.edits:
            mapped = tuple(back_map(x, conversions) for x in e.insert)
            edits.setdefault(p.path, []).append(Edit(e.at, e.remove, mapped))
    if any(overlap(es) for es in edits.values()):
        return None
    return {path: apply_edits(olds[path], es) for path, es in edits.items()}


def message(repo: git.Repo, fix: str, ref_sha: str, cand: Candidate) -> str:
    """The fix's own message, then what the machine changed and why (its provenance)."""
    original = str(repo.commit(fix).message).rstrip()
    lines = [
        original,
        "",
        f"[Machine-adapted by bisect-qemu onto {ref_sha[:12]} from commit {fix},"
        f" candidate {cand.number}.",
        "Each hunk placed inside the function its header names:",
        *[f"- {p.path} {p.header}: {p.where}" for p in cand.placements],
    ]
    if cand.mappings:
        lines.append("Names the old release lacks, written its way:")
        lines += [
            f"- {m.name} -> {m.old}: {m.commit[:12]} ({m.subject}) converted {m.sites}"
            f" call sites from {m.old} to {m.name}"
            for m in cand.mappings
        ]
    lines.append("Delivered only if building and probing it passed the strict test.]")
    return "\n".join(lines) + "\n"


def commit_candidate(
    checkout: Checkout, ref_sha: str, fix: str, texts: dict[str, str], cand: Candidate
) -> str:
    """REF with ``texts`` written, committed with the fix's author; the new commit."""
    repo = checkout.repo
    checkout.bisect_reset()
    checkout.checkout(ref_sha)
    for path, text in texts.items():
        Path(checkout.path, path).write_bytes(text.encode("utf-8", errors="surrogateescape"))
    repo.git.add("--", *texts)
    author = repo.commit(fix).author
    date = repo.commit(fix).authored_datetime.isoformat()
    with repo.git.custom_environment(**COMMITTER):
        repo.git.commit(
            "-q",
            "--no-verify",
            "--allow-empty",
            "--cleanup=verbatim",
            f"--author={author.name} <{author.email}>",
            f"--date={date}",
            "-m",
            message(repo, fix, ref_sha, cand),
        )
    return checkout.head()
