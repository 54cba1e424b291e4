"""One function per subcommand; each returns the process exit status."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .errors import EXIT_FOUND, UserError


def cmd_run(args: argparse.Namespace) -> int:
    from .driver import run

    return run(args)


def cmd_resume(args: argparse.Namespace) -> int:
    """Continue the latest (or --run-id) run with the settings it started with."""
    from .driver import run

    ctx_args = _stored_run_args(args)
    return run(ctx_args)


def _stored_run_args(args: argparse.Namespace) -> argparse.Namespace:
    from .context import default_cache_dir
    from .journal import Journal

    cache_dir = Path(args.cache_dir).resolve() if args.cache_dir else default_cache_dir()
    journal = Journal(cache_dir / "journal.sqlite3")
    runs = journal.runs()
    if args.run_id:
        runs = [r for r in runs if r["run_id"] == args.run_id]
    if not runs:
        raise UserError(f"no run to resume in {cache_dir}")
    settings = runs[-1]["settings"]
    stored = settings["args"]
    # Absolute repo and SHAs: `resume` may run from another directory, and a ref
    # like HEAD~5 may have moved since.
    stored.update(repo=settings["repo"], good=settings["good"], bad=settings["bad"])
    stored["cache_dir"] = str(cache_dir)
    stored["command"] = "run"
    return argparse.Namespace(**stored)


def _select_run(args: argparse.Namespace):
    from .context import context_for_run, default_cache_dir
    from .journal import Journal

    cache_dir = Path(args.cache_dir).resolve() if args.cache_dir else default_cache_dir()
    if not (cache_dir / "journal.sqlite3").exists():
        raise UserError(f"no journal in {cache_dir}: nothing has run there yet")
    journal = Journal(cache_dir / "journal.sqlite3")
    runs = journal.runs()
    if args.run_id:
        runs = [r for r in runs if r["run_id"] == args.run_id]
    elif args.good or args.bad:
        runs = [
            r
            for r in runs
            if (not args.good or r["settings"]["good_ref"] == args.good)
            and (not args.bad or r["settings"]["bad_ref"] == args.bad)
        ]
    if not runs:
        raise UserError(f"no matching run in {cache_dir}")
    return context_for_run(cache_dir, runs[-1]["run_id"])


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    ctx = _select_run(args)
    report_dir = Path(args.report_dir) if args.report_dir else ctx.run_dir
    files = write_report(ctx, report_dir)
    print(files.md_path)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .status import print_status

    ctx = _select_run(args)
    print_status(ctx)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from .context import make_context
    from .gitops import resolve
    from .lock import CacheLock

    ctx = make_context(args)
    sha = resolve(ctx.user_repo, args.ref)
    with CacheLock(ctx.cache_dir) as lock:
        lock.acquire(f"build {sha[:12]}")
        start = time.monotonic()
        out = ctx.builder.ensure(sha)
        took = time.monotonic() - start
    rec = out.record
    how = "cache hit" if out.cached else "built"
    if out.ok:
        print(f"{sha} {how} in {took:.2f}s ({rec.status}, build took {rec.duration:.1f}s)")
        if rec.fixups:
            print("fix-ups: " + "; ".join(rec.fixups))
        print(out.artifact_dir)
        return 0
    print(f"{sha} does not build ({how}): {rec.status}: {rec.detail}", file=sys.stderr)
    if rec.log_path:
        print(f"log: {rec.log_path}", file=sys.stderr)
    return 1


def cmd_probe(args: argparse.Namespace) -> int:
    """Run -n trials on one commit and print the reproduction rate with its interval."""
    from .context import make_context
    from .gitops import resolve
    from .lock import CacheLock
    from .verdict import clopper_pearson

    ctx = make_context(args)
    sha = resolve(ctx.user_repo, args.ref)
    with CacheLock(ctx.cache_dir) as lock:
        lock.acquire(f"probe {sha[:12]}")
        built = ctx.builder.ensure(sha)
        if not built.ok:
            raise UserError(f"{sha[:12]} does not build: {built.record.detail}")
        ctx.probe.prepare(ctx.cache_dir)
        runner = ctx.runner()
        start = time.monotonic()
        before = runner.evidence(sha)
        done = 0
        while done < args.n:
            batch = min(args.jobs, args.n - done)
            runner.run(sha, built.artifact_dir, batch)
            done += batch
            ev = runner.evidence(sha)
            print(
                f"{done}/{args.n}: {ev.reproduced - before.reproduced} reproduced,"
                f" {ev.counted - before.counted} counted",
                file=sys.stderr,
            )
        took = time.monotonic() - start
    ev = runner.evidence(sha)
    new_k = ev.reproduced - before.reproduced
    new_n = ev.counted - before.counted
    lo, hi = clopper_pearson(new_k, new_n)
    print(
        f"{sha[:12]}: {new_k}/{new_n} reproduced ({(new_k / new_n if new_n else 0):.3f},"
        f" 95% CI {lo:.3f}-{hi:.3f}); {args.n - new_n} not counted;"
        f" {took / max(1, args.n):.2f}s per trial wall ({args.jobs} at once)"
    )
    lo_all, hi_all = clopper_pearson(ev.reproduced, ev.counted)
    print(
        f"all recorded for this commit: {ev.reproduced}/{ev.counted}"
        f" (95% CI {lo_all:.3f}-{hi_all:.3f})"
    )
    return 0


def cmd_guest(args: argparse.Namespace) -> int:
    from .context import make_context

    ctx = make_context(args, need_repo=False)
    build_kit = getattr(ctx.probe, "build_guest_kit", None)
    if build_kit is None:
        raise UserError(f"probe {ctx.probe.name} has no guest kit")
    path = build_kit(ctx.cache_dir, force=args.force)
    print(path)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import doctor

    return doctor(args)


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate a flaky C project and bisect its fix, end to end."""
    from .flaky_project import FlakySpec, generate

    tmp = Path(tempfile.mkdtemp(prefix="bisect-qemu-demo-"))
    try:
        spec = FlakySpec(commits=40, change_at=27, rate=0.4, unbuildable=[9], seed=args.seed)
        repo = generate(tmp / "flaky", spec)
        print(
            f"demo: generated {tmp / 'flaky'}: {spec.commits} commits; a SIGTERM race"
            f" crashes ~{spec.rate:.0%} of runs before the fix; commit {spec.unbuildable[0]}"
            " does not build",
            file=sys.stderr,
        )
        for tag, sha in (("v1.0", repo.old), ("v2.0", repo.new)):
            subprocess.run(["git", "tag", tag, sha], cwd=repo.path, check=True)
        args.repo = str(repo.path)
        args.good, args.bad = "v1.0", "v2.0"
        args.cache_dir = args.cache_dir or str(tmp / "cache")
        args.build_cmd, args.artifact = "make -s", ["flaky", "probe.sh"]
        args.probe_cmd = "./probe.sh"
        args.recipe, args.probe = "shell", "command"
        args.first_parent = False
        args.report_dir = args.report_dir or str(tmp / "report")
        args.no_confirm = getattr(args, "no_confirm", False)
        args.backport_onto, args.verify_backport, args.run_id = None, True, None
        args.command = "run"
        status = cmd_run(args)
        found = Path(args.report_dir) / "report.md"
        print(f"demo: the fix was planted at {repo.answer}; exit status {status}", file=sys.stderr)
        if found.exists():
            print(found.read_text())
        return status if status != EXIT_FOUND else 0
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"demo: kept {tmp}", file=sys.stderr)
