"""One function per subcommand; each takes the parsed command line and returns the exit status.

Each turns the command line into typed :class:`~bisect_driver.settings.Settings`
first (app.cli.settings_from); only the few positional arguments of single
commands (REF, -n, --force, ...) are read from the Namespace, and only here.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bisect_driver.plugin.errors import EXIT_FOUND, UserError
from bisect_driver.plugin.options import options_from
from bisect_driver.plugin.registry import load_plugin
from bisect_driver.settings import Settings, default_cache_dir

if TYPE_CHECKING:
    from bisect_driver.context import RunContext


def cmd_run(args: argparse.Namespace) -> int:
    from bisect_driver.app.driver import run

    return run(settings_from(args))


def _cache_dir(args: argparse.Namespace) -> Path:
    return Path(args.cache_dir).expanduser().resolve() if args.cache_dir else default_cache_dir()


def _runs(args: argparse.Namespace) -> tuple[Path, list[dict[str, Any]]]:
    """The cache dir and its runs (oldest first), only --run-id's when given."""
    from bisect_driver.store.journal import Journal

    cache_dir = _cache_dir(args)
    if not (cache_dir / "journal.sqlite3").exists():
        raise UserError(f"no journal in {cache_dir}: nothing has run there yet")
    runs = Journal(cache_dir / "journal.sqlite3").runs()
    if args.run_id:
        runs = [r for r in runs if r["run_id"] == args.run_id]
    return cache_dir, runs


def cmd_resume(args: argparse.Namespace) -> int:
    """Continue the latest (or --run-id) run with the settings it started with."""
    from bisect_driver.app.driver import run
    from bisect_driver.settings import RunPlan

    cache_dir, runs = _runs(args)
    if not runs:
        raise UserError(f"no run to resume in {cache_dir}")
    plan = RunPlan.from_json(runs[-1]["settings"])
    # Absolute repo and SHAs: `resume` may run from another directory, and a ref
    # like HEAD~5 may have moved since.  The refs as spelled stay for the report.
    settings = plan.settings.replace(
        repo=Path(plan.repo), good=plan.good, bad=plan.bad, cache_dir=cache_dir
    )
    return run(settings, command_line=plan.command_line)


def _select_run(args: argparse.Namespace) -> RunContext:
    from bisect_driver.context import context_for_run

    cache_dir, runs = _runs(args)
    if not args.run_id and (args.good or args.bad):
        runs = [
            r
            for r in runs
            if (not args.good or r["settings"].get("good_ref") == args.good)
            and (not args.bad or r["settings"].get("bad_ref") == args.bad)
        ]
    if not runs:
        raise UserError(f"no matching run in {cache_dir}")
    return context_for_run(cache_dir, runs[-1]["run_id"])


def cmd_report(args: argparse.Namespace) -> int:
    from bisect_driver.report.write import write_report

    ctx = _select_run(args)
    report_dir = Path(args.report_dir) if args.report_dir else ctx.run_dir
    files = write_report(ctx, report_dir)
    print(files.md_path)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from bisect_driver.app.status import print_status

    print_status(_select_run(args))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from bisect_driver.app.unattended import unattended
    from bisect_driver.context import make_context
    from bisect_driver.store.repo import resolve

    ctx = make_context(settings_from(args))
    sha = resolve(ctx.repo(), args.ref)
    with (
        unattended(ctx.cache_dir, f"build {sha[:12]}", ctx.checkout, ctx.progress.line),
        heartbeat(ctx),
    ):
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
    from bisect_driver.app.unattended import unattended
    from bisect_driver.context import make_context
    from bisect_driver.store.repo import resolve
    from bisect_driver.verdict.stats import clopper_pearson

    settings = settings_from(args)
    ctx = make_context(settings)
    sha = resolve(ctx.repo(), args.ref)
    with (
        unattended(ctx.cache_dir, f"probe {sha[:12]}", ctx.checkout, ctx.progress.line),
        heartbeat(ctx),
    ):
        built = ctx.builder.ensure(sha)
        if not built.ok or built.artifact_dir is None:
            raise UserError(f"{sha[:12]} does not build: {built.record.detail}")
        ctx.probe.prepare(ctx.cache_dir)
        runner = ctx.runner()
        start = time.monotonic()
        before = runner.evidence(sha)
        done = 0
        while done < args.n:
            batch = min(runner.jobs, args.n - done)
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
        f" {took / max(1, args.n):.2f}s per trial wall ({settings.jobs} at once)"
    )
    lo_all, hi_all = clopper_pearson(ev.reproduced, ev.counted)
    print(
        f"all recorded for this commit: {ev.reproduced}/{ev.counted}"
        f" (95% CI {lo_all:.3f}-{hi_all:.3f})"
    )
    return 0


@contextmanager
def heartbeat(ctx: RunContext) -> Iterator[None]:
    """`build` and `probe` of one commit: a line every ``$BISECT_QEMU_HEARTBEAT`` seconds
    while the build or the trials run (a QEMU build is minutes of silence otherwise),
    on a terminal too: these commands have no live view."""
    from bisect_driver.progress import Heartbeat
    from bisect_driver.store.runstatus import RunStatus

    ctx.status_file.start(RunStatus(pid=os.getpid(), started=time.time()))
    with Heartbeat(ctx.progress.line, ctx.status_file.read):
        yield


def cmd_guest(args: argparse.Namespace) -> int:
    from bisect_driver.app.unattended import unattended
    from bisect_driver.context import make_context

    ctx = make_context(settings_from(args), need_repo=False)
    with unattended(ctx.cache_dir, "guest build", None, ctx.progress.line):
        path = ctx.probe.build_guest_kit(ctx.cache_dir, force=args.force)
    if path is None:
        raise UserError(f"probe {ctx.probe.name} has no guest kit to build")
    print(path)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from bisect_driver.app.doctor import doctor

    return doctor(settings_from(args))


def settings_from(args: argparse.Namespace, validate: bool = True) -> Settings:
    """The typed settings of a parsed command line (commands that build or probe)."""
    recipe_cls = load_plugin("recipe", args.recipe)
    probe_cls = load_plugin("probe", args.probe)
    given = vars(args)
    if given.get("ccache_remote") and not given.get("scheduler"):
        raise UserError("--ccache-remote needs --scheduler: it is for builds on workers")
    if given.get("steady_rate") and args.min_rate is not None:
        raise UserError(
            "--steady-rate and --min-rate cannot be combined: the steady rate is the floor"
        )
    return Settings(
        repo=Path(args.repo).expanduser(),
        cache_dir=Path(args.cache_dir).expanduser().resolve()
        if args.cache_dir
        else default_cache_dir(),
        cache_limit=args.cache_limit,
        min_free=args.min_free,
        recipe=args.recipe,
        recipe_options=_plugin_options(recipe_cls, given, validate),
        build_timeout=args.build_timeout,
        probe=args.probe,
        probe_options=_plugin_options(probe_cls, given, validate),
        jobs=args.jobs,
        trial_timeout=args.trial_timeout,
        hang_as=args.hang_as,
        confidence=args.confidence,
        false_positive_rate=args.false_positive_rate,
        max_trials=args.max_trials,
        min_rate=args.min_rate,
        steady_rate=bool(given.get("steady_rate")),
        good=given.get("good"),
        bad=given.get("bad"),
        first_parent=bool(given.get("first_parent")),
        no_confirm=bool(given.get("no_confirm")),
        backport_onto=tuple(given.get("backport_onto") or ()),
        backport_patch=tuple(Path(x).resolve() for x in given.get("backport_patch") or ()),
        verify_backport=given.get("verify_backport") is not False,
        report_dir=Path(given["report_dir"]) if given.get("report_dir") else None,
        scheduler=given.get("scheduler") or None,
        ccache_remote=given.get("ccache_remote") or None,
    )


def _plugin_options(cls: Any, given: dict[str, Any], validate: bool = True) -> Any:
    options = options_from(cls.Options, given, cls.kind)
    if validate:
        cls(options)  # a bad value is a usage error before any work starts
    return options


DEMO_TAGS = ("v1.0", "v2.0")


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate a flaky C project and bisect its fix, end to end."""
    from bisect_driver.app.driver import run
    from bisect_driver.app.flaky_project import FlakySpec, generate

    # By name, like any run: the driver never imports a plug-in package by path.
    shell_options = load_plugin("recipe", "shell").Options
    command_options = load_plugin("probe", "command").Options
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
        for tag, sha in zip(DEMO_TAGS, (repo.old, repo.new), strict=True):
            subprocess.run(["git", "tag", tag, sha], cwd=repo.path, check=True)
        base = settings_from(args, validate=False)  # the demo sets the plug-ins' options
        settings = base.replace(
            repo=repo.path,
            good=DEMO_TAGS[0],
            bad=DEMO_TAGS[1],
            cache_dir=Path(args.cache_dir).resolve() if args.cache_dir else tmp / "cache",
            recipe="shell",
            recipe_options=shell_options(build_cmd="make -s", artifact=("flaky", "probe.sh")),
            probe="command",
            probe_options=command_options(probe_cmd="./probe.sh"),
            report_dir=base.report_dir or tmp / "report",
            verify_backport=True,
        )
        words = ["--repo", str(repo.path), "--good", DEMO_TAGS[0], "--bad", DEMO_TAGS[1]]
        words += ["--build-cmd", "make -s", "--artifact", "flaky", "--artifact", "probe.sh"]
        words += ["--probe-cmd", "./probe.sh", "--verify-backport"]
        words += ["--cache-dir", str(settings.cache_dir)]
        line = "bisect-qemu " + " ".join(shlex.quote(a) for a in words)
        status = run(settings, command_line=line)
        assert settings.report_dir is not None
        found = settings.report_dir / "report.md"
        print(f"demo: the fix was planted at {repo.answer}; exit status {status}", file=sys.stderr)
        if found.exists():
            print(found.read_text())
        return status if status != EXIT_FOUND else 0
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"demo: kept {tmp}", file=sys.stderr)
