"""The real QEMU run's three figures, each measured with /usr/bin/time -v (issue 13).

    python bench/real_run.py --qemu /path/to/qemu-clone --cache-dir /tmp/rr-cache \
        [--good v1.0] [--bad v1.1.0] [--out docs/results/real-run-times.md]

Run by hand, on an otherwise idle machine (nothing else heavy: the figures are wall times),
with a QEMU clone that has the v1.0 and v1.1.0 tags (README.md says how). CI cannot run it:
it has no QEMU source. The three runs:

1. **cold**: a fresh ``--cache-dir`` (no builds, no ccache, no guest kit, no journal: the
   cache dir holds all of them) and the default command, as a new user's first run;
2. **cached**: the same command again (everything cached: builds, trials, verdicts);
3. **probe setting changed**: one probe option changed that changes the probe's key but not
   what is built (``--kill-jitter-ms 21`` instead of the default 20), so every build is
   cached and every trial runs again.

Each row: wall, user and system CPU seconds, peak RSS, exit status, and the answer printed
on stdout. The cache dir must not exist yet (the cold run needs it empty).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TIME = "/usr/bin/time"


@dataclass
class Figure:
    name: str
    command: list[str]
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_mb: float
    exit_status: int
    answer: str


def _wall(text: str) -> float:
    """``Elapsed (wall clock) time (h:mm:ss or m:ss): 12:57.12`` -> seconds."""
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if not m:
        return float("nan")
    parts = [float(x) for x in m.group(1).split(":")]
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


def _field(text: str, label: str) -> float:
    m = re.search(rf"{re.escape(label)}: ([\d.]+)", text)
    return float(m.group(1)) if m else float("nan")


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def measure(name: str, command: list[str], cwd: Path, log_dir: Path) -> Figure:
    """Run ``command`` under /usr/bin/time -v in a session of its own; a bench stopped by
    SIGTERM or Ctrl-C stops that session too (before, ``kill`` of the bench left the
    bisect-qemu it ran going on, with its guests, beside whatever was measured next)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    err_path = log_dir / f"{name.replace(' ', '-')}.stderr"
    before = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        with open(err_path, "w") as err:
            proc = subprocess.Popen(
                [TIME, "-v", *command],
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,
            )
            try:
                out, _ = proc.communicate()
            except BaseException:
                _stop_session(proc)
                raise
    finally:
        signal.signal(signal.SIGTERM, before)
    text = err_path.read_text(errors="replace")
    return Figure(
        name=name,
        command=command,
        wall_s=_wall(text),
        user_s=_field(text, "User time (seconds)"),
        sys_s=_field(text, "System time (seconds)"),
        max_rss_mb=_field(text, "Maximum resident set size (kbytes)") / 1024,
        exit_status=proc.returncode,
        answer=out.strip(),
    )


def _stop_session(proc: subprocess.Popen[str], grace_s: float = 30.0) -> None:
    """SIGTERM to the measured run's whole session (bisect-qemu ends its trials and leaves
    no bisect state on SIGTERM), SIGKILL if it is still there after ``grace_s``."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def table(figures: list[Figure]) -> str:
    lines = [
        "| run | wall | user s | sys s | peak RSS | exit | answer |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for f in figures:
        minutes, seconds = divmod(f.wall_s, 60)
        lines.append(
            f"| {f.name} | {int(minutes)} min {seconds:04.1f} s | {f.user_s:.0f} | {f.sys_s:.0f}"
            f" | {f.max_rss_mb:.0f} MB | {f.exit_status} | {f.answer[:12] or '-'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qemu", type=Path, required=True, help="the QEMU clone (cwd of the runs)")
    ap.add_argument("--cache-dir", type=Path, required=True, help="must not exist yet")
    ap.add_argument("--good", default="v1.0")
    ap.add_argument("--bad", default="v1.1.0")
    ap.add_argument("--tool", default=shutil.which("bisect-qemu") or "bisect-qemu")
    ap.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = ap.parse_args(argv)
    if args.cache_dir.exists():
        print(f"{args.cache_dir} exists: the cold run needs a fresh cache dir", file=sys.stderr)
        return 2
    base = [args.tool, "--good", args.good, "--bad", args.bad, "--cache-dir", str(args.cache_dir)]
    base += ["--report-dir", str(args.cache_dir / "report")]
    logs = args.cache_dir.parent / f"{args.cache_dir.name}-logs"
    figures = []
    for name, extra in (
        ("cold", []),
        ("cached", []),
        ("probe setting changed", ["--kill-jitter-ms", "21"]),
    ):
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{started} {name}: {' '.join(base + extra)}", file=sys.stderr, flush=True)
        figures.append(measure(name, base + extra, args.qemu, logs))
        print(table(figures[-1:]), file=sys.stderr, flush=True)
    text = table(figures)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if all(f.exit_status == 0 for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
