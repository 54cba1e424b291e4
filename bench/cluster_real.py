"""The real QEMU hunt on one machine and on a Dask cluster of k workers, same hour, cold.

    python bench/cluster_real.py --qemu /path/to/qemu-clone --work /tmp/cl-real \
        [--workers 2] [--modes local,cluster] [--cluster-args '--ccache-remote URL'] \
        [--out FILE]

Run by hand on an otherwise idle machine, with a QEMU clone that has the v1.0 and v1.1.0
tags.  Each mode starts from an empty cache (and so an empty ccache), one after the
other:

1. **local**: ``bisect-qemu --good v1.0 --bad v1.1.0`` as a user runs it today;
2. **cluster**: the same with ``--scheduler``, against a ``dask scheduler`` and k
   ``dask worker`` processes this bench starts on this machine (tests/dask_cluster.py).
   The workers run as root in a private mount namespace where the driver's cache and
   the QEMU clone are empty folders: everything reaches them through Dask (the qcow2
   probe's guestfs reads the host kernel, which only root may read).

Each row: wall, the machine's busy CPU seconds over the run (every process: driver,
scheduler, workers, builds, guests; nothing else is running), the driver's own peak
RSS, exit status and answer, trials, builds, where they ran, and the speculative builds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from dask_cluster import DaskCluster  # noqa: E402
from real_run import Figure, measure  # noqa: E402


def busy_cpu_s() -> float:
    """Seconds of CPU the whole machine spent not idle, since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def journal_facts(cache: Path) -> dict[str, object]:
    db = sqlite3.connect(cache / "journal.sqlite3")
    trials = db.execute("SELECT COUNT(*), COUNT(DISTINCT host) FROM trials").fetchone()
    builds = db.execute(
        "SELECT COUNT(*), SUM(host IS NOT NULL), SUM(speculative) FROM builds"
    ).fetchone()
    spec = db.execute("SELECT message FROM events WHERE kind='speculation'").fetchall()
    return {
        "trials": trials[0],
        "trial_hosts": trials[1],
        "builds": builds[0],
        "builds_on_workers": builds[1] or 0,
        "speculative": spec[-1][0] if spec else "-",
    }


def run_mode(mode: str, args: argparse.Namespace) -> tuple[Figure, float, dict[str, object]]:
    private = args.work / mode
    shutil.rmtree(private, ignore_errors=True)
    private.mkdir(parents=True, mode=0o700)
    cache = private / "cache"
    command = [
        args.tool, "--repo", str(args.qemu), "--good", "v1.0", "--bad", "v1.1.0",
        "--cache-dir", str(cache), "--report-dir", str(private / "report"),
    ]  # fmt: skip
    cluster = None
    if mode == "cluster":
        cluster = DaskCluster(
            private, nworkers=args.workers, force_namespace=True, hidden=[args.qemu.resolve()]
        ).start()
        command += ["--scheduler", cluster.address, *args.cluster_args.split()]
    try:
        before = busy_cpu_s()
        figure = measure(mode, command, args.work, args.work / "logs")
        cpu = busy_cpu_s() - before
    finally:
        if cluster is not None:
            shutil.copytree(cluster.logs, args.work / "logs" / "dask", dirs_exist_ok=True)
            cluster.stop()
    return figure, cpu, journal_facts(cache)


def main(argv: list[str] | None = None) -> int:
    # SIGTERM ends the bench through its finally blocks: the cluster it started stops too
    signal.signal(signal.SIGTERM, lambda _s, _f: sys.exit(128 + signal.SIGTERM))
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--qemu", type=Path, required=True, help="QEMU clone with v1.0, v1.1.0")
    ap.add_argument("--work", type=Path, required=True, help="scratch folder (emptied per mode)")
    ap.add_argument("--workers", type=int, default=2, help="dask workers (default 2)")
    ap.add_argument("--modes", default="local,cluster", help="which runs (default both)")
    ap.add_argument("--tool", default="bisect-qemu", help="the bisect-qemu command")
    ap.add_argument(
        "--cluster-args",
        default="",
        help="more options for the cluster run, e.g. '--ccache-remote file:///srv/ccache'",
    )
    ap.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{time.strftime('%Y-%m-%d %H:%M')}, cold (empty cache and ccache), {args.workers}"
        " workers for the cluster run, on this machine",
        "",
        "| run | wall | busy CPU s (machine) | driver user+sys s | exit | answer | trials"
        " | builds (on workers) | trial hosts | speculative builds |",
        "|---|---:|---:|---:|---:|---|---:|---|---:|---|",
    ]
    for mode in args.modes.split(","):
        f, cpu, facts = run_mode(mode, args)
        minutes, seconds = divmod(f.wall_s, 60)
        label = f"{mode} {args.cluster_args}".strip() if mode == "cluster" else mode
        lines.append(
            f"| {label} | {int(minutes)} min {seconds:04.1f} s | {cpu:.0f} |"
            f" {f.user_s + f.sys_s:.0f} | {f.exit_status} | {f.answer[:12] or '-'} |"
            f" {facts['trials']} | {facts['builds']} ({facts['builds_on_workers']}) |"
            f" {facts['trial_hosts']} | {facts['speculative']} |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
