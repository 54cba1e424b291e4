"""Sentences and cells that report.md and report.html both show.

Why a module of their own: both renderers need the same verdict paragraph
and rate cell, and they used to import them from each other (an import
cycle).  Both now import them from here, below them.
"""

from __future__ import annotations

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
        return (
            f"The bug was {what} by one of {len(report.candidates)} commits in {rng}: the"
            " commits between them could not be built or tested (skips), so git bisect cannot"
            " tell which."
        )
    return f"No answer yet for {rng} (run status: {report.status})."


def rate_cell(row: EvidenceRow) -> str:
    """'0.40 (0.12-0.74)': the reproduction rate with its 95 % interval, '-' without trials."""
    if row.rate is None:
        return "-"
    lo, hi = row.rate_ci95
    return f"{row.rate:.2f} ({lo:.2f}-{hi:.2f})"
