"""``backport/REF/`` in the report directory: the series as patches, and how to check them.

What a maintainer takes away: ``git format-patch`` files of the series (each message ends
with ``(cherry picked from commit ...)``, each keeps its author), the same as one mbox for
``git am`` or ``--backport-patch``, and VERIFY.md: what was verified, with the trial
counts and error bounds, and the commands that reproduce it.

A machine-adapted candidate that passed is delivered as ``adapted-N.patch``: a ``git
format-patch`` file whose message says it is machine-adapted, from which commit, and what was
moved or renamed; between its ``---`` line and the diff (text ``git am`` and ``git apply``
skip) what was verified and the commands of VERIFY.md.  Candidates that did not pass are
shown in the report, never delivered.
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
    for c in result.candidates:
        if c.status == "PASS" and c.commit:
            path = out / c.name
            mbox = str(repo.git.format_patch("--stdout", f"{result.ref_sha}..{c.commit}"))
            notes = adapted_notes(result, c.detail, path, command, probe_options or [])
            path.write_text(with_notes(mbox, notes) + "\n")
            c.file = str(path)
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
    if result.adapt_status:
        lines += ["", f"Machine-adapted candidates: {result.adapt_detail}."]
        lines += [f"- {c.name}: **{c.status}**: {c.detail}" for c in result.candidates]
    files = [out / "series.mbox"] if (out / "series.mbox").exists() else []
    files += sorted(out.glob("verified-*")) + sorted(out.glob("adapted-*.patch"))
    if not files:
        lines += ["", "Nothing verified to reproduce: no series applies and no hand-made or"]
        lines += ["adapted patch passed (see the report's backport section).", ""]
        return "\n".join(lines)
    for f in files:
        lines += ["", f"## Reproduce: {f.name}", "", "By hand, in a clone of your repository:"]
        mbox = is_mbox(f.read_text(errors="replace"))
        lines += ["", *reproduce_commands(ref, f, mbox, command, probe_options)]
    lines.append("")
    return "\n".join(lines)


def reproduce_commands(
    ref: str, f: Path, mbox: bool, command: str, probe_options: list[str]
) -> list[str]:
    """The commands that check ``f`` (``git am`` when ``mbox``, else ``git apply``) onto
    ``ref`` by hand, then with bisect-qemu again."""
    work = f"../backport-{safe_name(ref)}"
    opts = (" " + shlex.join(probe_options)) if probe_options else ""
    patch = shlex.quote(str(f.resolve()))
    if mbox:
        apply = f"git -C {work} am {patch}"
    else:
        apply = f"git -C {work} apply --index {patch} && git -C {work} commit -qm backport"
    return [
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


def adapted_notes(
    result: BackportResult, detail: str, path: Path, command: str, probe_options: list[str]
) -> list[str]:
    """What an adapted patch carries below its ``---``: verified how, reproduced how."""
    return [
        "MACHINE-ADAPTED by bisect-qemu: not the upstream commit; see the message above for",
        "where each hunk went and which names were written the old way.",
        f"Verified onto {result.ref} ({result.ref_sha[:12]}): {detail}.",
        "Reproduce (as in VERIFY.md):",
        *[
            x
            for x in reproduce_commands(result.ref, path, True, command, probe_options)
            if x != "```sh" and x != "```"
        ],
        "",
    ]


def with_notes(mbox: str, notes: list[str]) -> str:
    """``mbox`` with ``notes`` right after its ``---`` line (``git am`` drops that text)."""
    lines = mbox.split("\n")
    at = lines.index("---") + 1 if "---" in lines else 0
    return "\n".join([*lines[:at], *notes, *lines[at:]])
