"""Sentences and cells that report.md and report.html both show.

Why a module of their own: both renderers need the same verdict paragraph
and rate cell, and they used to import them from each other (an import
cycle).  Both now import them from here, below them.
"""

from __future__ import annotations

from bisect_driver.backport.model import BackportResult, Candidate
from bisect_driver.bisect.direction import Direction
from bisect_driver.report.model import EvidenceRow, Report


def verdict_paragraph(report: Report) -> str:
    """The answer in one paragraph (markdown code spans; the HTML drops the backticks)."""
    cand = report.candidate
    what = "fixed" if report.direction is Direction.FIX else "introduced"
    rng = f"`{report.good_ref}`..`{report.bad_ref}`"
    if cand:
        merged = f", merged by `{cand.merged_by[:12]}`" if cand.merged_by else ""
        tag = f"; first release containing it: {cand.first_tag}" if cand.first_tag else ""
        if report.confirmed:
            conf = "confirmed by a strict retest of it and its parent"
        else:
            conf = "NOT confirmed: see Confidence"
        return (
            f'The bug was {what} by commit `{cand.commit}` ("{cand.subject}"){merged}'
            f"{tag}. It was found in {rng} ({report.range_size} commits) with {report.steps}"
            f" bisect steps and {report.trials} trials, confidence {report.confidence:.5f}"
            f" ({conf})."
        )
    if report.candidates:
        if report.confirmed:
            conf = (
                f"The set is confirmed (confidence {report.confidence:.5f}): its clean side"
                " passed the same strict retest as a single answer."
            )
        else:
            conf = "The set is NOT confirmed: see Confidence."
        return (
            f"The bug was {what} by one of {len(report.candidates)} commits in {rng}: the"
            " commits between them could not be built or tested (skips), so git bisect cannot"
            f" tell which. {conf}"
        )
    return f"No answer yet for {rng} (run status: {report.status})."


def rate_cell(row: EvidenceRow) -> str:
    """'0.40 (0.12-0.74)': the reproduction rate with its 95 % interval, '-' without trials."""
    if row.rate is None:
        return "-"
    lo, hi = row.rate_ci95
    return f"{row.rate:.2f} ({lo:.2f}-{hi:.2f})"


def backport_lines(b: BackportResult) -> list[str]:
    """The backport section for one REF: what applies, what was needed and why, what was
    verified (trial counts and error bounds), the adapted candidates beside the fix's
    hunks, and where the patches are."""
    out = backport_head(b)
    for c in b.candidates:
        out += ["", *candidate_lines(c)]
        out += ["", *candidate_diffs(c)]
    return tidy(out + ["", *backport_tail(b)])


def tidy(out: list[str]) -> list[str]:
    """No two blank lines in a row."""
    return [line for i, line in enumerate(out) if line or i == 0 or out[i - 1]]


def backport_head(b: BackportResult) -> list[str]:
    """Everything before the adapted candidates: the conflict explained, the series, its
    verification, the hand-made patches, and why candidates were (not) made."""
    out = [f"## Backport onto {b.ref} (`{b.ref_sha[:12]}`)", ""]
    out += [
        "The fix cherry-picks cleanly."
        if b.direct
        else "The fix alone does not apply (explained below).",
        "",
    ]
    for e in b.explanations:
        for h in e.hunks:
            out.append(f"- `{e.commit[:12]}` hunk `{h.path}` {h.header}: needs lines it lacks:")
            seen: dict[str, list[str]] = {}
            for bl in h.blames:
                seen.setdefault(f"`{bl.commit[:12]}` {bl.subject}", []).append(bl.line.strip())
            for who, lines in seen.items():
                shown = "; ".join(f"`{x}`" for x in lines[:3])
                out.append(f"  - from {who}: {shown}")
            if not h.blames:
                out.append("  - no commit in the range brought them")
        for sym in e.symbols:
            where = f"`{sym.commit[:12]}` {sym.subject}" if sym.commit else "no commit found"
            out.append(f"- `{e.commit[:12]}` uses `{sym.name}`, which it lacks: from {where}")
    out += ["", f"Series: **{b.series_status}**. {b.series_detail}".rstrip()]
    if b.series:
        out += [""] + [
            f"{i}. `{c.commit[:12]}` {c.subject}: {c.why}" for i, c in enumerate(b.series, 1)
        ]
    if b.trials:
        out += ["", "| tree | commit | verdict | reproduced | error bound | expected |"]
        out += ["|---|---|---|---:|---:|---|"]
        out += [
            f"| {t.label} | `{t.commit[:12]}` | {t.detail if t.verdict == 'skip' else t.verdict}"
            f" | {t.reproduced}/{t.trials} | {t.error:.2g} | {t.expected} |"
            for t in b.trials
        ]
    why = b.verify_detail or ("nothing to build: no series applies" if not b.trials else "")
    out += ["", f"Series verified: **{'yes' if b.verified else 'no'}**. {why}".rstrip()]
    for p in b.patches:
        out += ["", f"Hand-made patch `{p.path}`: **{p.status}**: {p.detail}"]
    if b.adapt_status == "cannot be adapted":
        out += ["", f"Adapted backport: **cannot be adapted**: {b.adapt_detail}."]
    elif b.adapt_status:
        out += ["", "### Adapted candidates", ""]
        out += [
            "Neither the fix nor a short series applies, so the fix was adapted the way a"
            " backporter would: each hunk inside the function its header names, each name"
            f" the release lacks written the old way. {b.adapt_detail}; each built and probed"
            " with the strict test until one passed."
        ]
    return tidy(out)


def candidate_lines(c: Candidate) -> list[str]:
    """One candidate: its result and its provenance (what moved where, which names were
    mapped and from which commit)."""
    out = [f"#### `{c.name}`: **{c.status}**", ""]
    if c.detail:
        out += [c.detail, ""]
    out += [f"- `{p.path}` `{p.header}`: {p.where}" for p in c.placements]
    out += [
        f"- `{m.name}` written as `{m.old}`: `{m.commit[:12]}` {m.subject} converted"
        f" {m.sites} call sites from `{m.old}` to `{m.name}`"
        for m in c.mappings
    ]
    if c.file:
        out += ["", f"Delivered: `{c.file}`"]
    return out


def candidate_diffs(c: Candidate) -> list[str]:
    """The fix's hunks, then the candidate's diff onto REF (fenced)."""
    out = ["The fix's hunks:", "", "```diff", *[p.original for p in c.placements], "```"]
    return out + ["", f"`{c.name}` onto the release:", "", "```diff", c.diff, "```"]


def backport_tail(b: BackportResult) -> list[str]:
    if b.out_dir:
        return [f"Patches and the commands that reproduce this: `{b.out_dir}`"]
    return []
