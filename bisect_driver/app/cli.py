"""Command line: `bisect-qemu [run] --good OLD --bad NEW`, and its helpers.

Parsing is two-phase: the chosen recipe and probe are plug-ins with options
of their own, so ``--recipe`` / ``--probe`` are read first and the full
parser is then built with their options.  The result is a typed, frozen
:class:`~bisect_driver.settings.Settings` (plus the few positional arguments
of single commands); nothing below the CLI reads the argparse Namespace.
Every error becomes one line on stderr and a documented exit status (see
README "Exit status"), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bisect_driver.plugin.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, BisectError, UserError
from bisect_driver.plugin.registry import load_plugin
from bisect_driver.settings import HANG_AS, parse_size

SUBCOMMANDS = (
    "run",
    "step",
    "build",
    "probe",
    "guest",
    "report",
    "status",
    "resume",
    "doctor",
    "demo",
)

DESCRIPTION = """\
Find the commit that introduced or fixed an intermittent bug: git bisect run
with a build of every commit and many trials each, decided by statistics.

  bisect-qemu --good v1.0 --bad v1.1.0     bisect (the default command: run)
  bisect-qemu demo                         see it work on a generated flaky project
  bisect-qemu build REF                    build one commit (cached)
  bisect-qemu probe REF -n 50              measure one commit's reproduction rate
  bisect-qemu report | status | resume     rewrite the report | show a run | continue it
  bisect-qemu guest build | doctor         build the probe's guest kit | check the host

Options can also come from a TOML file: --config FILE (or $BISECT_QEMU_CONFIG),
keys named like the long options (max-trials = 100); the command line wins.
"""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2
        raise UserError(message)


def _number(kind: Callable[[str], Any], check: Callable[[Any], bool], rule: str) -> Any:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"{text!r} {rule}")
        return value

    convert.__name__ = kind.__name__
    return convert


positive_int = _number(int, lambda v: v >= 1, "must be at least 1")
positive_float = _number(float, lambda v: v > 0, "must be positive")
probability = _number(float, lambda v: 0.0 < v < 1.0, "must be strictly between 0 and 1")
rate = _number(float, lambda v: 0.0 <= v < 1.0, "must be in [0, 1)")


def size(text: str) -> int:
    try:
        return parse_size(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def plugin_names(argv: list[str]) -> tuple[str, str]:
    """First phase: which recipe and probe (defaults follow --build-cmd / --probe-cmd)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--recipe")
    pre.add_argument("--probe")
    pre.add_argument("--build-cmd")
    pre.add_argument("--probe-cmd")
    known, _ = pre.parse_known_args(argv)
    recipe = known.recipe or ("shell" if known.build_cmd else "qemu")
    probe = known.probe or ("command" if known.probe_cmd else "qcow2-sigterm")
    return recipe, probe


def add_common(p: argparse.ArgumentParser, recipe: str, probe: str) -> None:
    """Options of every command that builds or probes (groups are never nested)."""
    g = p.add_argument_group("where")
    g.add_argument("--repo", default=".", help="the git checkout to bisect (default: .)")
    g.add_argument(
        "--cache-dir",
        help="cache and journal (default: $BISECT_QEMU_CACHE or ./cache"
        " beside the tool, else ~/.cache/bisect-qemu)",
    )
    g.add_argument(
        "--cache-limit",
        type=size,
        default=parse_size("30G"),
        help="artifact cache size before LRU eviction (default 30G; 0 = no limit)",
    )
    g.add_argument(
        "--min-free",
        type=size,
        default=parse_size("1G"),
        help="free disk the cache's file system must keep before each build and batch of"
        " trials; below it the run stops with exit 7 and resumes when rerun (default 1G;"
        " 0 = no check)",
    )
    b = p.add_argument_group("build")
    b.add_argument(
        "--recipe",
        default=recipe,
        help="build recipe plug-in (default: qemu, or shell when --build-cmd is given)",
    )
    b.add_argument(
        "--build-timeout",
        type=positive_float,
        default=3600.0,
        help="seconds before a build is killed (default 3600)",
    )
    t = p.add_argument_group("probe")
    t.add_argument(
        "--probe",
        default=probe,
        help="probe plug-in (default: qcow2-sigterm, or command when --probe-cmd is given)",
    )
    t.add_argument(
        "--jobs",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="trials of one commit run at once (default: number of CPUs)",
    )
    t.add_argument(
        "--trial-timeout",
        type=positive_float,
        default=None,
        help="seconds before a trial counts as a hang (default: the probe's)",
    )
    t.add_argument(
        "--hang-as",
        choices=HANG_AS,
        default="inconclusive",
        help="how a hung trial counts (default: inconclusive)",
    )
    s = p.add_argument_group("statistics")
    s.add_argument(
        "--confidence",
        type=probability,
        default=0.99,
        help="probability that the whole answer is right (default 0.99)",
    )
    s.add_argument(
        "--false-positive-rate",
        type=rate,
        default=0.0,
        help="chance that a trial reproduces on a commit without the bug (default 0)",
    )
    s.add_argument(
        "--max-trials",
        type=positive_int,
        default=200,
        help="counted trials after which an undecided commit is skipped (default 200)",
    )
    s.add_argument(
        "--min-rate",
        type=probability,
        default=None,
        help="lowest reproduction rate a bug-carrying commit is assumed to have; the answer's"
        " confidence holds down to it (default: a sixth of the bug's rate over the commits"
        " judged to carry it)",
    )
    s.add_argument(
        "--steady-rate",
        action="store_true",
        help="assume the bug reproduces at the same rate at every commit that carries it (no"
        " drift): fewer trials; a rate that does drift next to the change makes the run"
        " claim nothing (exit 8) instead",
    )
    c = p.add_argument_group("many machines (docs/cluster.md)")
    c.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=os.environ.get("DASK_SCHEDULER_ADDRESS") or None,
        help="run trials and builds on the workers of this Dask scheduler (tcp://HOST:8786,"
        " or tls:// with certificates from the Dask config; default: $DASK_SCHEDULER_ADDRESS,"
        " else this machine only)",
    )
    c.add_argument(
        "--ccache-remote",
        metavar="URL",
        default=None,
        help="ccache remote storage shared by the workers' builds (file://, redis://, http://"
        " as ccache supports; needs --scheduler)",
    )
    load_plugin("recipe", recipe).add_arguments(p.add_argument_group(f"recipe {recipe}"))
    load_plugin("probe", probe).add_arguments(p.add_argument_group(f"probe {probe}"))


def build_parser(command: str, recipe: str, probe: str) -> argparse.ArgumentParser:
    p = Parser(
        prog=f"bisect-qemu {command}" if command != "run" else "bisect-qemu",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(command=command)
    p.add_argument("--config", help="TOML file of option defaults ($BISECT_QEMU_CONFIG)")
    if command in ("run", "report", "status", "resume", "demo"):
        p.add_argument(
            "--good",
            required=command == "run",
            help="the OLD end (where the bug is, in a fix hunt)",
        )
        p.add_argument(
            "--bad",
            required=command == "run",
            help="the NEW end (where the bug is, in a regression hunt)",
        )
        p.add_argument(
            "--first-parent",
            action="store_true",
            help="follow only first parents (the answer is then a merge)",
        )
        p.add_argument("--report-dir", help="where report.{json,md,html} go (default: run dir)")
        p.add_argument("--run-id", help="report/status/resume: which run (default: the latest)")
        p.add_argument("--no-confirm", action="store_true", help="skip the confirmation retest")
        p.add_argument(
            "--backport-onto",
            action="append",
            help="check the candidate cherry-picks onto REF (repeatable; default: the old end)",
        )
        p.add_argument(
            "--backport-patch",
            action="append",
            metavar="FILE",
            help="verify a hand-made backport (a patch or an mbox series) onto each"
            " --backport-onto REF: apply, build, probe (repeatable)",
        )
        p.add_argument(
            "--verify-backport",
            action="store_true",
            default=None,
            help="build and probe the backport series (the default)",
        )
        p.add_argument(
            "--no-verify-backport",
            dest="verify_backport",
            action="store_false",
            help="only find the backport series; do not build or probe it",
        )
    if command in ("build", "probe"):
        p.add_argument("ref", help="the commit to build")
    if command == "probe":
        p.add_argument("-n", type=positive_int, default=50, help="trials to run (default 50)")
    if command == "guest":
        p.add_argument("guest_command", choices=("build",))
        p.add_argument("--force", action="store_true", help="rebuild even if cached")
    if command == "demo":
        p.add_argument("--keep", action="store_true", help="keep the generated project")
        p.add_argument("--seed", type=int, default=1)
    if command in ("report", "status", "resume"):
        # The run's stored settings name its recipe and probe.
        p.add_argument("--cache-dir", help="cache and journal (default: as for run)")
    else:
        add_common(p, recipe, probe)
    return p


def load_config(path: str) -> dict[str, object]:
    """Option defaults from a TOML file: keys are long option names (``max-trials = 100``)."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise UserError(f"cannot read config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config {path} is not valid TOML: {exc}") from None
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _apply_config(parser: argparse.ArgumentParser, config: dict[str, object], path: str) -> None:
    """Config values become the parser's defaults, checked like command-line text."""
    by_key: dict[str, argparse.Action] = {}
    for action in parser._actions:
        for flag in action.option_strings:
            if flag.startswith("--"):
                by_key[flag[2:].replace("-", "_")] = action
    unknown = sorted(k for k in config if k not in by_key or k in ("config", "help"))
    if unknown:
        raise UserError(f"config {path}: unknown option(s) {', '.join(unknown)}")
    defaults: dict[str, object] = {}
    for key, value in config.items():
        action = by_key[key]
        values = value if isinstance(value, list) else [value]
        if action.type is not None:
            try:
                converted = [action.type(str(v)) for v in values]  # type: ignore[operator]
            except (argparse.ArgumentTypeError, ValueError) as exc:
                raise UserError(f"config {path}: {key}: {exc}") from None
        else:
            converted = [str(v) if not isinstance(v, bool) else v for v in values]
        if action.choices is not None and any(v not in action.choices for v in converted):
            raise UserError(f"config {path}: {key}: must be one of {', '.join(action.choices)}")
        is_list = isinstance(action, argparse._AppendAction)
        defaults[action.dest] = converted if is_list else converted[0]
    parser.set_defaults(**defaults)


def parse(argv: list[str]) -> argparse.Namespace:
    """The Namespace of one command line (plus config file)."""
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else "run"
    rest = argv[1:] if argv and argv[0] in SUBCOMMANDS else argv
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=os.environ.get("BISECT_QEMU_CONFIG"))
    known, _ = pre.parse_known_args(rest)
    config = load_config(known.config) if known.config else {}
    if command == "demo":
        recipe, probe = "shell", "command"
    else:
        recipe, probe = plugin_names(rest)
        recipe = str(config.get("recipe", recipe)) if "--recipe" not in rest else recipe
        probe = str(config.get("probe", probe)) if "--probe" not in rest else probe
        if "build_cmd" in config and "--recipe" not in rest and "recipe" not in config:
            recipe = "shell"
        if "probe_cmd" in config and "--probe" not in rest and "probe" not in config:
            probe = "command"
    parser = build_parser(command, recipe, probe)
    if config:
        _apply_config(parser, config, str(known.config))
    return parser.parse_args(rest)


def dispatch(args: argparse.Namespace) -> int:
    from bisect_driver.app import commands

    handler: Callable[[argparse.Namespace], int] = getattr(commands, f"cmd_{args.command}")
    return handler(args)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "step":
            from bisect_driver.app.step import step_main

            step = _step_args(argv[1:])
            return step_main(Path(step.cache_dir), step.run_id)
        return dispatch(parse(argv))
    except BisectError as exc:
        print(f"bisect-qemu: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("bisect-qemu: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        print(f"bisect-qemu: internal error: {exc!r}", file=sys.stderr)
        return EXIT_INTERNAL


def _step_args(argv: list[str]) -> argparse.Namespace:
    p = Parser(prog="bisect-qemu step")
    p.add_argument("--cache-dir", required=True)
    p.add_argument("--run-id", required=True)
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
