"""Command line: `bisect-qemu [run] --good OLD --bad NEW`, and its helpers.

Parsing is two-phase: the chosen recipe and probe are plug-ins with options
of their own, so ``--recipe`` / ``--probe`` are read first and the full
parser is then built with their options.  Every error becomes one line on
stderr and a documented exit status (see errors.py), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from pathlib import Path

from .errors import EXIT_INTERNAL, BisectError, UserError

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
    def error(self, message: str):  # one line, exit 2
        raise UserError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be strictly between 0 and 1")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be in [0, 1)")
    return value


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
    from .context import plugin_classes

    g = p.add_argument_group("where")
    g.add_argument("--repo", default=".", help="the git checkout to bisect (default: .)")
    g.add_argument(
        "--cache-dir",
        help="cache and journal (default: $BISECT_QEMU_CACHE or ./cache"
        " beside the tool, else ~/.cache/bisect-qemu)",
    )
    g.add_argument(
        "--cache-limit",
        default="30G",
        help="artifact cache size before LRU eviction (default 30G; 0 = no limit)",
    )
    b = p.add_argument_group("build")
    b.add_argument(
        "--recipe",
        default=recipe,
        help="build recipe plug-in (default: qemu, or shell when --build-cmd is given)",
    )
    b.add_argument("--build-cmd", help="shell recipe: command run in the checkout to build")
    b.add_argument("--artifact", action="append", help="shell recipe: path to keep (repeatable)")
    b.add_argument(
        "--build-timeout",
        type=_positive_float,
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
        "--probe-cmd", help="command probe: one trial; exit 0 clean, 1 reproduced, 125 cannot tell"
    )
    t.add_argument(
        "--jobs",
        type=_positive_int,
        default=os.cpu_count() or 1,
        help="trials of one commit run at once (default: number of CPUs)",
    )
    t.add_argument(
        "--trial-timeout",
        type=_positive_float,
        default=None,
        help="seconds before a trial counts as a hang (default: the probe's)",
    )
    t.add_argument(
        "--hang-as",
        choices=("inconclusive", "reproduced"),
        default="inconclusive",
        help="how a hung trial counts (default: inconclusive)",
    )
    s = p.add_argument_group("statistics")
    s.add_argument(
        "--confidence",
        type=_probability,
        default=0.99,
        help="probability that the whole answer is right (default 0.99)",
    )
    s.add_argument(
        "--false-positive-rate",
        type=_rate,
        default=0.0,
        help="chance that a trial reproduces on a commit without the bug (default 0)",
    )
    s.add_argument(
        "--max-trials",
        type=_positive_int,
        default=200,
        help="counted trials after which an undecided commit is skipped (default 200)",
    )
    recipe_cls, probe_cls = plugin_classes(recipe, probe)
    recipe_cls.add_arguments(p.add_argument_group(f"recipe {recipe}"))
    probe_cls.add_arguments(p.add_argument_group(f"probe {probe}"))


def build_parser(command: str, recipe: str, probe: str) -> argparse.ArgumentParser:
    p = Parser(
        prog=f"bisect-qemu {command}" if command != "run" else "bisect-qemu",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(command=command)
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
            "--verify-backport", action="store_true", help="also build REF + candidate and probe it"
        )
    if command in ("build", "probe"):
        p.add_argument("ref", help="the commit to build")
    if command == "probe":
        p.add_argument("-n", type=_positive_int, default=50, help="trials to run (default 50)")
    if command == "step":
        p.add_argument("--run-id", required=True)
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


def parse(argv: list[str]) -> argparse.Namespace:
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else "run"
    rest = argv[1:] if argv and argv[0] in SUBCOMMANDS else argv
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=os.environ.get("BISECT_QEMU_CONFIG"))
    known, rest = pre.parse_known_args(rest)
    config = load_config(known.config) if known.config else {}
    if command == "demo":
        recipe, probe = "shell", "command"
    else:
        recipe, probe = plugin_names(rest)
        recipe = str(config.get("recipe", recipe)) if "--recipe" not in rest else recipe
        probe = str(config.get("probe", probe)) if "--probe" not in rest else probe
    parser = build_parser(command, recipe, probe)
    if config:
        valid = {a.dest for a in parser._actions}
        unknown = sorted(set(config) - valid)
        if unknown:
            raise UserError(f"config {known.config}: unknown option(s) {', '.join(unknown)}")
        parser.set_defaults(**config)
        # Values from a file skip argparse's type checks: run them through the parser.
        for action in parser._actions:
            if action.dest in config and action.type is not None:
                value = config[action.dest]
                try:
                    action.type(str(value))
                except (argparse.ArgumentTypeError, ValueError) as exc:
                    raise UserError(f"config {known.config}: {action.dest}: {exc}") from None
    return parser.parse_args(rest)


def dispatch(args: argparse.Namespace) -> int:
    from . import commands

    return getattr(commands, f"cmd_{args.command}")(args)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "step":
            from .step import step_main

            args = _step_args(argv[1:])
            return step_main(Path(args.cache_dir), args.run_id)
        args = parse(argv)
        return dispatch(args)
    except BisectError as exc:
        print(f"bisect-qemu: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        from .errors import EXIT_INTERRUPTED

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
