"""report.md: the report as markdown, to paste into a bug, a mail or a commit message."""

from __future__ import annotations

import json

from bisect_driver.bisect.checks import no_independent_check
from bisect_driver.report.model import EvidenceRow, Report, SignatureRow
from bisect_driver.report.text import backport_lines, rate_cell, verdict_paragraph
from bisect_driver.report.where import where_md
from bisect_driver.verdict.core import STEADY_SOURCE
from bisect_driver.verdict.stats import Verdict


def basis_md(report: Report) -> list[str]:
    """The assumption, the floor, the rates next to the answer and far away, drift."""
    b = report.basis
    if b is None or b.floor is None:
        return []
    (k, n), (fk, fn) = b.near, b.far
    if b.floor_source.startswith(STEADY_SOURCE):
        assumption = (
            "- Assumption (`--steady-rate`): one change of behaviour in the range, and every"
            " commit that carries the bug reproduces at the same rate (at least"
            f" **{b.floor:.3g}**, the 95 % lower bound over the commits judged to carry it):"
            " the strict test is Fisher's exact test against their trials."
        )
    else:
        assumption = (
            f"- Assumption: one change of behaviour in the range, and every commit that carries"
            f" the bug reproduces at a rate of at least **{b.floor:.3g}** (the floor:"
            f" {b.floor_source}; `--min-rate` sets it)."
        )
    out = [
        assumption,
        f"- Rate at the bug-carrying commit(s) next to the answer: {k}/{n}"
        + (f" ({k / n:.2f})" if n else "")
        + f"; at the far (reproducing) end: {fk}/{fn}"
        + (f" ({fk / fn:.2f})." if fn else "."),
    ]
    if b.drift:
        out.append(f"- **Drift:** {b.drift}.")
    if b.background:
        out.append(f"- **Background:** {b.background}.")
    for why in b.unconfirmed:
        out.append(f"- **Not confirmed:** {why}")
    return [*out, ""]


def render_md(report: Report) -> str:
    """The whole report.md text."""
    summary = verdict_paragraph(report)
    unchecked = no_independent_check(report.checks) if report.candidate else None
    lines = ["# bisect-qemu report", "", f"{summary} {unchecked}" if unchecked else summary, ""]
    lines += _candidate(report)
    lines += [
        "## Confidence",
        "",
        f"{report.confidence:.6f}: {report.confidence_method}",
        "",
    ]
    lines += basis_md(report)
    if report.corrected:
        which = ", ".join(f"`{c[:12]}`" for c in report.corrected)
        lines += [
            f"Confirmation overturned the verdict of {which}"
            " and the bisect was replayed with the corrected log.",
            "",
        ]
    if report.contradiction:
        lines += [f"**Warning:** {report.contradiction}", ""]
    lines += ["## Checks", "", "| check | result | detail |", "|---|---|---|"]
    for c in report.checks:
        lines.append(f"| {c.name} | {c.status} | {c.detail} |")
    if not report.checks:
        lines.append("| confirmation | not run | |")
    for b in report.backports:
        lines += ["", *backport_lines(b)]
    lines += [
        "",
        "## Evidence",
        "",
        "Every commit tested, in history order (position 0 = the old end).",
        "",
        "| pos | commit | subject | trials | reproduced | rate (95% CI) | verdict | confirm |"
        " note |",
        "|---:|---|---|---:|---:|---|---|---|---|",
    ]
    lines += [_evidence_line(e) for e in report.evidence]
    lines += signatures_md(report)
    lines += where_md(report.cluster)
    lines += _environment(report)
    lines += [
        "",
        "## Reproduce or resume",
        "",
        "```",
        report.command,
        "```",
        "",
        "Rerunning the same command reuses every recorded build and trial.",
        "",
        "## git bisect log",
        "",
        "```",
        report.bisect_log.strip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def _candidate(report: Report) -> list[str]:
    """The Candidate section, or the list of candidates when skips border the answer."""
    cand = report.candidate
    if cand:
        lines = [
            "## Candidate",
            "",
            f"- Commit: `{cand.commit}`",
            f"- Subject: {cand.subject}",
            f"- Author: {cand.author}",
            f"- Date: {cand.date}",
            f"- First release containing it: {cand.first_tag or 'none tagged'}",
        ]
        if cand.merged_by:
            lines.append(f"- Brought into the branch by merge `{cand.merged_by}`")
        if cand.brings_in:
            lines.append(f"- This merge brings in {len(cand.brings_in)} commit(s):")
            lines += [f"  - `{c}`" for c in cand.brings_in[:50]]
        return lines + ["", "```", cand.message, "```", "", "```", cand.diffstat, "```", ""]
    if report.candidates:
        return ["## Candidates", ""] + [f"- `{c}`" for c in report.candidates] + [""]
    return []


def _evidence_line(e: EvidenceRow) -> str:
    """One table row; the note shows skip reasons and corrections, not routine reasons."""
    shows_reason = e.verdict in (Verdict.SKIP, None) or "corrected" in e.reason
    note = e.reason if shows_reason else ""
    if e.other:
        seen = "; ".join(s.replace("|", "\\|") for s in e.other_signatures[:3])
        note = f"{note} {e.other} other failure(s), not counted: {seen}".strip()
    subj = e.subject.replace("|", "\\|")[:60]
    pos = "" if e.position is None else e.position
    return (
        f"| {pos} | `{e.commit[:12]}` | {subj} | {e.trials} | {e.reproduced} |"
        f" {rate_cell(e)} | {e.verdict or '-'} | {e.confirm_verdict or ''} | {note} |"
    )


def _environment(report: Report) -> list[str]:
    env = report.environment
    tc = env.toolchain
    lines = [
        "",
        "## Environment",
        "",
        f"- Recipe: {env.recipe.name} `{json.dumps(env.recipe.settings)}`",
        "- Fix-ups applied to the candidate's build: "
        + ("; ".join(env.fixups_applied_to_candidate) or "none"),
        f"- Probe: {env.probe.name} `{json.dumps(env.probe.settings)}`",
        f"- Statistics: `{json.dumps(env.statistics.to_json())}`;"
        f" the steps' soft CLEAN error target {report.alpha_per_verdict:.3g}",
        f"- Toolchain: {tc.cc}; {tc.git}; Python {tc.python}; kernel {tc.kernel}; {tc.machine}",
    ]
    if report.wall_seconds:
        lines.append(f"- Wall time: {report.wall_seconds / 60:.1f} min")
    return lines


def signatures_md(report: Report) -> list[str]:
    """The Signatures section: every failure seen, per commit, and whether it counted.

    Why it is shown: a different crash taken for the bug sends the bisect the
    wrong way, and this table is where a reader sees which failures were
    hunted, which were left out, and the rule behind each.
    """
    if not report.signatures:
        return []
    lines = [
        "",
        "## Signatures",
        "",
        "What each commit's reproductions named, and whether it counted as the bug"
        ' (docs/statistics.md, "Signatures: what counts as the bug").',
        "",
        "| pos | commit | signature | count | counted as | why |",
        "|---:|---|---|---:|---|---|",
    ]
    pos = {e.commit: e.position for e in report.evidence}
    lines += [_signature_line(r, pos.get(r.commit)) for r in report.signatures]
    return lines


def _signature_line(r: SignatureRow, position: int | None) -> str:
    """One row; ``|`` escaped (a signature joins its failure lines with `` | ``)."""
    sig = "(none)" if r.signature is None else "`" + r.signature.replace("|", "\\|") + "`"
    why = r.why.replace("|", "\\|")
    kind = "the bug" if r.is_bug else "another failure"
    pos = "" if position is None else position
    return f"| {pos} | `{r.commit[:12]}` | {sig} | {r.count} | {kind} | {why} |"
