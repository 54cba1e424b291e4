"""The report: report.json for machines, report.md for people.

Everything is computed from the journal and the run's stored outcome, so
`bisect-qemu report` can regenerate it at any time, also for a run that is
still going or was interrupted.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .context import RunContext
from .evidence import Evidence
from .verdict import clopper_pearson


@dataclass
class ReportFiles:
    json_path: Path
    md_path: Path


def collect(ctx: RunContext) -> dict[str, Any]:
    """The report's data, JSON-ready."""
    assert ctx.run_id is not None and ctx.user_repo is not None
    run = ctx.journal.run_row(ctx.run_id) or {}
    result = run.get("result") or {}
    settings = ctx.settings or run.get("settings", {})
    runner = ctx.runner()
    verdicts = ctx.journal.verdicts(ctx.run_id)
    order = position_map(ctx, settings)
    evidence = []
    total_trials = 0
    for v in verdicts:
        ev: Evidence = runner.evidence(v.commit)
        total_trials += ev.trials
        lo, hi = clopper_pearson(ev.reproduced, ev.counted)
        build = ctx.journal.build(v.commit, ctx.recipe.key())
        evidence.append(
            {
                "commit": v.commit,
                "subject": commit_subject(ctx, v.commit),
                "position": order.get(v.commit),
                "trials": ev.trials,
                "counted": ev.counted,
                "reproduced": ev.reproduced,
                "inconclusive": ev.inconclusive,
                "hangs": ev.hangs,
                "errors": ev.errors,
                "rate": ev.reproduced / ev.counted if ev.counted else None,
                "rate_ci95": [lo, hi],
                "verdict": v.verdict,
                "error_bound": v.error,
                "reason": v.reason,
                "build": build.status if build else None,
                "build_seconds": build.duration if build else None,
                "fingerprint": build.fingerprint if build else None,
            }
        )
    evidence.sort(key=lambda e: (e["position"] is None, e["position"] or 0))
    errors = [v.error for v in verdicts if v.verdict in ("bug", "clean")]
    confidence = max(0.0, 1.0 - sum(errors))
    candidates = result.get("candidates", [])
    cand = None
    if len(candidates) == 1:
        cand = {"commit": candidates[0], "subject": commit_subject(ctx, candidates[0])}
    endpoints = {settings.get("good"), settings.get("bad")}
    return {
        "run_id": ctx.run_id,
        "status": run.get("status"),
        "candidate": cand,
        "candidates": candidates,
        "direction": run.get("direction"),
        "terms": result.get("terms"),
        "confidence": confidence,
        "confidence_method": "1 - sum of per-verdict error bounds (union bound)",
        "alpha_per_verdict": settings.get("alpha"),
        "steps": sum(1 for v in verdicts if v.commit not in endpoints),
        "trials": total_trials,
        "good": settings.get("good"),
        "bad": settings.get("bad"),
        "good_ref": settings.get("good_ref"),
        "bad_ref": settings.get("bad_ref"),
        "range_size": settings.get("range_size"),
        "recipe": {
            "name": ctx.recipe.name,
            "key": ctx.recipe.key(),
            "settings": ctx.recipe.settings(),
        },
        "probe": {"name": ctx.probe.name, "key": ctx.probe.key(), "settings": ctx.probe.settings()},
        "evidence": evidence,
        "bisect_log": result.get("bisect_log", ""),
        "command": settings.get("command_line"),
        "wall_seconds": result.get("wall_seconds"),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def commit_subject(ctx: RunContext, sha: str) -> str:
    try:
        return ctx.user_repo.commit(sha).summary
    except Exception:  # noqa: BLE001 - a subject is decoration, never fatal
        return ""


def position_map(ctx: RunContext, settings: dict[str, Any]) -> dict[str, int]:
    """Commit -> position in the range (0 = old end), in topological order."""
    good, bad = settings.get("good"), settings.get("bad")
    if not good or not bad:
        return {}
    args = ["--topo-order", "--reverse"]
    if settings.get("args", {}).get("first_parent"):
        args.append("--first-parent")
    shas = ctx.user_repo.git.rev_list(*args, f"{good}..{bad}").split()
    order = {good: 0}
    for i, sha in enumerate(shas, start=1):
        order[sha] = i
    return order


def render_md(data: dict[str, Any]) -> str:
    lines = []
    cand = data["candidate"]
    what = "fixed" if data["direction"] == "fix" else "introduced"
    lines.append("# bisect-qemu report")
    lines.append("")
    if cand:
        lines.append(
            f"**Verdict:** the bug was {what} by `{cand['commit']}` ({cand['subject']}),"
            f" with confidence {data['confidence']:.4f} after {data['trials']} trials"
            f" over {data['steps']} bisect steps."
        )
    elif data["candidates"]:
        lines.append(
            f"**Verdict:** the bug was {what} by one of {len(data['candidates'])} commits"
            " (skipped commits border the answer):"
        )
        lines += [f"- `{c}`" for c in data["candidates"]]
    else:
        lines.append(f"**Verdict:** no answer yet (run status: {data['status']}).")
    lines += [
        "",
        f"- Range: `{data['good_ref']}` ({(data['good'] or '')[:12]}) .."
        f" `{data['bad_ref']}` ({(data['bad'] or '')[:12]}), {data['range_size']} commits",
        f"- Direction: {data['direction']} hunt (git terms: {data['terms']})",
        f"- Confidence: {data['confidence']:.4f} ({data['confidence_method']};"
        f" per-verdict target {data['alpha_per_verdict']:.2g})",
        f"- Recipe: {data['recipe']['name']}; probe: {data['probe']['name']}",
        f"- Command: `{data['command']}`",
        "",
        "## Evidence",
        "",
        "| pos | commit | subject | trials | reproduced | rate (95% CI) | verdict | note |",
        "|---:|---|---|---:|---:|---|---|---|",
    ]
    for e in data["evidence"]:
        rate = (
            "-"
            if e["rate"] is None
            else (f"{e['rate']:.2f} ({e['rate_ci95'][0]:.2f}-{e['rate_ci95'][1]:.2f})")
        )
        note = e["reason"] if e["verdict"] == "skip" else ""
        subj = (e["subject"] or "").replace("|", "\\|")[:60]
        lines.append(
            f"| {e['position']} | `{e['commit'][:12]}` | {subj} | {e['trials']} |"
            f" {e['reproduced']} | {rate} | {e['verdict']} | {note} |"
        )
    lines += ["", "## git bisect log", "", "```", data["bisect_log"].strip(), "```", ""]
    return "\n".join(lines)


def write_report(ctx: RunContext, report_dir: Path) -> ReportFiles:
    data = collect(ctx)
    report_dir.mkdir(parents=True, exist_ok=True)
    jp, mp = report_dir / "report.json", report_dir / "report.md"
    tmp = jp.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.rename(jp)
    tmp = mp.with_suffix(".md.tmp")
    tmp.write_text(render_md(data))
    tmp.rename(mp)
    return ReportFiles(jp, mp)
