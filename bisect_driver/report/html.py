"""report.html: the report plus an inline SVG plot of reproduction rate against position.

Self-contained (no scripts, no external assets) so it can be attached to a
bug or opened from a mail.  The plot shows each tested commit's rate with its
95 % Clopper-Pearson interval, skips as crosses on the axis, and the candidate
as a vertical line: a backporter sees at a glance where the behaviour flips.
"""

from __future__ import annotations

import html
import json

from bisect_driver.bisect.checks import no_independent_check
from bisect_driver.report.backport_html import backport_html
from bisect_driver.report.markdown import basis_md
from bisect_driver.report.model import EvidenceRow, Report
from bisect_driver.report.text import rate_cell, verdict_paragraph
from bisect_driver.report.where import where_html
from bisect_driver.verdict.stats import Verdict

W, H = 900, 320
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 40, 50


def _x(pos: float, span: float) -> float:
    return LEFT + (W - LEFT - RIGHT) * (pos / span if span else 0.5)


def _y(rate: float) -> float:
    return TOP + (H - TOP - BOTTOM) * (1.0 - rate)


def plot_svg(report: Report) -> str:
    """Rate (with 95 % interval) of every commit inside the range, against its position."""
    ev = [(e, e.position) for e in report.evidence if e.position is not None]
    span = max([pos for _, pos in ev] + [report.range_size or 1, 1])
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}"'
        f' viewBox="0 0 {W} {H}" role="img" aria-label="reproduction rate by position">'
    ]
    out.append(f'<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>')
    for r in (0, 0.25, 0.5, 0.75, 1.0):
        y = _y(r)
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y}" y2="{y}" stroke="#ddd"/>')
        out.append(
            f'<text x="{LEFT - 8}" y="{y + 4}" font-size="11" text-anchor="end">{r:.2f}</text>'
        )
    out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{_y(0)}" y2="{_y(0)}" stroke="#333"/>')
    out.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{_y(0)}" stroke="#333"/>')
    for frac in (0, 0.25, 0.5, 0.75, 1.0):
        tick = round(span * frac)
        x = _x(tick, span)
        out.append(
            f'<text x="{x}" y="{_y(0) + 16}" font-size="11" text-anchor="middle">{tick}</text>'
        )
    out.append(
        f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 8}" font-size="12"'
        ' text-anchor="middle">position in range (0 = old end)</text>'
    )
    out.append(
        f'<text x="14" y="{(TOP + _y(0)) / 2}" font-size="12" text-anchor="middle"'
        f' transform="rotate(-90 14 {(TOP + _y(0)) / 2})">reproduction rate</text>'
    )
    cand = report.candidate.commit if report.candidate else None
    for e, pos in ev:
        if e.commit == cand:
            x = _x(pos, span)
            out.append(
                f'<line x1="{x}" x2="{x}" y1="{TOP}" y2="{_y(0)}" stroke="#c00"'
                ' stroke-dasharray="5,3"/>'
            )
            out.append(
                f'<text x="{x + 4}" y="{TOP + 12}" font-size="11" fill="#c00">'
                f"candidate {html.escape(cand[:12])}</text>"
            )
    for e, pos in ev:
        out.append(_point(e, _x(pos, span)))
    lx, ly = W - RIGHT - 400, 14  # legend above the plot area
    out.append(
        f'<circle cx="{lx}" cy="{ly - 4}" r="4" fill="#b22"/>'
        f'<text x="{lx + 8}" y="{ly}" font-size="11">bug present</text>'
        f'<circle cx="{lx + 85}" cy="{ly - 4}" r="4" fill="#27a"/>'
        f'<text x="{lx + 93}" y="{ly}" font-size="11">clean</text>'
        f'<text x="{lx + 140}" y="{ly}" font-size="11" fill="#888">x skip</text>'
        f'<text x="{lx + 190}" y="{ly}" font-size="11" fill="#c00">-- candidate;'
        " bars: 95% interval</text>"
    )
    out.append("</svg>")
    return "\n".join(out)


def _point(e: EvidenceRow, x: float) -> str:
    """One commit in the plot: a dot with its interval bar, or a cross for a skip."""
    tip = html.escape(f"{e.commit[:12]} pos {e.position}: {e.reproduced}/{e.counted} ({e.verdict})")
    if e.verdict is Verdict.SKIP or e.rate is None:
        y = _y(0)
        return (
            f'<g><title>{tip}</title><path d="M{x - 5},{y - 5} L{x + 5},{y + 5}'
            f' M{x - 5},{y + 5} L{x + 5},{y - 5}" stroke="#888" stroke-width="2"/></g>'
        )
    lo, hi = e.rate_ci95
    color = "#b22" if e.verdict is Verdict.BUG else "#27a"
    return (
        f"<g><title>{tip}</title>"
        f'<line x1="{x}" x2="{x}" y1="{_y(lo)}" y2="{_y(hi)}" stroke="{color}"'
        ' stroke-width="1.5"/>'
        f'<circle cx="{x}" cy="{_y(e.rate)}" r="4" fill="{color}"/></g>'
    )


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """An HTML table; ``rows`` cells are already escaped HTML."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


EVIDENCE_HEADERS = [
    "pos",
    "commit",
    "subject",
    "trials",
    "reproduced",
    "rate (95% CI)",
    "verdict",
    "confirm",
    "note",
]


def _evidence_cells(e: EvidenceRow) -> list[str]:
    esc = html.escape
    return [
        str(e.position if e.position is not None else ""),
        f"<code>{esc(e.commit[:12])}</code>",
        esc(e.subject[:60]),
        str(e.trials),
        str(e.reproduced),
        rate_cell(e),
        esc(e.verdict or "-"),
        esc(e.confirm_verdict or ""),
        esc(e.reason if e.verdict in (Verdict.SKIP, None) else ""),
    ]


def render_html(report: Report) -> str:
    """The whole report.html page, built from ``report`` alone."""
    esc = html.escape
    cand = report.candidate
    unchecked = no_independent_check(report.checks) if cand else None
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>bisect-qemu report</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 6px}th{background:#f3f3f3}code,pre{background:#f6f6f6}"
        "pre{padding:8px;overflow-x:auto}.PASS{color:#070;font-weight:bold}"
        ".FAIL{color:#b00;font-weight:bold}"
        # The backport section wraps its long lines: a printed or screenshot report shows
        # them whole (a scroll bar does not print).
        ".backport pre{white-space:pre-wrap;overflow-wrap:anywhere}"
        ".backport table.side{table-layout:fixed;width:100%}"
        ".backport table.side td{vertical-align:top;width:50%}</style></head><body>",
        "<h1>bisect-qemu report</h1>",
        f"<p>{esc(verdict_paragraph(report).replace('`', ''))}"
        + (f" {esc(unchecked)}" if unchecked else "")
        + "</p>",
        plot_svg(report),
    ]
    if cand:
        parts += [
            "<h2>Candidate</h2>",
            _table(
                ["field", "value"],
                [
                    ["commit", f"<code>{esc(cand.commit)}</code>"],
                    ["subject", esc(cand.subject)],
                    ["author", esc(cand.author)],
                    ["date", esc(cand.date)],
                    ["first release", esc(cand.first_tag or "none tagged")],
                    ["merged by", esc(cand.merged_by or "-")],
                ],
            ),
            f"<pre>{esc(cand.message)}</pre><pre>{esc(cand.diffstat)}</pre>",
        ]
    elif report.candidates:
        parts.append(
            "<h2>Candidates</h2><ul>"
            + "".join(f"<li><code>{esc(c)}</code></li>" for c in report.candidates)
            + "</ul>"
        )
    parts += [
        "<h2>Confidence</h2>",
        f"<p>{report.confidence:.6f}: {esc(report.confidence_method)}</p>",
        # The same basis as report.md (assumption, rates, drift, background, why not).
        *[
            f"<p>{esc(line.removeprefix('- ').replace('**', '').replace('`', ''))}</p>"
            for line in basis_md(report)
            if line
        ],
        "<h2>Checks</h2>",
        _table(
            ["check", "result", "detail"],
            [
                [
                    esc(c.name),
                    f"<span class='{esc(c.status)}'>{esc(c.status)}</span>",
                    esc(c.detail),
                ]
                for c in report.checks
            ],
        ),
        *[backport_html(b) for b in report.backports],
        "<h2>Evidence</h2>",
        _table(EVIDENCE_HEADERS, [_evidence_cells(e) for e in report.evidence]),
        *signatures_html(report),
        *where_html(report.cluster),
        "<h2>Environment</h2>",
        f"<pre>{esc(json.dumps(report.environment.to_json(), indent=2))}</pre>",
        "<h2>Reproduce or resume</h2>",
        f"<pre>{esc(report.command)}</pre>",
        "<h2>git bisect log</h2>",
        f"<pre>{esc(report.bisect_log)}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


SIGNATURE_HEADERS = ["pos", "commit", "signature", "count", "counted as", "why"]


def signatures_html(report: Report) -> list[str]:
    """The Signatures section (as report.md's): every failure seen, per commit, and
    whether it counted as the bug and why; nothing when no reproduction was recorded."""
    if not report.signatures:
        return []
    esc = html.escape
    pos = {e.commit: e.position for e in report.evidence}
    rows = [
        [
            str(pos.get(r.commit) if pos.get(r.commit) is not None else ""),
            f"<code>{esc(r.commit[:12])}</code>",
            "(none)" if r.signature is None else f"<code>{esc(r.signature)}</code>",
            str(r.count),
            "the bug" if r.is_bug else "another failure",
            esc(r.why),
        ]
        for r in report.signatures
    ]
    return ["<h2>Signatures</h2>", _table(SIGNATURE_HEADERS, rows)]
