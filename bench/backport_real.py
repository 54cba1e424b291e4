"""The real QEMU run's backport, with no hand-made patch: is an adapted patch made and verified?

    python bench/backport_real.py --qemu /path/to/qemu-clone --cache-dir /tmp/bp-cold \
        [--warm-from DIR] [--tool bisect-qemu] [--out docs/results/backport-run.md]
    python bench/backport_real.py --summarise REPORT_DIR --time-log STDERR_OF_TIME_V

Runs ``bisect-qemu --good v1.0 --bad v1.1.0`` (no ``--backport-patch``) under
``/usr/bin/time -v`` in the QEMU clone, then prints, from the run's report.json, what the
backport stage did onto the old end: the series' status, whether and why the fix was adapted,
and for each candidate its placement, its mapped names (with the commit each came from), its
result and evidence, and the delivered file.  Cold by default (``--cache-dir`` must not exist:
no builds, no ccache, no journal); ``--warm-from`` copies a cache first and says so in the
table.  ``--summarise`` prints the same from a run made by hand.

By hand, on an otherwise idle machine, with a clone that has the v1.0 and v1.1.0 tags (README).
CI cannot run it: it has no QEMU.  The report is read through the product's own model
(bisect_driver.backport.model), so what is printed is what the report says.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_run import Figure, _field, _wall, measure, table  # noqa: E402

from bisect_driver.backport.model import BackportResult  # noqa: E402
from bisect_driver.backport.verify import describe  # noqa: E402


def figure_from_log(name: str, log: str, answer: str, status: int) -> Figure:
    """A timing row from ``/usr/bin/time -v``'s text."""
    return Figure(
        name=name,
        command=[],
        wall_s=_wall(log),
        user_s=_field(log, "User time (seconds)"),
        sys_s=_field(log, "System time (seconds)"),
        max_rss_mb=_field(log, "Maximum resident set size (kbytes)") / 1024,
        exit_status=status,
        answer=answer,
    )


def build_time(log: str, commit: str | None) -> str:
    """ "68 s" from the run's log line ``built <sha12>: ok in 68s`` ("-" when not built)."""
    if not commit:
        return "-"
    m = re.search(rf"built {commit[:12]}: (ok|failed) in (\d+)s", log)
    return f"{m.group(2)} s" if m else "cached" if commit[:12] in log else "-"


def backport_table(b: BackportResult, log: str = "") -> str:
    """What the stage did onto one REF, as markdown (build times from the run's log)."""
    out = [
        f"Backport of `{b.candidate[:12]}` onto {b.ref} (`{b.ref_sha[:12]}`):"
        f" cherry-pick {'clean' if b.direct else 'conflicts'}; series **{b.series_status}**;"
        f" adapted: **{b.adapt_status or 'not needed'}** ({b.adapt_detail or '-'})",
        "",
        "| candidate | result | build | evidence | placement | names written the old way |",
        "|---|---|---:|---|---|---|",
    ]
    for c in b.candidates:
        evidence = describe(c.trial) if c.trial else (c.detail or "-")
        where = "; ".join(f"{p.path}: {p.where}" for p in c.placements)
        names = "; ".join(
            f"`{m.name}` -> `{m.old}` ({m.commit[:12]}, {m.sites} sites)" for m in c.mappings
        )
        out.append(
            f"| {c.name} | {c.status} | {build_time(log, c.commit)} | {evidence} | {where}"
            f" | {names or '-'} |"
        )
    ref = next((t for t in b.trials if t.commit == b.ref_sha), None)
    tried = next((c for c in b.candidates if c.trial), None)
    if ref is not None:
        out += ["", f"{b.ref} itself: {describe(ref)}"]
    elif tried is not None:  # REF's own result is in the candidate's detail
        out += ["", f"{b.ref} itself and the candidate: {tried.detail}"]
    delivered = [c.file for c in b.candidates if c.file]
    out += ["", f"Delivered: {', '.join(delivered) if delivered else 'nothing'}"]
    return "\n".join(out)


def summary(report_dir: Path, timing: Figure, log: str = "") -> str:
    data = json.loads((report_dir / "report.json").read_text())
    parts = [table([timing])]
    for raw in data.get("backports", []):
        parts += ["", backport_table(BackportResult.from_json(raw), log)]
    if not data.get("backports"):
        parts += ["", "No backport in the report (not a fix hunt?)."]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qemu", type=Path, help="the QEMU clone (cwd of the run)")
    ap.add_argument("--cache-dir", type=Path, help="must not exist yet")
    ap.add_argument("--warm-from", type=Path, help="copy this cache into --cache-dir first")
    ap.add_argument("--good", default="v1.0")
    ap.add_argument("--bad", default="v1.1.0")
    ap.add_argument("--tool", default=shutil.which("bisect-qemu") or "bisect-qemu")
    ap.add_argument("--summarise", type=Path, help="a report dir of a run made by hand")
    ap.add_argument("--time-log", type=Path, help="with --summarise: /usr/bin/time -v's output")
    ap.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = ap.parse_args(argv)
    if args.summarise:
        if not args.time_log:
            print("--summarise needs --time-log", file=sys.stderr)
            return 2
        log = args.time_log.read_text(errors="replace")
        status = int(_field(log, "Exit status")) if "Exit status" in log else -1
        found = json.loads((args.summarise / "report.json").read_text()).get("candidate")
        answer = (found or {}).get("commit", "")
        text = summary(args.summarise, figure_from_log("by hand", log, answer, status), log)
    else:
        if not args.qemu or not args.cache_dir:
            print("--qemu and --cache-dir are needed (or --summarise)", file=sys.stderr)
            return 2
        if args.cache_dir.exists():
            print(f"{args.cache_dir} exists: give a fresh cache dir", file=sys.stderr)
            return 2
        name, label = "cold", "cold"
        if args.warm_from:
            shutil.copytree(args.warm_from, args.cache_dir, symlinks=True)
            shutil.rmtree(args.cache_dir / "report", ignore_errors=True)
            name, label = "warm", f"warm (a copy of {args.warm_from})"
        report = args.cache_dir / "report"
        command = [args.tool, "--good", args.good, "--bad", args.bad]
        command += ["--cache-dir", str(args.cache_dir), "--report-dir", str(report)]
        logs = args.cache_dir.parent / f"{args.cache_dir.name}-logs"
        timing = measure(name, command, args.qemu, logs)
        timing.name = label
        log = (logs / f"{name}.stderr").read_text(errors="replace")
        text = summary(report, timing, log)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
