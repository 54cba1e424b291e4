"""``backport/REF/`` in the report directory: the series as patches, and how to check them.

What a maintainer takes away: ``git format-patch`` files of the series (each message ends
with ``(cherry picked from commit ...)``, each keeps its author), the same as one mbox for
``git am`` or ``--backport-patch``, and VERIFY.md: what was verified, with the trial
counts and error bounds, and the commands that reproduce it.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import git

from bisect_driver.backport.apply import is_mbox
from bisect_driver.backport.model import BackportResult
from bisect_driver.backport.verify import describe


def safe_name(ref: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", ref).strip("_") or "ref"


def deliver(
    repo: git.Repo,
    result: BackportResult,
    head: str | None,
    report_dir: Path,
    command: str,
    probe_options: list[str] | None = None,
) -> Path:
    out = report_dir / "backport" / safe_name(result.ref)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if head is not None:
        repo.git.format_patch("-q", "-o", str(out), f"{result.ref_sha}..{head}")
        mbox = str(repo.git.format_patch("--stdout", f"{result.ref_sha}..{head}"))
        (out / "series.mbox").write_text(mbox + "\n")
    for p in result.patches:
        if p.status == "PASS":
            # The verified hand-made backport is a deliverable too, beside the series.
            shutil.copyfile(p.path, out / f"verified-{Path(p.path).name}")
    (out / "VERIFY.md").write_text(verify_text(result, out, command, probe_options or []))
    return out


def verify_text(result: BackportResult, out: Path, command: str, probe_options: list[str]) -> str:
    ref = result.ref
    lines = [f"# Backport of {result.candidate[:12]} onto {ref} ({result.ref_sha[:12]})", ""]
    if result.direct:
        lines.append("The fix cherry-picks cleanly onto it.")
    else:
        lines.append("The fix alone does not apply onto it.")
    if result.series:
        lines += ["", "## The series", ""]
        lines += [f"- `{c.commit[:12]}` {c.subject}: {c.why}" for c in result.series]
    lines += ["", f"Series: {result.series_status}. {result.series_detail}".rstrip(), ""]
    if result.trials:
        lines += ["## Verified (built with the run's recipe, probed with its probe)", ""]
        lines += [
            f"- {t.label} (`{t.commit[:12]}`): {describe(t)}; expected {t.expected}"
            for t in result.trials
        ]
        lines += ["", f"Verified: {'yes' if result.verified else 'NO'}. {result.verify_detail}"]
    for p in result.patches:
        lines += ["", f"Hand-made patch {p.path}: **{p.status}**: {p.detail}"]
    files = [out / "series.mbox"] if (out / "series.mbox").exists() else []
    files += sorted(out.glob("verified-*"))
    if not files:
        lines += ["", "Nothing verified to reproduce: no series applies and no hand-made patch"]
        lines += ["passed (see the report's backport section).", ""]
        return "\n".join(lines)
    work = f"../backport-{safe_name(ref)}"
    opts = (" " + shlex.join(probe_options)) if probe_options else ""
    for f in files:
        patch = shlex.quote(str(f.resolve()))
        if is_mbox(f.read_text(errors="replace")):
            apply = f"git -C {work} am {patch}"
        else:
            apply = f"git -C {work} apply --index {patch} && git -C {work} commit -qm backport"
        lines += ["", f"## Reproduce: {f.name}", "", "By hand, in a clone of your repository:"]
        lines += [
            "",
            "```sh",
            f"git worktree add --detach {work} {shlex.quote(ref)}",
            apply,
            f"bisect-qemu probe --repo {work} HEAD -n 60{opts}   # expect 0 reproduced",
            f"bisect-qemu probe {shlex.quote(ref)} -n 60{opts}   # expect reproductions",
            "```",
            "",
            "Or let bisect-qemu verify it again (builds and trials are cached):",
            "",
            "```sh",
            f"{command} --backport-onto {shlex.quote(ref)} --backport-patch {patch}",
            "```",
        ]
    lines.append("")
    return "\n".join(lines)
