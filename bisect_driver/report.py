"""The report: report.json for machines, report.md to paste, report.html to look at.

Everything is computed from the journal, the run's stored outcome and git,
so `bisect-qemu report` can regenerate it at any time, also for a run that
is still going or was interrupted.  The JSON schema is in docs/report.md.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .confirm import confirm_run_id
from .context import RunContext
from .evidence import Evidence
from .history import describe
from .verdict import clopper_pearson

SCHEMA_VERSION = 2


@dataclass
class ReportFiles:
    json_path: Path
    md_path: Path
    html_path: Path


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout
        return (out.strip().splitlines() or ["?"])[0]
    except (OSError, subprocess.TimeoutExpired):
        return "not found"


def confidence_of(verdicts, result: dict[str, Any]) -> tuple[float, str]:
    """The answer's confidence and how it was reached."""
    path = max(0.0, 1.0 - sum(v.error for v in verdicts if v.verdict in ("bug", "clean")))
    errors = result.get("confirm_errors") or {}
    if result.get("confirmed") and errors:
        conf = max(0.0, 1.0 - sum(errors.values()))
        return conf, (
            "confirmed: 1 - (sum of the error bounds of the confirmation verdicts on the"
            f" candidate and its parent(s)) = {conf:.6f}; the candidate behaves like the new"
            " end and its parent like the old end, so (with one change of behaviour in the"
            " range) it is the commit where the behaviour changed. Without confirmation, the"
            f" union bound over all {len(verdicts)} verdicts gives {path:.6f}."
        )
    return path, (
        f"1 - sum of the error bounds of all {len(verdicts)} bug/clean verdicts (union bound)"
    )


def collect(ctx: RunContext) -> dict[str, Any]:
    """The report's data, JSON-ready."""
    assert ctx.run_id is not None and ctx.user_repo is not None
    run = ctx.journal.run_row(ctx.run_id) or {}
    result = run.get("result") or {}
    settings = ctx.settings or run.get("settings", {})
    runner = ctx.runner()
    verdicts = ctx.journal.verdicts(ctx.run_id)
    confirm = {v.commit: v for v in ctx.journal.verdicts(confirm_run_id(ctx.run_id))}
    order = position_map(ctx, settings)
    evidence = []
    total_trials = 0
    seen = {v.commit for v in verdicts}
    extra = [v for c, v in confirm.items() if c not in seen]  # e.g. a backport commit
    for v in verdicts + extra:
        ev: Evidence = runner.evidence(v.commit)
        total_trials += ev.trials
        lo, hi = clopper_pearson(ev.reproduced, ev.counted)
        build = ctx.journal.build(v.commit, ctx.recipe.key())
        cv = confirm.get(v.commit)
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
                "verdict": v.verdict if v.commit in seen else None,
                "error_bound": v.error if v.commit in seen else None,
                "reason": v.reason if v.commit in seen else "",
                "confirm_verdict": cv.verdict if cv else None,
                "confirm_error_bound": cv.error if cv else None,
                "build": build.status if build else None,
                "build_detail": build.detail if build else None,
                "build_seconds": build.duration if build else None,
                "fingerprint": build.fingerprint if build else None,
            }
        )
    evidence.sort(key=lambda e: (e["position"] is None, e["position"] or 0))
    confidence, how = confidence_of(verdicts, result)
    candidates = result.get("candidates", [])
    cand = None
    if len(candidates) == 1:
        info = describe(ctx.user_repo, candidates[0], settings["bad"])
        cand = {"commit": info.sha, **{k: v for k, v in asdict(info).items() if k != "sha"}}
    endpoints = {settings.get("good"), settings.get("bad")}
    cand_build = ctx.journal.build(candidates[0], ctx.recipe.key()) if candidates else None
    steps = sum(1 for v in verdicts if v.commit not in endpoints)
    return {
        "schema": SCHEMA_VERSION,
        "run_id": ctx.run_id,
        "status": run.get("status"),
        "candidate": cand,
        "candidates": candidates,
        "direction": run.get("direction"),
        "terms": result.get("terms"),
        "confidence": confidence,
        "confidence_method": how,
        "confirmed": bool(result.get("confirmed")),
        "corrected": result.get("corrected", []),
        "contradiction": result.get("contradiction"),
        "checks": result.get("checks", []),
        "confirmation_rounds": result.get("confirmation_rounds", []),
        "alpha_per_verdict": settings.get("alpha"),
        "steps": steps,
        "trials": total_trials,
        "good": settings.get("good"),
        "bad": settings.get("bad"),
        "good_ref": settings.get("good_ref"),
        "bad_ref": settings.get("bad_ref"),
        "range_size": settings.get("range_size"),
        "evidence": evidence,
        "bisect_log": result.get("bisect_log", ""),
        "command": settings.get("command_line"),
        "resume_command": settings.get("command_line"),
        "wall_seconds": result.get("wall_seconds"),
        "environment": {
            "recipe": {
                "name": ctx.recipe.name,
                "key": ctx.recipe.key(),
                "settings": ctx.recipe.settings(),
            },
            "fixups_applied_to_candidate": cand_build.fixups if cand_build else [],
            "probe": {
                "name": ctx.probe.name,
                "key": ctx.probe.key(),
                "settings": ctx.probe.settings(),
            },
            "statistics": {
                k: settings.get("args", {}).get(k)
                for k in (
                    "confidence",
                    "false_positive_rate",
                    "max_trials",
                    "jobs",
                    "hang_as",
                    "trial_timeout",
                    "build_timeout",
                )
            },
            "toolchain": {
                "cc": _first_line(["cc", "--version"]),
                "git": _first_line(["git", "--version"]),
                "python": platform.python_version(),
                "kernel": platform.release(),
                "machine": f"{platform.machine()}, {_cpus()} CPUs",
            },
        },
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _cpus() -> int:
    import os

    return os.cpu_count() or 1


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


def verdict_paragraph(data: dict[str, Any]) -> str:
    cand = data["candidate"]
    what = "fixed" if data["direction"] == "fix" else "introduced"
    rng = f"`{data['good_ref']}`..`{data['bad_ref']}`"
    if cand:
        merged = f", merged by `{cand['merged_by'][:12]}`" if cand.get("merged_by") else ""
        tag = f"; first release containing it: {cand['first_tag']}" if cand.get("first_tag") else ""
        conf = "confirmed by retesting it and its parent" if data["confirmed"] else "not confirmed"
        return (
            f'The bug was {what} by commit `{cand["commit"]}` ("{cand["subject"]}"){merged}'
            f"{tag}. It was found in {rng} ({data['range_size']} commits) with {data['steps']}"
            f" bisect steps and {data['trials']} trials, confidence {data['confidence']:.5f}"
            f" ({conf})."
        )
    if data["candidates"]:
        return (
            f"The bug was {what} by one of {len(data['candidates'])} commits in {rng}: the"
            " commits between them could not be built or tested (skips), so git bisect cannot"
            " tell which."
        )
    return f"No answer yet for {rng} (run status: {data['status']})."


def render_md(data: dict[str, Any]) -> str:
    L = ["# bisect-qemu report", "", verdict_paragraph(data), ""]
    cand = data["candidate"]
    if cand:
        L += [
            "## Candidate",
            "",
            f"- Commit: `{cand['commit']}`",
            f"- Subject: {cand['subject']}",
            f"- Author: {cand['author']}",
            f"- Date: {cand['date']}",
            f"- First release containing it: {cand['first_tag'] or 'none tagged'}",
        ]
        if cand.get("merged_by"):
            L.append(f"- Brought into the branch by merge `{cand['merged_by']}`")
        if cand.get("brings_in"):
            L.append(f"- This merge brings in {len(cand['brings_in'])} commit(s):")
            L += [f"  - `{c}`" for c in cand["brings_in"][:50]]
        L += ["", "```", cand["message"], "```", "", "```", cand["diffstat"], "```", ""]
    elif data["candidates"]:
        L += ["## Candidates", ""] + [f"- `{c}`" for c in data["candidates"]] + [""]
    L += ["## Confidence", "", f"{data['confidence']:.6f}: {data['confidence_method']}", ""]
    if data["corrected"]:
        which = ", ".join(f"`{c[:12]}`" for c in data["corrected"])
        L += [
            f"Confirmation overturned the verdict of {which}"
            " and the bisect was replayed with the corrected log.",
            "",
        ]
    if data["contradiction"]:
        L += [f"**Warning:** {data['contradiction']}", ""]
    L += ["## Checks", "", "| check | result | detail |", "|---|---|---|"]
    for c in data["checks"]:
        L.append(f"| {c['name']} | {c['status']} | {c['detail']} |")
    if not data["checks"]:
        L.append("| confirmation | not run | |")
    L += [
        "",
        "## Evidence",
        "",
        "Every commit tested, in history order (position 0 = the old end).",
        "",
        "| pos | commit | subject | trials | reproduced | rate (95% CI) | verdict | confirm |"
        " note |",
        "|---:|---|---|---:|---:|---|---|---|---|",
    ]
    for e in data["evidence"]:
        rate = (
            "-"
            if e["rate"] is None
            else (f"{e['rate']:.2f} ({e['rate_ci95'][0]:.2f}-{e['rate_ci95'][1]:.2f})")
        )
        note = e["reason"] if e["verdict"] in ("skip", None) or "corrected" in e["reason"] else ""
        subj = (e["subject"] or "").replace("|", "\\|")[:60]
        pos = "" if e["position"] is None else e["position"]
        L.append(
            f"| {pos} | `{e['commit'][:12]}` | {subj} | {e['trials']} | {e['reproduced']} |"
            f" {rate} | {e['verdict'] or '-'} | {e['confirm_verdict'] or ''} | {note} |"
        )
    env = data["environment"]
    L += [
        "",
        "## Environment",
        "",
        f"- Recipe: {env['recipe']['name']} `{json.dumps(env['recipe']['settings'])}`",
        "- Fix-ups applied to the candidate's build: "
        + ("; ".join(env["fixups_applied_to_candidate"]) or "none"),
        f"- Probe: {env['probe']['name']} `{json.dumps(env['probe']['settings'])}`",
        f"- Statistics: `{json.dumps(env['statistics'])}`; per-verdict error target"
        f" {data['alpha_per_verdict']:.3g}",
        f"- Toolchain: {env['toolchain']['cc']}; {env['toolchain']['git']};"
        f" Python {env['toolchain']['python']}; kernel {env['toolchain']['kernel']};"
        f" {env['toolchain']['machine']}",
    ]
    if data.get("wall_seconds"):
        L.append(f"- Wall time: {data['wall_seconds'] / 60:.1f} min")
    L += [
        "",
        "## Reproduce or resume",
        "",
        "```",
        data["command"] or "",
        "```",
        "",
        "Rerunning the same command reuses every recorded build and trial.",
        "",
        "## git bisect log",
        "",
        "```",
        data["bisect_log"].strip(),
        "```",
        "",
    ]
    return "\n".join(L)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.rename(path)


def write_report(ctx: RunContext, report_dir: Path) -> ReportFiles:
    from .report_html import render_html

    data = collect(ctx)
    report_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(
        report_dir / "report.json", report_dir / "report.md", report_dir / "report.html"
    )
    _atomic_write(files.json_path, json.dumps(data, indent=2) + "\n")
    md = render_md(data)
    _atomic_write(files.md_path, md)
    _atomic_write(files.html_path, render_html(data, md))
    return files
