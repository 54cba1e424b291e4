"""The backport section of report.html: the same text as report.md's, rendered as HTML.

report.md's section is Markdown (report/text.py); here it goes through markdown-it-py (the
CommonMark parser rich already brings, raw HTML disabled so a commit subject cannot inject
markup), so headings, lists, tables and code read as they do in the rest of the report.
Each adapted candidate's diff sits in a two-column table beside the fix's own hunks, and its
long lines wrap instead of running off the right edge.
"""

from __future__ import annotations

import html

from markdown_it import MarkdownIt

from bisect_driver.backport.model import BackportResult, Candidate
from bisect_driver.report.text import backport_head, backport_tail, candidate_lines


def _md() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def render(lines: list[str]) -> str:
    """Markdown lines as HTML (raw HTML in them is escaped, not passed through)."""
    return str(_md().render("\n".join(lines)))


def side_by_side(c: Candidate) -> str:
    """The fix's hunks and the candidate's diff onto REF, in two columns."""
    esc = html.escape
    original = "\n".join(p.original for p in c.placements)
    return (
        "<table class='side'><tr><th>the fix's hunks</th>"
        f"<th>{esc(c.name)} onto the release</th></tr>"
        f"<tr><td><pre>{esc(original)}</pre></td><td><pre>{esc(c.diff)}</pre></td></tr></table>"
    )


def backport_html(b: BackportResult) -> str:
    """The whole section for one REF, in a ``<section class='backport'>``."""
    parts = ["<section class='backport'>", render(backport_head(b))]
    for c in b.candidates:
        parts += [render(candidate_lines(c)), side_by_side(c)]
    tail = backport_tail(b)
    if tail:
        parts.append(render(tail))
    parts.append("</section>")
    return "\n".join(parts)
